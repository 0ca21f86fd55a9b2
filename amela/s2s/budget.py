"""S2S batch budget: audio seconds per HuBERT forward pass (padding included), from free GPU memory like ASR's.

Pure functions (no torch): the main process plans batches with them; a worker measures its own free memory after the
models loaded and lowers its budget (halving) after an out-of-memory error. Figures: bench/memory.py, docs/s2s.md.
"""
from __future__ import annotations

from ..asr.batching import gpu_free_bytes_nvidia_smi

CPU_BATCH_SECONDS = 200.0  # on CPU batching buys no speed (docs/s2s.md); 200 s keeps memory near 2 GiB
# Peak activation memory of a HuBERT-base forward, measured on CPU in float32 with bench/memory.py (docs/s2s.md):
# the conv front end runs one chunk at a time, unpadded, so its transient follows the longest chunk (MIB_PER_CHUNK_
# SECOND x chunk length); the transformer runs on the padded batch (MIB_PER_BATCH_SECOND x padded batch seconds).
# Half precision halves both; the budget keeps that half as headroom for fragmentation and the vocoder.
MIB_PER_CHUNK_SECOND = 15.0
MIB_PER_BATCH_SECOND = 4.1
RESERVE_GIB = 1.0  # CUDA context, cuDNN workspaces, the k-means distances: kept out of the budget
MAX_BATCH_SECONDS = 1000.0  # ten 100 s chunks: bigger batches do not raise throughput, they only delay results


def budget_from_free_bytes(free_bytes: int, chunk_s: float) -> float:
    """The batch budget for a GPU with `free_bytes` free after the models loaded; never below one chunk."""
    usable_mib = free_bytes / 2**20 - RESERVE_GIB * 1024 - MIB_PER_CHUNK_SECOND * chunk_s
    return float(min(MAX_BATCH_SECONDS, max(chunk_s, usable_mib / MIB_PER_BATCH_SECOND)))


def planning_budget(batch_s: float | None, device: str, chunk_s: float) -> float:
    """What the main process plans with: the configured budget, else the first GPU's free memory, else CPU's."""
    if batch_s is not None:
        return float(batch_s)
    if device != "cpu":
        free = gpu_free_bytes_nvidia_smi()
        if free:
            return budget_from_free_bytes(free, chunk_s)
    return CPU_BATCH_SECONDS
