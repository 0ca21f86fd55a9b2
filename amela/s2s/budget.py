"""S2S batch budget: audio seconds per HuBERT forward pass (padding included), from free GPU memory like ASR's.

Pure functions (no torch): the main process plans batches with them; a worker measures its own free memory after the
models loaded and lowers its budget (halving) after an out-of-memory error. Figures: bench/memory.py, docs/s2s.md.
"""
from __future__ import annotations

from ..asr.batching import gpu_free_bytes_nvidia_smi

CPU_BATCH_SECONDS = 200.0  # on CPU batching buys no speed (docs/s2s.md); 200 s keeps memory near 2 GiB
# Activation memory of a HuBERT-base forward, measured on CPU in float32 with bench/memory.py (docs/s2s.md):
# MIB_PER_SECOND for every audio second in the batch, plus MIB_PER_SECOND_SQUARED per second squared of each chunk
# (self-attention over T = 50 frames/s is quadratic in the chunk's length). Half precision halves both; the budget
# keeps that half as headroom for the allocator's fragmentation and the vocoder.
MIB_PER_SECOND = 9.0
MIB_PER_SECOND_SQUARED = 0.12
RESERVE_GIB = 1.0  # CUDA context, cuDNN workspaces, the k-means distances: kept out of the budget
MAX_BATCH_SECONDS = 2000.0  # bigger batches do not raise throughput, they only delay results


def seconds_per_gib(chunk_seconds: float) -> float:
    """Audio seconds that one GiB of free memory holds when chunks are `chunk_seconds` long."""
    return 1024.0 / (MIB_PER_SECOND + MIB_PER_SECOND_SQUARED * chunk_seconds)


def budget_from_free_bytes(free_bytes: int, chunk_seconds: float) -> float:
    """The batch budget for a GPU with `free_bytes` free after the models loaded; never below one chunk."""
    gib = max(0.0, free_bytes / 2**30 - RESERVE_GIB)
    return float(min(MAX_BATCH_SECONDS, max(chunk_seconds, gib * seconds_per_gib(chunk_seconds))))


def planning_budget(batch_seconds: float | None, device: str, chunk_seconds: float) -> float:
    """What the main process plans with: the configured budget, else the first GPU's free memory, else CPU's."""
    if batch_seconds is not None:
        return float(batch_seconds)
    if device != "cpu":
        free = gpu_free_bytes_nvidia_smi()
        if free:
            return budget_from_free_bytes(free, chunk_seconds)
    return CPU_BATCH_SECONDS
