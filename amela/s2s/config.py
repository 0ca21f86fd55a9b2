"""S2S options: one frozen dataclass; each field is a YAML key and a `--flag` of `amela run s2s`."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import option
from ..errors import ConfigError
from .models import DEFAULT_DENSE, DEFAULT_KMEANS, DEFAULT_LAYER, DEFAULT_VOCODER

MODES = ("encode", "resynth", "synth")
UNIT_FILE_FORMATS = ("none", "npy", "pt")


@dataclass(frozen=True)
class S2SConfig:
    mode: str = option("encode", help="encode: audio -> units; resynth: audio -> units -> audio; synth: units (from "
                       "an encode run) -> audio", choices=MODES)
    dense: str = option(DEFAULT_DENSE, help="HuBERT checkpoint: a model-zoo name (see docs/s2s.md) or a path")
    layer: int = option(DEFAULT_LAYER, help="transformer layer whose features are quantised (1-based)")
    kmeans: str = option(DEFAULT_KMEANS, help="k-means quantiser: a model-zoo name, a k-means pickle, or a .npy "
                         "array of centroids (K x D)")
    vocoder: str = option(DEFAULT_VOCODER, help="unit HiFi-GAN generator: a model-zoo name or a checkpoint path")
    vocoder_config: str | None = option(None, help="the vocoder's config.json (default: the zoo entry's, or "
                                        "config.json beside the checkpoint)")
    speaker_id: int = option(0, help="speaker index for multi-speaker vocoders")
    style_id: int = option(0, help="style index for multi-style (Expresso) vocoders")
    dur_prediction: bool = option(False, help="synth: let the vocoder's duration predictor set unit lengths "
                                  "instead of the recorded unit_durations")
    input_root: str | None = option(None, help="output files mirror the input tree relative to this directory "
                                    "(default: the input's absolute path without its leading '/')")
    frame_units: bool = option(False, help="encode: also write the raw frame-level unit sequence (frame_units)")
    units_format: str = option("none", help="encode: also write one file of frame-level units per record",
                               choices=UNIT_FILE_FORMATS)
    channel: int | None = option(None, help="use only this channel (0-based); unset: average all channels")
    chunk_s: float = option(100.0, help="long audio is encoded in chunks of this length and the units stitched "
                            "(as textlesslib did)", old_names=("chunk_seconds",))
    batch_s: float | None = option(None, help="audio seconds per forward pass, padding included (default: on GPU "
                                   "from its free memory after the models loaded, see docs/s2s.md; on CPU 200)",
                                   old_names=("batch_seconds",))
    device: str = option("auto", help="auto (cuda when available), cpu, cuda, cuda:N")
    fp16: bool = option(False, help="half precision on GPU")
    trust_pickle: bool = option(False, help="allow unpickling a k-means file whose sha256 is not in the registry")
    cache_dir: str | None = option(None, help="model cache (default: $AMELA_CACHE, else ~/.cache/amela)")
    quality: bool = option(False, help="resynth: also score DNSMOS of each resynthesised file and of its source "
                           "(dnsmos_*, source_dnsmos_*, dnsmos_*_delta; s2s_quality.csv/.png; see docs/quality.md)")

    def check(self) -> None:
        if self.channel is not None and self.channel < 0:
            raise ConfigError(f"channel is a 0-based index, got {self.channel}")
        if self.layer < 1:
            raise ConfigError(f"layer must be >= 1 (1-based), got {self.layer}")
        if not self.chunk_s >= 1.0:
            raise ConfigError(f"chunk_s must be >= 1, got {self.chunk_s}")
        if self.batch_s is not None and not self.batch_s > 0:
            raise ConfigError(f"batch_s must be > 0, got {self.batch_s}")
        if self.speaker_id < 0 or self.style_id < 0:
            raise ConfigError("speaker_id and style_id must be >= 0")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.mode != "encode" and (self.frame_units or self.units_format != "none"):
            raise ConfigError("frame_units and units_format apply to --mode encode only")
        if self.quality and self.mode != "resynth":
            raise ConfigError("quality applies to --mode resynth only (score other audio with `amela run quality`)")
