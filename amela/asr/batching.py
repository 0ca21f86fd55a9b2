"""Batches by audio seconds, not item count: a budget in seconds adapts to audio length, a count cannot.

Pure functions (no torch): the main process plans batches with them, and a worker re-splits a batch when its own
budget (measured on its GPU after the model loaded, or lowered after an out-of-memory error) is smaller.
"""
from __future__ import annotations

import os
import shutil
import subprocess

CPU_BATCH_SECONDS = 60.0  # on CPU a bigger batch buys little; keeps latency and memory modest
# Memory model (docs/asr.md): peak activation memory per audio second in a batch, measured with bench/memory.py on
# the full-size parakeet-tdt-0.6b-v2 architecture (FastConformer-XL + TDT) on CPU in float32: 318, 584, 1,909 and
# 2,082 MiB at 30, 60, 120 and 240 s; 16 MiB/s is the upper envelope (the 120 s point). Attention is bounded by
# max_s per item, so the cost is linear in batch seconds. bf16 autocast takes about half: headroom.
ACTIVATION_MIB_PER_SECOND = 16.0
RESERVE_MIB = 512.0  # CUDA context, cuBLAS/cuDNN workspaces: kept out of the budget
MAX_BATCH_SECONDS = 4000.0  # beyond this, bigger batches do not raise throughput, they only delay results
MIN_ITEM_SECONDS = 1.0  # NeMo pads shorter audio to 1 s, so a short item costs at least that


def item_cost(duration: float) -> float:
    return max(float(duration), MIN_ITEM_SECONDS)


def budget_from_free_bytes(free_bytes: int, cast_bytes: int = 0) -> float:
    """Audio seconds per batch for `free_bytes` free after the model loaded. `cast_bytes`: what autocast's 16-bit
    copies of the weights will take (half the fp32 weights' bytes under bf16/fp16, 0 in float32)."""
    usable_mib = (free_bytes - cast_bytes) / 2**20 - RESERVE_MIB
    return float(min(MAX_BATCH_SECONDS, max(MIN_ITEM_SECONDS * 8, usable_mib / ACTIVATION_MIB_PER_SECOND)))


def predicted_peak_bytes(budget_s: float, weight_bytes: int, cast_bytes: int = 0) -> int:
    """What the memory model expects a full batch of `budget_s` to peak at (weights included), for benchmarks."""
    return int(weight_bytes + cast_bytes + budget_s * ACTIVATION_MIB_PER_SECOND * 2**20)


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


def planning_budget(batch_s: float | None, device: str) -> float:
    """The budget the main process plans with: the configured one, else from the GPU's free memory, else CPU's."""
    if batch_s is not None:
        return float(batch_s)
    if device != "cpu":
        free = gpu_free_bytes_nvidia_smi()
        if free:
            return budget_from_free_bytes(free)
    return CPU_BATCH_SECONDS
