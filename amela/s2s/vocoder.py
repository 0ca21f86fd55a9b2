"""Unit HiFi-GAN vocoder: fairseq's CodeGenerator (plus textlesslib's style embedding for the Expresso vocoders),
loaded weights-only and strictly from a speech-resynthesis checkpoint (`{"generator": state_dict}`) and its JSON config.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import pickle
import zipfile

from .compat import import_fairseq, remap_weight_norm_keys
from .models import ModelFileError


def _generator_class():
    import_fairseq()
    import torch.nn as nn
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    class UnitGenerator(CodeGenerator):
        """CodeGenerator plus an optional style embedding (textlesslib's `multistyle`, concatenated after the
        speaker embedding, as the Expresso vocoders were trained)."""

        def __init__(self, cfg):
            super().__init__(cfg)
            self.multistyle = cfg.get("multistyle", None)
            if self.multistyle:
                self.style = nn.Embedding(cfg.get("num_styles", 100), cfg["embedding_dim"])

        def forward(self, **kwargs):
            if self.multistyle:
                # fairseq's CodeGenerator appends any extra (B, C, 1) conditioning after the speaker's.
                kwargs["style_embedding"] = self.style(kwargs.pop("style")).transpose(1, 2)
            return super().forward(**kwargs)

    return UnitGenerator


def read_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read the vocoder config: {exc}") from exc
    missing = [k for k in ("num_embeddings", "embedding_dim", "upsample_rates", "upsample_kernel_sizes",
                           "upsample_initial_channel", "resblock_kernel_sizes", "resblock_dilation_sizes")
               if k not in cfg]
    if missing:
        raise ModelFileError(f"{path}: not a unit HiFi-GAN config (missing {', '.join(missing)})")
    return cfg


class UnitVocoder:
    """Frame-level units -> waveform (float32 numpy, `sample_rate` Hz), one utterance at a time."""

    def __init__(self, checkpoint: str, config: str, device: str = "cpu", fp16: bool = False,
                 speaker_id: int = 0, style_id: int = 0):
        import torch

        self.cfg = read_config(config)
        self.device = torch.device(device)
        gen = _generator_class()(self.cfg)
        weights = _read_generator(checkpoint)
        weights, _ = remap_weight_norm_keys(weights, gen.state_dict().keys())
        try:
            gen.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"{checkpoint}: weights do not match the config {config}: {exc}") from exc
        with contextlib.redirect_stdout(io.StringIO()):  # fairseq prints "Removing weight norm..."
            gen.remove_weight_norm()
        gen.eval()
        self.dtype = torch.float16 if fp16 and self.device.type == "cuda" else torch.float32
        self.model = gen.to(self.device, self.dtype)
        self.num_units = int(self.cfg["num_embeddings"])
        self.hop = math.prod(self.cfg["upsample_rates"])  # output samples per unit frame
        self.sample_rate = int(self.cfg.get("sampling_rate", 16000))
        self.speaker_id, self.style_id = speaker_id, style_id
        self.has_duration_predictor = gen.dur_predictor is not None

    def synthesize(self, units, dur_prediction: bool = False):
        """`units`: frame-level unit ids (or deduplicated ones with dur_prediction). Returns float32 numpy audio."""
        import torch

        code = torch.as_tensor(units, dtype=torch.long).view(1, -1)
        if code.numel() == 0:
            raise ValueError("no units to synthesise")
        bad = code[(code < 0) | (code >= self.num_units)]
        if bad.numel():
            raise ValueError(f"unit {int(bad[0])} is outside this vocoder's 0..{self.num_units - 1}")
        if dur_prediction and not self.has_duration_predictor:
            raise ValueError("this vocoder has no duration predictor; give unit_durations or frame-level units")
        inputs = {"code": code.to(self.device)}
        if self.model.multispkr:
            inputs["spkr"] = torch.tensor([[self.speaker_id]], device=self.device)
        if getattr(self.model, "multistyle", None):
            inputs["style"] = torch.tensor([[self.style_id]], device=self.device)
        with torch.inference_mode():
            wav = self.model(**inputs, dur_prediction=dur_prediction)
        return wav.detach().float().view(-1).cpu().numpy()


def _read_generator(path: str) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(f"{path}: torch refused to load it with weights_only=True (not a plain weights "
                             f"file): {exc}") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable vocoder checkpoint (corrupt or truncated?): {exc}") from exc
    weights = state.get("generator", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ModelFileError(f"{path}: expected a unit HiFi-GAN checkpoint with a 'generator' state dict")
    return weights
