"""AsrStage: transcribe manifest records with NVIDIA NeMo (any ASRModel via transcribe(), or a SALM via generate()).

Main process: check_input() refuses to overwrite reference transcripts and finds the model offline; batches() sorts
by duration and groups by audio seconds. Worker: setup() loads the model once; process() decodes each record's span
itself (a bad file fails alone, before NeMo sees it), cuts long records into pieces, transcribes pieces in groups
within the seconds budget (halving a group and lowering the budget on out-of-memory), and reassembles each record's
transcript in order.
Module level stays light: torch and NeMo are imported in setup().
"""
from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import ConfigError, ItemError
from ..stage import Resources, Stage
from . import batching, chunking
from .config import AsrConfig

logger = logging.getLogger("amela.asr")


@dataclass
class Piece:
    """One unit handed to the model: a whole record, or one cut of a long one."""

    record: int  # position in the batch
    start_s: float  # from the record's start
    samples: object  # np.ndarray, mono float32
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


class AsrStage(Stage):
    name = "asr"
    config_cls = AsrConfig
    resources = Resources(cpus_per_worker=1, gpus_per_worker=1, default_workers=1)
    accepts_directory = True  # a folder of audio: durations from headers, unreadable files become failures
    models_module = "amela.asr.models"  # `amela fetch-models asr NAME...`
    description = "speech recognition with NVIDIA NeMo (CTC, RNNT/TDT, AED/Canary, SALM/Canary-Qwen)"

    def __init__(self, config: AsrConfig, sink=None):
        super().__init__(config, sink)
        self.backend = None
        self.budget_s: float | None = None
        self._pool = None

    # -- main process ----------------------------------------------------------------------------------------------
    def check_input(self, records: list[dict]) -> None:
        key = self.config.text_key
        have = [i for i, r in enumerate(records) if key in r]
        if have and not self.config.overwrite:
            first = records[have[0]].get("audio_filepath")
            raise ConfigError(
                f"asr: {len(have)} of {len(records)} input records already have {key!r} (e.g. {first}), probably a "
                f"reference transcript; write elsewhere with --text-key pred_text, or replace it with --overwrite")
        from .models import resolve

        # Before any task is submitted: a model that is not cached (or a .nemo path that does not exist) fails here,
        # on the login node, with the fetch command, instead of in every one of 1,000 array tasks.
        resolve(self.config.model)

    def batches(self, records: list[dict]) -> list[list[int]]:
        budget = batching.planning_budget(self.config.batch_s, self.config.device)
        return batching.plan_batches([float(r.get("duration") or 0.0) for r in records], budget)

    def summary(self, outputs: Callable[[], Iterator[dict]]) -> dict:
        key, records, empty, words = self.config.text_key, 0, 0, 0
        for record in outputs():
            records += 1
            text = record.get(key) or ""
            empty += not text.strip()
            words += len(text.split())
        return {"transcribed": records, "empty_transcripts": empty, "words": words}

    @classmethod
    def doctor(cls) -> list[tuple[str, bool, str]]:
        checks = []
        for module, fix in (("nemo", "pip install 'nemo_toolkit[asr]==3.0.0' (after torch)"),
                            ("soundfile", "pip install soundfile"), ("soxr", "pip install soxr"),
                            ("jiwer", "pip install jiwer (for asr-eval)"),
                            ("whisper_normalizer", "pip install whisper_normalizer (for asr-eval)")):
            found = importlib.util.find_spec(module) is not None
            checks.append((f"python module {module}", found, "installed" if found else fix))
        if importlib.util.find_spec("nemo") is not None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                v = version("nemo_toolkit")
            except PackageNotFoundError:
                v = "unknown"
            checks.append(("nemo_toolkit version", v == "3.0.0", v if v == "3.0.0" else
                           f"{v} installed; AMELA is tested with 3.0.0"))
        return checks

    # -- worker ----------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import torch

        from .models import load_asr_model

        cfg = self.config
        device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("asr: --device cuda but no CUDA device is visible to this worker")
        t0 = time.time()
        model = load_asr_model(cfg.model, device)
        kind = "salm" if type(model).__name__ == "SALM" else "asr"  # from the checkpoint's contents, not its name
        if cfg.model_kind not in ("auto", kind):
            raise ConfigError(f"asr: --model-kind {cfg.model_kind}, but {cfg.model} is a{'' if kind == 'salm' else 'n'} "
                              f"{kind.upper()} model")
        if kind == "salm":
            from .salm import SalmBackend

            self.backend = SalmBackend(model, cfg, device)
        else:
            from .backend import NemoAsrBackend

            self.backend = NemoAsrBackend(model, cfg, device)
        self.stat_update("model_load_s_max", time.time() - t0)
        self.budget_s = self._initial_budget(device)
        self.stat_update("batch_s_budget_min", self.budget_s)
        self._pool = ThreadPoolExecutor(max_workers=cfg.load_threads)
        logger.info("asr: %s on %s (%s), batch budget %.0f s of audio", cfg.model, device, self.backend.dtype,
                    self.budget_s)

    def _initial_budget(self, device: str) -> float:
        if self.config.batch_s is not None:
            return float(self.config.batch_s)
        if device == "cuda":
            import torch

            free, _ = torch.cuda.mem_get_info()  # after the model loaded: what is left for activations
            return batching.budget_from_free_bytes(free, self._cast_bytes())
        return batching.CPU_BATCH_SECONDS

    def _cast_bytes(self) -> int:
        """Bytes of the 16-bit weight copies autocast keeps while a batch runs (0 in float32)."""
        if self.backend.dtype == "float32":
            return 0
        model = getattr(self.backend, "model", None)
        return sum(p.numel() * 2 for p in model.parameters() if p.is_floating_point()) if model is not None else 0

    def process(self, batch: list[dict]) -> list:
        self.stat_update("batches")
        outcomes: list = [None] * len(batch)
        with self.timer("cpu_s", time.process_time):
            pieces = self._load(batch, outcomes)
            results = self._transcribe_pieces(pieces)
        by_record: dict[int, list] = {}
        for piece, result in zip(pieces, results):
            by_record.setdefault(piece.record, []).append((piece, result))
        for pos, parts in by_record.items():
            outcomes[pos] = self._assemble(batch[pos], parts)
        return outcomes

    def teardown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    # -- worker internals ------------------------------------------------------------------------------------------
    def _load(self, batch: list[dict], outcomes: list) -> list[Piece]:
        """Decode every record (in threads), cut long ones; a record that cannot be read gets its ItemError."""
        from ..audio import read_span

        t0 = time.perf_counter()
        rate, cfg = self.backend.sample_rate, self.config
        futures = [self._pool.submit(read_span, r, rate, cfg.channel) for r in batch]
        pieces: list[Piece] = []
        for pos, (record, fut) in enumerate(zip(batch, futures)):
            try:
                samples = fut.result()
            except ItemError as exc:
                outcomes[pos] = exc
                continue
            spans = chunking.plan_pieces(samples, rate, cfg.max_s, cfg.cut_search_s,
                                         chunking.vad_cut_points(record, len(samples) / rate))
            if len(spans) > 1:
                self.stat_update("records_chunked")
            for a, b in spans:
                pieces.append(Piece(pos, a / rate, samples[a:b], rate))
            self.stat_update("audio_s", len(samples) / rate)
        self.stat_update("pieces", len(pieces))
        self.stat_update("decode_s", time.perf_counter() - t0)  # decoding and cutting, named as VAD and quality do
        return pieces

    def _transcribe_pieces(self, pieces: list[Piece]) -> list:
        """A PieceResult or an exception per piece, in the order given."""
        order = sorted(range(len(pieces)), key=lambda i: -pieces[i].seconds)  # similar lengths together
        results: list = [None] * len(pieces)
        start = 0
        while start < len(order):
            group = self._next_group(order, start, pieces)
            for i, result in zip(group, self._run_group([pieces[i] for i in group])):
                results[i] = result
            start += len(group)
        return results

    def _next_group(self, order: list[int], start: int, pieces: list[Piece]) -> list[int]:
        """The longest run from `start` within the current budget (read anew: an OOM may have lowered it)."""
        group, total = [], 0.0
        for i in order[start:]:
            cost = batching.item_cost(pieces[i].seconds)
            if group and total + cost > self.budget_s:
                break
            group.append(i)
            total += cost
        return group

    def _run_group(self, group: list[Piece]) -> list:
        """Transcribe a group; on out-of-memory halve it and keep the lower budget; isolate a failing piece."""
        from .backend import is_oom

        try:
            self.stat_update("model_calls")
            with self.timer("transcribe_s"):
                return self.backend.transcribe([p.samples for p in group])
        except Exception as exc:  # noqa: BLE001 - split and retry below; a lone piece's error becomes its failure
            if is_oom(exc):
                self.backend.free_memory()
                if len(group) == 1:
                    return [ItemError(f"out of memory on {group[0].seconds:.1f} s of audio even alone; lower "
                                      f"--max-s (now {self.config.max_s})")]
                self.stat_update("oom_halvings")
                total = sum(batching.item_cost(p.seconds) for p in group)
                self.budget_s = max(batching.MIN_ITEM_SECONDS, min(self.budget_s, total / 2))
                self.stat_update("batch_s_budget_min", self.budget_s)
                logger.warning("asr: out of memory on %.0f s of audio; batch budget now %.0f s", total, self.budget_s)
                # Re-plan the group within the lowered budget (not just halves: each call must fit the budget).
                runs = batching.split_costs([batching.item_cost(p.seconds) for p in group], self.budget_s)
                if len(runs) == 1:  # one item costs more than the budget: split in two anyway
                    runs = [list(range(len(group) // 2)), list(range(len(group) // 2, len(group)))]
                return [r for run in runs for r in self._run_group([group[i] for i in run])]
            if len(group) == 1:
                return [exc]
            mid = len(group) // 2  # bisect to find the piece that breaks the model
            return self._run_group(group[:mid]) + self._run_group(group[mid:])

    def _assemble(self, record: dict, parts: list) -> dict | Exception:
        """The output record from its pieces' results (in time order), or the first piece's error."""
        parts.sort(key=lambda pr: pr[0].start_s)
        for piece, result in parts:
            if isinstance(result, BaseException):
                where = f" (piece at {piece.start_s:.2f} s)" if len(parts) > 1 else ""
                reason = str(result) if isinstance(result, ItemError) else f"{type(result).__name__}: {result}"
                return ItemError(f"file {record['audio_filepath']}{where}: {reason}")
        out = dict(record)
        decoded_s = sum(p.seconds for p, _ in parts)
        if abs(float(record.get("duration") or 0.0) - decoded_s) > 1e-3:  # the audio that exists, not the manifest's
            out["duration"] = round(decoded_s, 6)
        out[self.config.text_key] = chunking.join_texts([r.text for _, r in parts])
        if len(parts) > 1:
            out["asr_pieces"] = len(parts)
        if self.config.scores:
            scores = [r.score for _, r in parts if r.score is not None]
            out["score"] = round(sum(scores), 4) if scores else None
        if self.config.timestamps:
            # Clamped to the piece: a TDT decoder's last duration can run past the end of the audio.
            out["words"] = [{"word": w["word"], "start": _shift(w["start"], p.start_s, p.seconds),
                             "end": _shift(w["end"], p.start_s, p.seconds)} for p, r in parts for w in r.words]
        return out


def _shift(value: float | None, by: float, limit: float) -> float | None:
    return None if value is None else round(min(max(value, 0.0), limit) + by, 3)
