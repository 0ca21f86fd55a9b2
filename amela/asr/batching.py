"""Batches by audio seconds, not item count: a budget in seconds adapts to audio length, a count cannot.

Pure functions (no torch): the main process plans batches with them, and a worker re-splits a batch when its own
budget (measured on its GPU after the model loaded, or lowered after an out-of-memory error) is smaller.
"""
from __future__ import annotations

import os
import shutil
import subprocess

CPU_BATCH_SECONDS = 60.0  # on CPU a bigger batch buys little; keeps latency and memory modest
# Audio seconds per GiB of free GPU memory for Conformer-class models in half precision (attention is bounded by
# max_seconds per item); deliberately cautious: an out-of-memory error halves the batch and the budget is kept.
SECONDS_PER_FREE_GIB = 20.0
MAX_BATCH_SECONDS = 4000.0  # beyond this, bigger batches do not raise throughput, they only delay results
MIN_ITEM_SECONDS = 1.0  # NeMo pads shorter audio to 1 s, so a short item costs at least that


def item_cost(duration: float) -> float:
    return max(float(duration), MIN_ITEM_SECONDS)


def budget_from_free_bytes(free_bytes: int) -> float:
    gib = free_bytes / 2**30
    return float(min(MAX_BATCH_SECONDS, max(MIN_ITEM_SECONDS * 8, gib * SECONDS_PER_FREE_GIB)))


def plan_batches(durations: list[float], budget_s: float, sort: bool = True) -> list[list[int]]:
    """Positions grouped so each batch's audio seconds stay <= budget_s (an item over budget goes alone).

    sort=True orders by duration, longest first: similar lengths share a batch (little padding), and an
    out-of-memory error, if any, happens on the first batch instead of hours into the run.
    """
    order = sorted(range(len(durations)), key=lambda i: -durations[i]) if sort else list(range(len(durations)))
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0.0
    for i in order:
        cost = item_cost(durations[i])
        if current and total + cost > budget_s:
            batches.append(current)
            current, total = [], 0.0
        current.append(i)
        total += cost
    if current:
        batches.append(current)
    return batches


def split_costs(costs: list[float], budget_s: float) -> list[list[int]]:
    """Consecutive runs of positions whose costs sum to <= budget_s (keeps the given order)."""
    return plan_batches(costs, budget_s, sort=False)


def gpu_free_bytes_nvidia_smi() -> int | None:
    """Free memory of the first visible GPU via nvidia-smi: no CUDA context in the main process."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    cmd = [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"]
    if visible and visible not in ("-1", "NoDevFiles"):
        cmd += ["-i", visible]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
        return int(float(out.split()[0])) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def planning_budget(batch_seconds: float | None, device: str) -> float:
    """The budget the main process plans with: the configured one, else from the GPU's free memory, else CPU's."""
    if batch_seconds is not None:
        return float(batch_seconds)
    if device != "cpu":
        free = gpu_free_bytes_nvidia_smi()
        if free:
            return budget_from_free_bytes(free)
    return CPU_BATCH_SECONDS
