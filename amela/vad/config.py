"""VadConfig: every option of the VAD stage (flags, YAML keys and config.yaml come from these fields)."""
from __future__ import annotations

from dataclasses import dataclass

from ..audio import SAMPLE_RATE  # TEN-VAD's only rate: every input is resampled to it
from ..config import option
from ..errors import ConfigError

SAVE_PROBS_DTYPES = (None, "uint8", "float16", "float32")


@dataclass(frozen=True)
class VadConfig:
    hop_size: int = option(256, help="samples per VAD frame at 16 kHz (256 = 16 ms, 160 = 10 ms)", choices=(160, 256))
    threshold: float = option(0.5, help="speech probability threshold: frames scoring above it are speech")
    neg_threshold: float | None = option(
        None, help="hysteresis: once started, speech lasts while the probability stays above this (silero uses "
                   "threshold - 0.15); unset: the same as threshold (no hysteresis)")
    channel: int | None = option(None, help="use only this channel (0-based); unset: average all channels")
    batch_size: int = option(16, help="files per batch sent to a worker")
    split_min_duration_s: float = option(60.0, help="files at least this long get split points")
    split_every_s: float = option(30.0, help="aim for a split point about every this many seconds")
    split_min_silence_s: float = option(0.3, help="split points lie in the middle of silences at least this long")
    segments: bool = option(False, help="also write vad_segments.jsonl: one record per speech segment, ready for ASR")
    pad_s: float = option(0.0, help="extend each speech segment by this much on both sides")
    pad_onset_s: float | None = option(None, help="padding before each segment (unset: pad_s)")
    pad_offset_s: float | None = option(None, help="padding after each segment (unset: pad_s); segments whose "
                                                   "padding meets are joined and padded once, never twice")
    min_speech_s: float = option(0.0, help="drop speech segments shorter than this (after merging)")
    min_silence_s: float = option(0.0, help="merge speech segments separated by less silence than this")
    max_segment_s: float | None = option(
        None, help="split speech segments longer than this at their least speech-like frame; unset: no limit")
    min_segment_s: float = option(0.0, help="after padding and splitting, drop segments shorter than this (with "
                                            "max_segment_s: every segment length lies in [min, max])")
    pack_to_s: float | None = option(
        None, help="also write vad_packed.jsonl: consecutive segments of a file packed into records of at most this "
                   "many seconds, never cutting inside speech (longer segments are split at this length first)")
    pack_max_gap_s: float = option(1.0, help="packing joins segments separated by at most this much silence")
    save_probs: str | None = option(
        None, help="store every frame's speech probability in the run directory (uint8, float16 or float32; uint8 "
                   "when given without a value) for `amela vad resegment` / `amela vad tune`", const="uint8")

    @property
    def frame_s(self) -> float:
        return self.hop_size / SAMPLE_RATE

    @property
    def pad_onset(self) -> float:
        return self.pad_s if self.pad_onset_s is None else self.pad_onset_s

    @property
    def pad_offset(self) -> float:
        return self.pad_s if self.pad_offset_s is None else self.pad_offset_s

    @property
    def effective_max_segment_s(self) -> float | None:
        """max_segment_s, lowered to pack_to_s when packing (a packed record never cuts inside a segment)."""
        limits = [v for v in (self.max_segment_s, self.pack_to_s) if v is not None]
        return min(limits) if limits else None

    def check(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"vad: threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if self.channel is not None and self.channel < 0:
            raise ConfigError(f"vad: channel is a 0-based index, got {self.channel}")
        if self.batch_size < 1:
            raise ConfigError(f"vad: batch_size must be >= 1, got {self.batch_size}")
        for name in ("split_min_duration_s", "split_every_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"vad: {name} must be > 0, got {getattr(self, name)}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ConfigError(f"vad: neg_threshold must be between 0 and threshold ({self.threshold}), "
                              f"got {self.neg_threshold}")
        if self.save_probs not in SAVE_PROBS_DTYPES:
            raise ConfigError(f"vad: save_probs must be one of {', '.join(map(str, SAVE_PROBS_DTYPES[1:]))}, "
                              f"got {self.save_probs!r}")
        for name in ("split_min_silence_s", "pad_s", "pad_onset_s", "pad_offset_s", "min_speech_s", "min_silence_s",
                     "min_segment_s", "pack_max_gap_s"):
            if (getattr(self, name) or 0) < 0:
                raise ConfigError(f"vad: {name} must be >= 0, got {getattr(self, name)}")
        # Each piece of a split segment spans at least half of max_segment_s: it must hold two frames.
        for name in ("max_segment_s", "pack_to_s"):
            value = getattr(self, name)
            if value is not None and value < 4 * self.frame_s:
                raise ConfigError(f"vad: {name} must be at least {4 * self.frame_s:g} s (4 frames of {self.hop_size} "
                                  f"samples), got {value}")
        limit = self.effective_max_segment_s
        if limit is not None and self.min_segment_s > limit / 2:
            raise ConfigError(
                f"vad: min_segment_s ({self.min_segment_s}) must be at most half the segment limit ({limit:g} s): "
                "a long segment is cut into pieces of half the limit or more, which min_segment_s would then drop")
