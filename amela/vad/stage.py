"""VadStage: TEN-VAD over every file of a corpus: speech segments, statistics, split points, segment records."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from ..errors import ItemError
from ..stage import Blob, Output, Resources, Stage
from .config import SAMPLE_RATE, VadConfig

DROPPED_KEYS = ("header_error",)  # the directory scan's note; a file that decoded has no header problem
SEGMENT_DROPPED_KEYS = ("offset", "duration", "text", "header_error", "speech_segments", "split_points")
PROBS = "probs"  # the blob holding each file's frame probabilities (--save-probs)
PRESETS = {
    # ASR input (transcription): hysteresis, generous padding, packed into <= 30 s records (cf. WhisperX)
    "asr": {"neg_threshold": 0.35, "min_speech_s": 0.1, "min_silence_s": 0.1, "pad_onset_s": 0.1,
            "pad_offset_s": 0.2, "max_segment_s": 30.0, "segments": True, "pack_to_s": 30.0, "pack_max_gap_s": 2.0},
    # training data: segments of 1 to 20 s with a little context, no long silences inside
    "training": {"neg_threshold": 0.35, "min_speech_s": 0.25, "min_silence_s": 0.3, "pad_onset_s": 0.1,
                 "pad_offset_s": 0.15, "max_segment_s": 20.0, "min_segment_s": 1.0, "segments": True},
}


class VadStage(Stage):
    name = "vad"
    config_cls = VadConfig
    resources = Resources(cpus_per_worker=1)
    accepts_directory = True
    streams = {"segments": "segments", "packed": "pack_to_s"}
    blobs = {PROBS: "save_probs"}
    presets = PRESETS
    description = "TEN-VAD speech detection: segments, speech ratio, statistics and split points per file"

    def __init__(self, config=None, sink=None):
        super().__init__(config if config is not None else VadConfig(), sink)
        self.vad = None

    # -- main process ----------------------------------------------------------------------------------------------
    @classmethod
    def doctor(cls) -> list[tuple[str, bool, str]]:
        from .doctor import checks

        return checks()

    def reports(self, outputs: Callable[[], Iterator[dict]]) -> dict[str, bytes]:
        from .report import build_reports

        return build_reports(outputs(), self.config)

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

    def process_one(self, record: dict):
        from ..audio import open_span

        cfg = self.config
        path = record["audio_filepath"]
        t0 = time.perf_counter()
        fh, span = open_span(record, cfg.channel)
        with fh:
            probs, flags, decode_s = self._detect(fh, span)
        t1 = time.perf_counter()
        if len(flags) == 0:
            samples = int(round(span.duration_s * SAMPLE_RATE))
            raise ItemError(f"{path}: too short for one VAD frame ({samples} samples at 16 kHz < hop {cfg.hop_size})")
        self.count_file(span.duration_s, decode_s, t1 - t0 - decode_s, len(flags))
        return self.results(record, probs, span.duration_s, span.start / span.samplerate)

    def results(self, record: dict, probs, duration_s: float, offset_s: float):
        """Everything the stage writes for one file, from its frame probabilities alone (no audio, no model): the
        full run and `amela vad resegment` share this, so the same probabilities give the same outputs."""
        from .segments import confidence, decide, file_stats, pack, postprocess, raw_segments, split_points

        cfg = self.config
        flags = decide(probs, cfg.threshold, cfg.neg_threshold)
        segs = postprocess(raw_segments(flags, cfg.frame_s), probs, cfg.frame_s, duration_s, cfg)
        out = {k: v for k, v in record.items() if k not in DROPPED_KEYS}
        if abs(float(record.get("duration") or 0.0) - duration_s) > 1e-3:
            out["duration"] = round(duration_s, 6)  # the audio that exists (manifest past the end, mp3 estimate)
        out.update(file_stats(segs, duration_s, cfg))
        out["speech_segments"] = [[_t(s + offset_s), _t(e + offset_s)] for s, e in segs]
        points = split_points(segs, duration_s, cfg.split_min_duration_s, cfg.split_every_s, cfg.split_min_silence_s)
        out["split_points"] = [_t(p + offset_s) for p in points]
        streams, blobs = {}, {}
        if cfg.segments or cfg.pack_to_s:
            conf = confidence(segs, probs, cfg.frame_s)
            if cfg.segments:
                streams["segments"] = segment_records(record, out["speech_segments"], conf)
            if cfg.pack_to_s:
                streams["packed"] = packed_records(record, pack(out["speech_segments"], cfg.pack_to_s,
                                                                cfg.pack_max_gap_s), conf)
        if cfg.save_probs:
            from .probs import encode

            blobs[PROBS] = Blob(encode(probs, cfg.save_probs), {
                "dtype": cfg.save_probs, "hop_size": cfg.hop_size, "frames": len(probs),
                "duration_s": duration_s, "offset_s": offset_s})
        return Output(out, streams, blobs) if streams or blobs else out

    def _detect(self, fh, span):
        """Decode block by block into a fresh native handle; returns (probabilities, flags, seconds decoding)."""
        from ..audio import iter_blocks

        self.vad.start()
        decode_s = 0.0
        try:
            blocks = iter_blocks(fh, span, dtype="int16")
            while True:
                t = time.perf_counter()
                block = next(blocks, None)
                decode_s += time.perf_counter() - t
                if block is None:
                    break
                self.vad.feed(block)
        finally:
            probs, flags = self.vad.finish()
        return probs, flags, decode_s

    def count_file(self, audio_s: float, decode_s: float, vad_s: float, frames: int) -> None:
        for label, value in (("files", 1), ("audio_s", audio_s), ("decode_s", decode_s), ("vad_s", vad_s),
                             ("frames", frames)):
            self.stat_update(label, value)


def _t(seconds: float) -> float:
    return round(seconds, 4)


def _source(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in SEGMENT_DROPPED_KEYS and k != "audio_filepath"}


def segment_records(record: dict, segments: list[list[float]], conf: list[float]) -> list[dict]:
    """One record per speech segment: the source's own fields (but not its transcript, which covers the whole
    file) with the segment's offset and duration, so the stream is an ASR input manifest as it stands."""
    source = _source(record)
    out = []
    for index, ((start, end), c) in enumerate(zip(segments, conf)):
        rec = {"audio_filepath": record["audio_filepath"], "offset": start, "duration": _t(end - start)}
        rec.update(source)
        rec["segment_index"] = index
        rec["confidence"] = c
        out.append(rec)
    return out


def packed_records(record: dict, groups: list[list[list[float]]], conf: list[float]) -> list[dict]:
    """One record per packed group of segments: offset/duration from its first start to its last end, the inner
    `speech_segments` (file seconds), their total `speech_s` and the duration-weighted mean `confidence`."""
    source = _source(record)
    out, k = [], 0
    for index, group in enumerate(groups):
        lengths = [e - s for s, e in group]
        c = conf[k: k + len(group)]
        k += len(group)
        speech_s = sum(lengths)
        rec = {"audio_filepath": record["audio_filepath"], "offset": group[0][0],
               "duration": _t(group[-1][1] - group[0][0])}
        rec.update(source)
        rec["pack_index"] = index
        rec["speech_segments"] = [list(g) for g in group]
        rec["speech_s"] = _t(speech_s)
        rec["confidence"] = round(sum(a * b for a, b in zip(lengths, c)) / speech_s, 4) if speech_s else 0.0
        out.append(rec)
    return out
