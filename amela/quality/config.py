"""QualityConfig: every option of the quality stage (flags, YAML keys and config.yaml come from these fields)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import option
from ..errors import ConfigError

# the fields a quality record gains (the stage writes them, the report reads them)
DNSMOS_FIELDS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
SIGNAL_FIELDS = ("peak_dbfs", "rms_dbfs", "clipping_ratio", "bandwidth_hz", "dc_offset")


@dataclass(frozen=True)
class QualityConfig:
    hop_s: float = option(9.01, help="seconds between DNSMOS windows (9.01 s each): 9.01 scores each second once; "
                          "1.0 is the reference's hop (speechmos, the DNS Challenge script), about 9x slower on "
                          "long files and exactly its scores")
    dnsmos: bool = option(True, help="score DNSMOS (--no-dnsmos: only the signal measures, much faster)")
    personalized: bool = option(False, help="the personalised DNSMOS P.835 model (penalises interfering talkers)")
    channel: int | None = option(None, help="use only this channel (0-based); unset: average all channels")
    clip_level: float = option(0.999, help="a sample at or above this magnitude (full scale 1.0) counts as clipped")
    batch_size: int = option(16, help="at most this many records per batch sent to a worker")
    batch_s: float = option(300.0, help="at most about this many seconds of audio per batch (a longer record goes "
                            "alone), so that long files spread over the workers")
    window_batch: int = option(1, help="DNSMOS windows per onnxruntime call; on CPU more saves no time (the P.835 "
                               "model is compute-bound) and costs about 220 MB of activations per window")

    def check(self) -> None:
        if not self.hop_s > 0:
            raise ConfigError(f"quality: hop_s must be > 0, got {self.hop_s}")
        if self.channel is not None and self.channel < 0:
            raise ConfigError(f"quality: channel is a 0-based index, got {self.channel}")
        if not 0.0 < self.clip_level <= 1.0:
            raise ConfigError(f"quality: clip_level must be in (0, 1], got {self.clip_level}")
        if not self.batch_s > 0:
            raise ConfigError(f"quality: batch_s must be > 0, got {self.batch_s}")
        for name in ("batch_size", "window_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"quality: {name} must be >= 1, got {getattr(self, name)}")
