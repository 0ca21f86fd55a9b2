"""The S2S stage: audio -> discrete units (encode), audio -> units -> audio (resynth), units -> audio (synth).

Light at import (the CLI's --help loads it): torch and fairseq are imported in setup(), once per worker.
"""
from __future__ import annotations

import io
import logging
import os
import time

from ..audio import SAMPLE_RATE, read_span
from ..errors import ConfigError, ItemError
from ..stage import Resources, Stage
from .audio import mirror_path, wav_bytes
from .budget import budget_from_free_bytes, planning_budget
from .config import S2SConfig

logger = logging.getLogger("amela.s2s")
SYNTH_BATCH_ITEMS = 16
MIN_FILL = 0.8  # a chunk joins a sub-batch only if it is at least this fraction of the longest


class S2SStage(Stage):
    name = "s2s"
    config_cls = S2SConfig
    # One model copy per worker; on a GPU node one worker per GPU.
    resources = Resources(cpus_per_worker=4, gpus_per_worker=1)
    accepts_directory = True
    models_module = "amela.s2s.models"  # `amela fetch-models s2s [NAME...]`
    description = "discrete speech units (HuBERT + k-means) and unit HiFi-GAN resynthesis on fairseq checkpoints"
    scorer = None  # --quality: DNSMOS of resynthesised and source audio, built in setup()

    def __init__(self, config, sink=None):
        super().__init__(config, sink)
        self.reader = self.quantizer = self.vocoder = None
        self.budget_s: float | None = None

    # -- main process ------------------------------------------------------------------------------------------------
    def check_input(self, records: list[dict]) -> None:
        cfg = self.config
        if cfg.mode == "synth" and records and not any("units" in r for r in records):
            raise ConfigError("--mode synth needs records with 'units' (the output manifest of an encode run)")
        if cfg.mode == "encode" and cfg.units_format == "none":
            return  # no files written: nothing can collide
        ext = {"npy": ".npy", "pt": ".pt"}.get(cfg.units_format, ".wav")
        seen: dict[str, str] = {}
        outside = []
        for r in records:
            try:
                rel = mirror_path(r, cfg.input_root, ext)
            except ItemError:
                outside.append(r["audio_filepath"])
                continue
            if rel in seen:
                raise ConfigError(f"{r['audio_filepath']} and {seen[rel]} would both be written to {rel}")
            seen[rel] = r["audio_filepath"]
        if outside:
            raise ConfigError(f"{len(outside)} input file(s) are not under --input-root {cfg.input_root}, e.g. "
                              f"{outside[0]}")

    def batches(self, records: list[dict]) -> list[list[int]]:
        """Sorted by length, so padding stays small; grouped by padded audio seconds (or units for synth)."""
        if self.config.mode == "synth":
            order = sorted(range(len(records)), key=lambda i: len(records[i].get("units") or ()))
            return [order[i:i + SYNTH_BATCH_ITEMS] for i in range(0, len(order), SYNTH_BATCH_ITEMS)]
        chunk = self.config.chunk_s
        budget = planning_budget(self.config.batch_s, self.config.device, chunk)
        order = sorted(range(len(records)), key=lambda i: records[i]["duration"])
        out, cur, cur_chunks, longest = [], [], 0, 0.0
        for i in order:
            d = float(records[i]["duration"])
            n_chunks = max(1, -(-d // chunk))
            new_longest = max(longest, min(d, chunk))
            if cur and new_longest * (cur_chunks + n_chunks) > budget:
                out.append(cur)
                cur, cur_chunks, new_longest = [], 0, min(d, chunk)
            cur.append(i)
            cur_chunks += n_chunks
            longest = new_longest
        if cur:
            out.append(cur)
        return out

    def summary(self, outputs) -> dict:
        n = units = frames = 0
        for r in outputs():
            n += 1
            units += len(r.get("units") or ())
            frames += sum(r.get("unit_durations") or ())
        out = {"records": n, "units": units, "frames": frames,
               "frames_per_unit": round(frames / units, 3) if units else None}
        if self.config.quality:
            from ..quality import resynth

            out.update(resynth.summary(outputs()))
        return out

    def reports(self, outputs) -> dict[str, bytes]:
        if not self.config.quality:
            return {}
        from ..quality import resynth

        return resynth.reports(outputs)

    @classmethod
    def doctor(cls) -> list[tuple[str, bool, str]]:
        from importlib import metadata

        from .models import DEFAULT_DENSE, DEFAULT_KMEANS, DEFAULT_VOCODER, REGISTRY, cache_root

        checks = []
        try:
            version = metadata.version("fairseq")
            checks.append(("fairseq installed", version == "0.12.2", f"fairseq {version}" if version == "0.12.2"
                           else f"fairseq {version}; AMELA's shims target 0.12.2: run scripts/setup.sh"))
        except metadata.PackageNotFoundError:
            checks.append(("fairseq installed", False, "missing: run scripts/setup.sh (fairseq==0.12.2 --no-deps)"))
            return checks
        try:
            from .compat import import_fairseq

            import_fairseq()
            checks.append(("fairseq imports with the compat shims", True, "ok"))
        except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
            checks.append(("fairseq imports with the compat shims", False, f"{type(exc).__name__}: {exc}"))
        root = cache_root()
        missing = [n for n in (DEFAULT_DENSE, DEFAULT_KMEANS, DEFAULT_VOCODER)
                   if not (root / REGISTRY[n].filename).is_file()]
        # Informational: runs that name local checkpoint paths need none of the defaults.
        checks.append(("default S2S models cached", True, f"in {root}" if not missing else
                       f"not in {root} (needed only for the default names): `amela fetch-models s2s "
                       f"{' '.join(missing)}` on a node with network"))
        return checks

    # -- worker ------------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from . import models
        from .hubert import HubertReader
        from .kmeans import KMeansQuantizer, load_centroids

        cfg = self.config
        t0 = time.time()
        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if cfg.mode in ("encode", "resynth"):
            dense = models.resolve(cfg.dense, "dense", cfg.cache_dir)
            self.reader = HubertReader.from_checkpoint(dense.path, cfg.layer, device, cfg.fp16)
            km = models.resolve(cfg.kmeans, "kmeans", cfg.cache_dir)
            self.quantizer = KMeansQuantizer(load_centroids(km, cfg.trust_pickle), device)
            if self.quantizer.dim != self.reader.model.encoder.embedding_dim:
                raise ConfigError(f"k-means {cfg.kmeans} has {self.quantizer.dim}-dim centroids but layer "
                                  f"{cfg.layer} of {cfg.dense} gives {self.reader.model.encoder.embedding_dim}")
        if cfg.mode in ("resynth", "synth"):
            self.vocoder = self._load_vocoder(device)
            if self.quantizer is not None and self.quantizer.k > self.vocoder.num_units:
                raise ConfigError(f"k-means has {self.quantizer.k} units but the vocoder only "
                                  f"{self.vocoder.num_units}: they are not a pair")
        if cfg.quality:
            from ..quality.resynth import ResynthScorer

            self.scorer = ResynthScorer()
        self.stat_update("model_load_s_max", time.time() - t0)
        self.budget_s = self._initial_budget(device)
        self.stat_update("batch_s_budget_min", self.budget_s)
        logger.info("s2s: %s on %s, batch budget %.0f s of audio", cfg.mode, device, self.budget_s)

    def _initial_budget(self, device: str) -> float:
        """The configured budget, else (on GPU) one from the memory left after the models loaded, else CPU's."""
        if self.config.batch_s is not None:
            return float(self.config.batch_s)
        if device.startswith("cuda"):
            import torch

            free, _ = torch.cuda.mem_get_info(torch.device(device))
            return budget_from_free_bytes(free, self.config.chunk_s)
        return planning_budget(None, "cpu", self.config.chunk_s)

    def _load_vocoder(self, device: str):
        from . import models
        from .vocoder import UnitVocoder

        cfg = self.config
        voc = models.resolve(cfg.vocoder, "vocoder", cfg.cache_dir)
        if cfg.vocoder_config:
            config_path = models.resolve(cfg.vocoder_config, "vocoder-config", cfg.cache_dir).path
        elif voc.entry is not None and voc.entry.companions:
            config_path = models.resolve(voc.entry.companions[0], "vocoder-config", cfg.cache_dir).path
        else:
            config_path = os.path.join(os.path.dirname(voc.path), "config.json")
            if not os.path.isfile(config_path):
                raise ConfigError(f"vocoder {voc.path}: give its config with --vocoder-config (no config.json "
                                  "beside it)")
        return UnitVocoder(voc.path, config_path, device, cfg.fp16, cfg.speaker_id, cfg.style_id)

    def process(self, batch: list[dict]) -> list:
        with self.timer("cpu_s", time.process_time):
            return self._process(batch)

    def _process(self, batch: list[dict]) -> list:
        if self.config.mode == "synth":
            return [self._guard(self._synth_one, r) for r in batch]
        decoded_s: dict[int, float] = {}
        # --quality scores the source span the units came from: kept from here, not decoded a second time
        decoded: dict[int, object] | None = {} if self.scorer is not None else None
        units = self.encode(batch, decoded_s, decoded)
        out = []
        # Outputs carry the duration of the audio that was decoded (a manifest past the end of a file says more).
        batch = [with_decoded_duration(r, decoded_s.get(i)) for i, r in enumerate(batch)]
        for pos, (record, frame_units) in enumerate(zip(batch, units)):
            if isinstance(frame_units, BaseException):
                out.append(frame_units)
            elif self.config.mode == "encode":
                out.append(self._guard(self._encode_record, record, frame_units))
            else:
                source = decoded.pop(pos) if decoded is not None else None
                out.append(self._guard(self._resynth_record, record, frame_units, source))
        return out

    @staticmethod
    def _guard(fn, record, *args):
        """An item's own problem becomes its failure; anything else propagates (the worker then bisects)."""
        try:
            return fn(record, *args)
        except (ItemError, ValueError) as exc:
            return exc if isinstance(exc, ItemError) else ItemError(f"{record['audio_filepath']}: {exc}")

    # -- encoding ----------------------------------------------------------------------------------------------------
    def encode(self, batch: list[dict], decoded_s: dict | None = None, decoded: dict | None = None) -> list:
        """Frame-level units (list[int]) per record, or an ItemError for a record whose audio cannot be used;
        `decoded_s` (if given) gets each decoded record's seconds by its position, `decoded` its 16 kHz samples."""
        import torch

        pieces: list[tuple[int, int, object]] = []  # (record position, chunk number, waveform)
        results: list = [None] * len(batch)
        chunk = int(self.config.chunk_s * SAMPLE_RATE)
        for pos, record in enumerate(batch):
            try:
                audio = read_span(record, SAMPLE_RATE, self.config.channel)
            except ItemError as exc:
                results[pos] = exc
                continue
            if len(audio) < self.reader.min_samples:
                results[pos] = ItemError(f"{record['audio_filepath']}: {len(audio)} samples is shorter than one "
                                         f"unit frame ({self.reader.min_samples} samples)")
                continue
            self.stat_update("audio_s", len(audio) / SAMPLE_RATE)
            if decoded_s is not None:
                decoded_s[pos] = len(audio) / SAMPLE_RATE
            if decoded is not None:
                decoded[pos] = audio
            wav = torch.from_numpy(audio)
            for n, start in enumerate(range(0, len(audio), chunk)):
                piece = wav[start:start + chunk]
                if len(piece) >= self.reader.min_samples:  # a tail shorter than one frame adds no frame
                    pieces.append((pos, n, piece))
        per_record: dict[int, list] = {}
        pending = self._groups(pieces)
        while pending:
            group = pending.pop(0)
            t0 = time.time()
            try:
                feats = self.reader.features([p[2] for p in group])
            except Exception as exc:  # noqa: BLE001 - out of memory: halve and retry; anything else propagates
                from ..asr.backend import is_oom  # the one out-of-memory test (torch, cuDNN, allocator wrappers)

                if not is_oom(exc):
                    raise
                pending[:0] = self._after_oom(group, results, batch)
                continue
            for (pos, n, _), f in zip(group, feats):
                per_record.setdefault(pos, []).append((n, self.quantizer(f)))
            self.stat_update("forward_s", time.time() - t0)
            self.stat_update("forward_batches", 1)
        for pos, parts in per_record.items():
            if results[pos] is not None:  # one of its chunks did not fit even alone
                continue
            results[pos] = [int(u) for _, t in sorted(parts, key=lambda p: p[0]) for u in t.tolist()]
            self.stat_update("frames", len(results[pos]))
        return results

    def _after_oom(self, group: list, results: list, batch: list[dict]) -> list[list]:
        """Out of memory on `group`: keep half its padded seconds as the budget for the rest of the worker's life and
        re-plan the group within it (as ASR does); a chunk that fails alone fails its record."""
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        padded_s = len(group[0][2]) * len(group) / SAMPLE_RATE
        if len(group) == 1:
            pos = group[0][0]
            results[pos] = ItemError(f"{batch[pos]['audio_filepath']}: out of memory on one {padded_s:.1f} s chunk "
                                     f"even alone; lower --chunk-s (now {self.config.chunk_s:g})")
            return []
        self.budget_s = max(1.0, min(self.budget_s, padded_s / 2))
        self.stat_update("oom_halvings")
        self.stat_update("batch_s_budget_min", self.budget_s)
        logger.warning("s2s: out of memory on %.0f s of padded audio; batch budget now %.0f s", padded_s, self.budget_s)
        regrouped = self._groups(group)
        return regrouped if len(regrouped) > 1 else [group[: len(group) // 2], group[len(group) // 2:]]

    def _groups(self, pieces: list) -> list[list]:
        """Sub-batches of chunks, longest first, each within the batch budget of padded audio and none padded by more
        than 1 - MIN_FILL of its length (padding is wasted compute, which a CPU pays in full)."""
        budget = self.budget_s * SAMPLE_RATE
        ordered = sorted(pieces, key=lambda p: -len(p[2]))
        groups, cur = [], []
        for p in ordered:
            longest = len(cur[0][2]) if cur else 0
            if cur and (longest * (len(cur) + 1) > budget or len(p[2]) < MIN_FILL * longest):
                groups.append(cur)
                cur = []
            cur.append(p)
        if cur:
            groups.append(cur)
        return groups

    def _encode_record(self, record: dict, frame_units: list[int]) -> dict:
        from .kmeans import deduplicate

        cfg = self.config
        units, durations = deduplicate(frame_units)
        out = dict(record)
        out["units"], out["unit_durations"] = units, durations
        out["unit_frame_rate"] = SAMPLE_RATE / self.reader.hop
        if cfg.frame_units:
            out["frame_units"] = frame_units
        if cfg.units_format != "none":
            out["units_filepath"] = self.sink_write(mirror_path(record, cfg.input_root, "." + cfg.units_format),
                                                    _units_file(frame_units, cfg.units_format))
        return out

    # -- synthesis ---------------------------------------------------------------------------------------------------
    def _resynth_record(self, record: dict, frame_units: list[int], source=None) -> dict:
        from .kmeans import deduplicate

        units, durations = deduplicate(frame_units)
        out = self._write_audio(record, frame_units, dur_prediction=False)
        out["units"], out["unit_durations"] = units, durations
        if self.scorer is not None:
            t0 = time.time()
            out.update(self.scorer.compare(source, out["audio_filepath"]))
            self.stat_update("quality_s", time.time() - t0)
        return out

    def _synth_one(self, record: dict) -> dict:
        from .kmeans import expand

        units = record.get("units")
        if not isinstance(units, list) or not units:
            raise ItemError(f"{record['audio_filepath']}: no 'units' list in this record (is it an encode output?)")
        if self.config.dur_prediction:
            return self._write_audio(record, units, dur_prediction=True)
        if "frame_units" in record:
            return self._write_audio(record, record["frame_units"], dur_prediction=False)
        if "unit_durations" not in record:
            raise ItemError(f"{record['audio_filepath']}: no 'unit_durations'; use --dur-prediction with a vocoder "
                            "that has a duration predictor")
        return self._write_audio(record, expand(units, record["unit_durations"]), dur_prediction=False)

    def _write_audio(self, record: dict, units: list[int], dur_prediction: bool) -> dict:
        t0 = time.time()
        audio = self.vocoder.synthesize(units, dur_prediction=dur_prediction)
        self.stat_update("vocoder_s", time.time() - t0)
        sr = self.vocoder.sample_rate
        path = self.sink_write(mirror_path(record, self.config.input_root, ".wav"), wav_bytes(audio, sr))
        out = {k: v for k, v in record.items() if k != "offset"}  # the new file starts at 0
        out["source_audio_filepath"] = record["audio_filepath"]
        out["source_duration"] = record["duration"]
        if "offset" in record:
            out["source_offset"] = record["offset"]
        out["audio_filepath"], out["duration"] = path, len(audio) / sr
        return out

    def sink_write(self, relpath: str, data: bytes) -> str:
        if self.sink is None:
            raise RuntimeError("S2S stage has no file sink: the runner must provide one for files it writes")
        return self.sink.write_bytes(relpath, data)


def _units_file(frame_units: list[int], fmt: str) -> bytes:
    import numpy as np

    arr = np.asarray(frame_units, dtype=np.int64)
    buf = io.BytesIO()
    if fmt == "npy":
        np.save(buf, arr, allow_pickle=False)
    else:
        import torch

        torch.save(torch.from_numpy(arr), buf)
    return buf.getvalue()


def with_decoded_duration(record: dict, decoded_s: float | None) -> dict:
    """`record`, or a copy whose duration is what was decoded when the manifest's differs by more than 1 ms."""
    if decoded_s is None or abs(float(record.get("duration") or 0.0) - decoded_s) <= 1e-3:
        return record
    return {**record, "duration": round(decoded_s, 6)}
