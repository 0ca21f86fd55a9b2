"""Running a NeMo ASRModel over a list of mono float32 arrays: one transcribe() call per group, Hypotheses read back.

Imported only inside workers (it imports torch).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class PieceResult:
    """The transcript of one piece of audio; words' times are seconds from the piece's start."""

    text: str
    score: float | None = None
    words: list[dict] = field(default_factory=list)


def is_oom(exc: BaseException) -> bool:
    """CUDA (or CPU allocator) out-of-memory, whatever wrapper NeMo or cuDNN put around it."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "cudnn_status_alloc_failed" in text)


def autocast_for(device: str, dtype: str):
    """The autocast context for `dtype` on `device` ('auto': bfloat16 on CUDA when supported, else float32)."""
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if dtype == "float32":
        return nullcontext, "float32"
    return (lambda: torch.autocast(device_type=device, dtype=getattr(torch, dtype))), dtype


def _float(value) -> float | None:
    if value is None:
        return None
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None


def _words(hyp) -> list[dict]:
    stamps = getattr(hyp, "timestamp", None)
    if not isinstance(stamps, dict):
        return []
    return [{"word": str(w.get("word", "")), "start": _float(w.get("start")), "end": _float(w.get("end"))}
            for w in stamps.get("word") or []]


def to_result(hyp) -> PieceResult:
    if isinstance(hyp, str):
        return PieceResult(hyp)
    return PieceResult(str(getattr(hyp, "text", "") or ""), _float(getattr(hyp, "score", None)), _words(hyp))


class NemoAsrBackend:
    """transcribe(arrays) -> [PieceResult] with any NeMo ASRModel (CTC, RNNT/TDT, hybrid, AED)."""

    def __init__(self, model, config, device: str):
        self.model = model
        self.config = config
        self.device = device
        self.sample_rate = int(model.cfg.get("sample_rate") or model.preprocessor._sample_rate)
        self.autocast, self.dtype = autocast_for(device, config.dtype)
        self.extra = self._prompt_kwargs()

    def _prompt_kwargs(self) -> dict:
        """AED (Canary) models take their task through prompt slots; others must not get unknown keys."""
        from nemo.collections.asr.models import EncDecMultiTaskModel

        if isinstance(self.model, EncDecMultiTaskModel) and self.config.language:
            return {"source_lang": self.config.language, "target_lang": self.config.language}
        return {}

    def transcribe(self, arrays: list[np.ndarray]) -> list[PieceResult]:
        with torch.inference_mode(), self.autocast():
            hyps = self.model.transcribe(
                list(arrays), batch_size=len(arrays), return_hypotheses=True, verbose=False, num_workers=0,
                timestamps=True if self.config.timestamps else None, **self.extra)
        if isinstance(hyps, tuple):  # some decoders return (best, n-best)
            hyps = hyps[0]
        if len(hyps) != len(arrays):
            raise RuntimeError(f"model returned {len(hyps)} hypotheses for {len(arrays)} inputs")
        return [to_result(h) for h in hyps]

    def free_memory(self) -> None:
        if self.device == "cuda":
            torch.cuda.empty_cache()
