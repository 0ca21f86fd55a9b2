"""QualityStage: DNSMOS scores and signal measures per record (a file, or a span of one), for filtering."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from ..errors import ItemError
from ..stage import Resources, Stage
from .config import QualityConfig

DROPPED_KEYS = ("header_error",)


def worker_threads() -> int:
    """This worker's share of the cores: the runner sets OMP_NUM_THREADS to it before setup()."""
    from ..runtime import available_cpus

    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else available_cpus()


class QualityStage(Stage):
    name = "quality"
    config_cls = QualityConfig
    resources = Resources(cpus_per_worker=1)
    accepts_directory = True
    description = ("DNSMOS P.835 (sig, bak, ovrl) and P.808 with the models speechmos ships, plus peak, RMS, clipping, "
                   "bandwidth and DC offset per file or span; filter on them with `amela filter`")

    def __init__(self, config=None, sink=None):
        super().__init__(config if config is not None else QualityConfig(), sink)
        self.dnsmos = None

    # -- main process ----------------------------------------------------------------------------------------------
    @classmethod
    def doctor(cls) -> list[tuple[str, bool, str]]:
        from .doctor import checks

        return checks()

    def batches(self, records: list[dict]) -> list[list[int]]:
        """Consecutive records, at most batch_size of them and about batch_s seconds of audio."""
        out, cur, cur_s = [], [], 0.0
        for i, record in enumerate(records):
            seconds = float(record.get("duration") or 0.0)
            if cur and (len(cur) >= self.config.batch_size or cur_s + seconds > self.config.batch_s):
                out.append(cur)
                cur, cur_s = [], 0.0
            cur.append(i)
            cur_s += seconds
        if cur:
            out.append(cur)
        return out

    def reports(self, outputs: Callable[[], Iterator[dict]]) -> dict[str, bytes]:
        from .report import build_reports

        return build_reports(outputs(), self.config.dnsmos)

    def summary(self, outputs: Callable[[], Iterator[dict]]) -> dict:
        from .report import summarize

        return summarize(outputs())

    # -- worker ----------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        if self.config.dnsmos:
            from .dnsmos import Dnsmos

            self.dnsmos = Dnsmos(self.config.personalized, worker_threads(), self.config.window_batch)

    def process(self, batch: list[dict]) -> list:
        """Each record decoded block by block into the signal measures and its DNSMOS windows; the windows of the
        whole batch are scored in onnxruntime batches as they fill (so only about a window per record is held)."""
        with self.timer("cpu_s", time.process_time):
            return self._process(batch)

    def _process(self, batch: list[dict]) -> list:
        from .audio import read_span

        cfg = self.config
        windows = None
        if self.dnsmos is not None:
            from .dnsmos import Batch

            windows = Batch(self.dnsmos, cfg.hop_s)
        results: list = []
        t0 = time.perf_counter()
        for pos, record in enumerate(batch):
            stream = windows.record(pos) if windows is not None else None
            try:
                _, measures = read_span(record, cfg.channel, cfg.clip_level, stream.add if stream else None)
                if stream is not None:
                    stream.finish()
            except ItemError as exc:
                results.append(exc)
                continue
            except ValueError as exc:  # e.g. a span too short to leave one sample at 16 kHz
                results.append(ItemError(f"{record['audio_filepath']}: cannot score: {exc}"))
                continue
            results.append(self._record(record, measures))
        if windows is not None:
            for pos, scores in windows.results().items():
                results[pos].update(dnsmos_sig=_r(scores.sig), dnsmos_bak=_r(scores.bak), dnsmos_ovrl=_r(scores.ovrl),
                                    dnsmos_p808=_r(scores.p808), dnsmos_windows=scores.windows)
                self.stat_update("windows", scores.windows)
        dnsmos_s = windows.run_s if windows is not None else 0.0
        self.stat_update("dnsmos_s", dnsmos_s)
        self.stat_update("decode_s", time.perf_counter() - t0 - dnsmos_s)  # decoding, measures, resampling, windowing
        return results

    def _record(self, record: dict, measures: dict) -> dict:
        duration_s = measures.pop("duration_read_s")
        out = {k: v for k, v in record.items() if k not in DROPPED_KEYS}
        if abs(float(record.get("duration") or 0.0) - duration_s) > 1e-3:
            out["duration"] = round(duration_s, 6)  # the audio that exists (manifest past the end, mp3 estimate)
        out.update(measures)
        self.stat_update("files")
        self.stat_update("audio_s", duration_s)
        return out


def _r(score: float) -> float:
    return round(score, 5)
