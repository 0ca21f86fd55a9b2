"""Stored frame probabilities: encoding for `--save-probs`, decoding for resegment, tune and `amela vad probs`.

uint8 stores round(p * 255) (1 byte per frame: 16 ms at hop 256, so 100,000 h take 22.5 GB); its frame decisions
agree with float32's except for frames within 1/510 of the threshold. float32 is bit-exact: resegmenting it equals
a full rerun. The library's -1 for an unscored frame (hop 160, first frame) is stored as is in float16/float32 and as
0 in uint8: it is never speech either way.
"""
from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE

BYTES_PER_FRAME = {"uint8": 1, "float16": 2, "float32": 4}


def encode(probs: np.ndarray, dtype: str) -> bytes:
    p = np.asarray(probs, np.float32)
    if dtype == "uint8":
        return np.rint(np.clip(p, 0.0, 1.0) * 255.0).astype(np.uint8).tobytes()
    if dtype in ("float16", "float32"):
        return p.astype("<f2" if dtype == "float16" else "<f4").tobytes()
    raise ValueError(f"unknown probability dtype {dtype!r}")


def decode(data: bytes, dtype: str) -> np.ndarray:
    """float32 probabilities."""
    if dtype == "uint8":
        return np.frombuffer(data, np.uint8).astype(np.float32) / np.float32(255.0)
    if dtype == "float16":
        return np.frombuffer(data, "<f2").astype(np.float32)
    if dtype == "float32":
        return np.frombuffer(data, "<f4").copy()
    raise ValueError(f"unknown probability dtype {dtype!r}")


def storage_bytes_per_hour(dtype: str, hop_size: int = 256) -> float:
    return 3600 * SAMPLE_RATE / hop_size * BYTES_PER_FRAME[dtype]
