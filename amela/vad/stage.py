"""VadStage: TEN-VAD over every file of a corpus: speech segments, statistics, split points, segment records."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from ..errors import ItemError
from ..stage import Output, Resources, Stage
from .config import SAMPLE_RATE, VadConfig

CRASH_ENV = "AMELA_VAD_TEST_CRASH"  # test hook: a file whose basename matches crashes the worker inside ctypes
DROPPED_KEYS = ("header_error",)  # the directory scan's note; a file that decoded has no header problem
SEGMENT_DROPPED_KEYS = ("offset", "duration", "text", "header_error", "speech_segments", "split_points")


class VadStage(Stage):
    name = "vad"
    config_cls = VadConfig
    resources = Resources(cpus_per_worker=1)
    accepts_directory = True
    streams = ("segments",)
    description = "TEN-VAD speech detection: segments, speech ratio, statistics and split points per file"

    def __init__(self, config=None, sink=None):
        super().__init__(config if config is not None else VadConfig(), sink)
        self.vad = None
        self._counts = {"files": 0, "audio_s": 0.0, "decode_s": 0.0, "vad_s": 0.0, "cpu_s": 0.0, "frames": 0}

    # -- main process ----------------------------------------------------------------------------------------------
    def output_streams(self) -> tuple[str, ...]:
        return self.streams if self.config.segments else ()

    @classmethod
    def doctor(cls) -> list[tuple[str, bool, str]]:
        from .doctor import checks

        return checks()

    def reports(self, outputs: Callable[[], Iterator[dict]]) -> dict[str, bytes]:
        from .report import build_reports

        return build_reports(outputs())

    def summary(self, outputs: Callable[[], Iterator[dict]]) -> dict:
        from .report import summarize

        return summarize(outputs())

    # -- worker ----------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from .native import NativeVad, load_library

        self.vad = NativeVad(load_library(), self.config.hop_size, self.config.threshold)

    def teardown(self) -> None:
        if self.vad is not None:
            self.vad.close()

    def stats(self) -> dict:
        """Counters (the runner sums them over workers) and this worker's peak memory (it keeps the maximum)."""
        counts = dict(self._counts)
        counts["peak_rss_mb_max"] = peak_rss_mb()
        return counts

    def process(self, batch: list[dict]) -> list:
        cpu = time.process_time()
        results = []
        for record in batch:
            try:
                results.append(self.process_one(record))
            except ItemError as exc:
                results.append(exc)
        self._counts["cpu_s"] = round(self._counts["cpu_s"] + time.process_time() - cpu, 3)
        return results

    def process_one(self, record: dict):
        from .audio import open_span
        from .segments import file_stats, postprocess, raw_segments, split_points

        cfg = self.config
        path = record["audio_filepath"]
        t0 = time.perf_counter()
        fh, span = open_span(record, cfg.channel)
        with fh:
            probs, flags, decode_s = self._detect(fh, span, path)
        t1 = time.perf_counter()
        if len(flags) == 0:
            samples = int(round(span.duration_s * SAMPLE_RATE))
            raise ItemError(f"{path}: too short for one VAD frame ({samples} samples at 16 kHz < hop {cfg.hop_size})")
        duration_s = span.duration_s
        segs = postprocess(raw_segments(flags, cfg.frame_s), probs, cfg.frame_s, duration_s, cfg)
        offset = span.start / span.samplerate
        out = {k: v for k, v in record.items() if k not in DROPPED_KEYS}
        if abs(float(record.get("duration") or 0.0) - duration_s) > 1e-3:
            out["duration"] = round(duration_s, 6)  # the audio that exists (manifest past the end, mp3 estimate)
        out.update(file_stats(segs, duration_s, cfg))
        out["speech_segments"] = [[_t(s + offset), _t(e + offset)] for s, e in segs]
        points = split_points(segs, duration_s, cfg.split_min_duration_s, cfg.split_every_s, cfg.split_min_silence_s)
        out["split_points"] = [_t(p + offset) for p in points]
        self._count(duration_s, decode_s, t1 - t0 - decode_s, len(flags))
        if not cfg.segments:
            return out
        return Output(out, {"segments": segment_records(record, out["speech_segments"])})

    def _detect(self, fh, span, path: str):
        """Decode block by block into a fresh native handle; returns (probabilities, flags, seconds decoding)."""
        from .audio import iter_blocks

        crash = os.environ.get(CRASH_ENV)
        self.vad.start()
        decode_s = 0.0
        try:
            blocks = iter_blocks(fh, span, self.config.channel)
            while True:
                t = time.perf_counter()
                block = next(blocks, None)
                decode_s += time.perf_counter() - t
                if block is None:
                    break
                if crash and os.path.basename(path) == crash:
                    from .native import crash_now

                    crash_now()
                self.vad.feed(block)
        finally:
            probs, flags = self.vad.finish()
        return probs, flags, decode_s

    def _count(self, audio_s: float, decode_s: float, vad_s: float, frames: int) -> None:
        c = self._counts
        c["files"] += 1
        c["audio_s"] = round(c["audio_s"] + audio_s, 3)
        c["decode_s"] = round(c["decode_s"] + decode_s, 3)
        c["vad_s"] = round(c["vad_s"] + vad_s, 3)
        c["frames"] += frames


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec; ru_maxrss would report the
    parent's size at fork when that was larger."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux, bytes on macOS


def _t(seconds: float) -> float:
    return round(seconds, 4)


def segment_records(record: dict, segments: list[list[float]]) -> list[dict]:
    """One record per speech segment: the source's own fields (but not its transcript, which covers the whole
    file) with the segment's offset and duration, so the stream is an ASR input manifest as it stands."""
    source = {k: v for k, v in record.items() if k not in SEGMENT_DROPPED_KEYS and k != "audio_filepath"}
    out = []
    for index, (start, end) in enumerate(segments):
        rec = {"audio_filepath": record["audio_filepath"], "offset": start, "duration": _t(end - start)}
        rec.update(source)
        rec["segment_index"] = index
        out.append(rec)
    return out
