"""VadConfig: every option of the VAD stage (flags, YAML keys and config.yaml come from these fields)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import option
from ..errors import ConfigError

SAMPLE_RATE = 16000  # TEN-VAD's only rate: every input is resampled to it


@dataclass(frozen=True)
class VadConfig:
    hop_size: int = option(256, help="samples per VAD frame at 16 kHz (256 = 16 ms, 160 = 10 ms)", choices=(160, 256))
    threshold: float = option(0.5, help="speech probability threshold: frames scoring above it are speech")
    channel: int | None = option(None, help="use only this channel (0-based); unset: average all channels")
    batch_size: int = option(16, help="files per batch sent to a worker")
    split_min_duration_s: float = option(60.0, help="files at least this long get split points")
    split_every_s: float = option(30.0, help="aim for a split point about every this many seconds")
    split_min_silence_s: float = option(0.3, help="split points lie in the middle of silences at least this long")
    segments: bool = option(False, help="also write vad_segments.jsonl: one record per speech segment, ready for ASR")
    pad_s: float = option(0.0, help="extend each speech segment by this much on both sides")
    min_speech_s: float = option(0.0, help="drop speech segments shorter than this (after merging)")
    min_silence_s: float = option(0.0, help="merge speech segments separated by less silence than this")
    max_segment_s: float | None = option(
        None, help="split speech segments longer than this at their least speech-like frame; unset: no limit")

    @property
    def frame_s(self) -> float:
        return self.hop_size / SAMPLE_RATE

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
        for name in ("split_min_silence_s", "pad_s", "min_speech_s", "min_silence_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad: {name} must be >= 0, got {getattr(self, name)}")
        # Each piece of a split segment spans at least half of max_segment_s: it must hold two frames.
        if self.max_segment_s is not None and self.max_segment_s < 4 * self.frame_s:
            raise ConfigError(
                f"vad: max_segment_s must be at least {4 * self.frame_s:g} s (4 frames of {self.hop_size} samples), "
                f"got {self.max_segment_s}")
