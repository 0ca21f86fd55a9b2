"""AsrConfig: every option of the ASR stage (flags, YAML keys and config.yaml come from these fields)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import option
from ..errors import ConfigError

# Keys the stage must never overwrite with a transcript: the manifest contract and the VAD fields it reads.
PROTECTED_KEYS = ("audio_filepath", "duration", "offset", "split_points", "speech_segments")
MODEL_KINDS = ("auto", "asr", "salm")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class AsrConfig:
    model: str = option(help="a .nemo file, a SALM checkpoint directory, or a pretrained name "
                             "(e.g. nvidia/parakeet-tdt-0.6b-v2; fetch it first with `amela fetch-models`)")
    model_kind: str = option("auto", help="asr: a NeMo ASRModel (transcribe()); salm: a speechlm2 SALM (generate()); "
                                          "auto: whatever the checkpoint holds (a set kind is checked)",
                             choices=MODEL_KINDS)
    text_key: str = option("text", help="output key of the transcript")
    overwrite: bool = option(False, help="replace text_key when input records already have it (a reference)")
    batch_s: float | None = option(
        None, help="audio seconds per batch; default: from free GPU memory (GPU) or 60 (CPU)",
        old_names=("batch_seconds",))
    max_s: float = option(
        40.0, help="records longer than this are cut into pieces (at VAD split points if present) and reassembled",
        old_names=("max_seconds",))
    cut_search_s: float = option(
        5.0, help="without VAD split points, each cut falls at the quietest 20 ms in the last this-many seconds "
                  "of a max_s window", old_names=("cut_search_seconds",))
    timestamps: bool = option(False, help="add `words`: [{word, start, end}] in seconds from the record's start")
    scores: bool = option(False, help="add `score` (the decoder's log-probability score, summed over pieces)")
    channel: int | None = option(None, help="use only this channel (0-based); unset: average all channels")
    channel_selector: str | None = option(None, help="deprecated, use channel: 'average' is channel unset, an "
                                                     "index N is channel N")
    language: str | None = option(None, help="AED models (Canary): source and target language, e.g. en")
    salm_prompt: str = option("Transcribe the following: {audio}",
                              help="SALM user prompt; {audio} marks where the audio goes")
    max_new_tokens: int = option(256, help="SALM: most tokens generated per record (or piece)")
    device: str = option("auto", help="auto: CUDA when available", choices=DEVICES)
    dtype: str = option("auto", help="autocast dtype on CUDA (auto: bfloat16 when supported); CPU runs float32",
                        choices=DTYPES)
    load_threads: int = option(4, help="threads decoding audio inside a worker")

    def check(self) -> None:
        if not self.model.strip():
            raise ConfigError("asr: --model is required (a .nemo path, SALM directory or pretrained name)")
        if not self.text_key or self.text_key in PROTECTED_KEYS:
            raise ConfigError(f"asr: text_key {self.text_key!r} is not allowed (protected: {', '.join(PROTECTED_KEYS)})")
        if self.batch_s is not None and self.batch_s <= 0:
            raise ConfigError(f"asr: batch_s must be > 0, got {self.batch_s}")
        if self.max_s < 2.0:
            raise ConfigError(f"asr: max_s must be >= 2, got {self.max_s}")
        if not 0.0 < self.cut_search_s < self.max_s:
            raise ConfigError(f"asr: cut_search_s must be > 0 and < max_s ({self.max_s}), got {self.cut_search_s}")
        if self.channel is not None and self.channel < 0:
            raise ConfigError(f"asr: channel is a 0-based index, got {self.channel}")
        if "{audio}" not in self.salm_prompt:
            raise ConfigError(f"asr: salm_prompt must contain {{audio}}, got {self.salm_prompt!r}")
        if self.max_new_tokens < 1 or self.load_threads < 1:
            raise ConfigError("asr: max_new_tokens and load_threads must be >= 1")

    def __post_init__(self):
        """The deprecated channel_selector becomes channel (and is cleared, so config.yaml holds only channel)."""
        if self.channel_selector is None:
            return
        sel = self.channel_selector
        if sel != "average" and not sel.isdigit():
            raise ConfigError(f"asr: channel_selector must be 'average' or a channel index, got {sel!r}")
        channel = None if sel == "average" else int(sel)
        if self.channel is not None and self.channel != channel:
            raise ConfigError(f"asr: channel {self.channel} and the deprecated channel_selector {sel!r} disagree; "
                              "give channel only")
        logging.getLogger("amela").warning("asr: channel_selector is deprecated and will be removed; use %s",
                                           "channel unset (average)" if channel is None else f"channel {channel}")
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "channel_selector", None)
