"""The arithmetic of sizing a job (pure functions, no I/O): pilot sample, shard count, time limit, hours, wall time.

Model (docs/scaling.md): a task of `a` audio seconds takes `t0 + a / R`, where `R` is the task's throughput (audio
seconds per wall second, all its workers together) and `t0` its fixed cost (interpreter, imports, model load).
Shards are balanced by duration (`--strategy duration`: longest items first onto the lightest shard), so no shard
exceeds `A / N + longest item`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError

MIN_TIME_S = 60  # SLURM's --time has minute resolution
# With N = 4 x G shards, the slowest task of the last wave costs about a quarter of a task (docs/scaling.md).
SHARDS_PER_SLOT = 4
# Never let the fixed start-up cost exceed a fifth of a task when spreading shards over slots.
MIN_WORK_PER_STARTUP = 5


def stratified_sample(durations: list[float], k: int) -> list[int]:
    """Positions of `k` records, one from each of `k` equal-count strata of the records sorted by duration (its
    median), so short and long items are represented as in the corpus. Deterministic; ascending positions."""
    order = sorted(range(len(durations)), key=lambda i: (durations[i], i))
    k = max(1, min(k, len(order)))
    picks = []
    for s in range(k):
        lo, hi = len(order) * s // k, len(order) * (s + 1) // k
        picks.append(order[(lo + hi - 1) // 2])
    return sorted(picks)


@dataclass(frozen=True)
class Measured:
    """What the pilot measured."""

    audio_s: float  # audio seconds the pilot processed
    work_s: float  # wall seconds the shard took, start-up excluded
    startup_s: float  # fixed cost of a task: interpreter, imports, worker start-up and model load
    workers: int
    where: str  # e.g. "local host vm" or "SLURM job 12 on node vm"

    @property
    def task_rate(self) -> float:
        """Audio seconds per wall second for one task (all its workers)."""
        return self.audio_s / self.work_s

    @property
    def worker_rate(self) -> float:
        return self.task_rate / max(1, self.workers)


@dataclass(frozen=True)
class Limits:
    """What the cluster refuses beyond (from scontrol); None: no limit known."""

    partition: str | None = None
    max_time_s: int | None = None
    max_array_size: int = 1001
    time_source: str = "the partition's MaxTime"  # or the user's --time, when it is lower
    unchecked: str = "no SLURM here (no scontrol)"  # why no partition was read, when partition is None


@dataclass(frozen=True)
class Targets:
    task_work_s: float = 3600.0  # work per task to aim for: long enough to amortise t0, short enough to requeue
    safety: float = 2.0  # --time = safety x the longest task's expected time (+ the requeue signal's delay)
    signal_delay_s: int = 120
    concurrent: int | None = None  # tasks (GPUs) running at once
    budget_h: float | None = None
    shards: int | None = None  # forced by the user
    gpus_per_task: int = 0


@dataclass
class Sizing:
    shards: int
    task_s: float  # expected wall time of an average task
    task_max_s: float  # of the largest shard
    time_limit_s: int
    compute_h: float  # task hours: N x t0 + A / R
    gpu_h: float
    arrays: int
    parallelism: int | None
    fits_budget: bool | None
    notes: list[str] = field(default_factory=list)

    def wall_s(self, concurrent: int) -> float:
        """Run wall time with `concurrent` tasks at once: whole waves of tasks (queue wait not included)."""
        return math.ceil(self.shards / max(1, concurrent)) * self.task_s

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("shards", "task_s", "task_max_s", "time_limit_s", "compute_h", "gpu_h",
                                           "arrays", "parallelism", "fits_budget", "notes")}
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def _time_needed_s(t0: float, shard_audio_s: float, rate: float, tg: Targets) -> int:
    raw = tg.safety * (t0 + shard_audio_s / rate) + tg.signal_delay_s
    return max(MIN_TIME_S, math.ceil(raw / 60) * 60)


def size_job(audio_s: float, longest_s: float, items: int, m: Measured, limits: Limits, tg: Targets) -> Sizing:
    """Shard count, time limit and hours for `items` records of `audio_s` seconds in all; raises ConfigError when the
    partition cannot hold even one item per task."""
    rate, t0 = m.task_rate, m.startup_s
    work_s = audio_s / rate
    notes: list[str] = []

    def largest(n: int) -> float:  # audio of the largest shard under --strategy duration
        return min(audio_s, audio_s / n + longest_s)

    if tg.shards:
        n = tg.shards
    else:
        n = math.ceil(work_s / tg.task_work_s)
        if tg.concurrent:  # spread over the slots, unless tasks would then be mostly start-up
            n = max(n, min(SHARDS_PER_SLOT * tg.concurrent, math.floor(work_s / max(MIN_WORK_PER_STARTUP * t0, 60))))
    n = max(1, min(n, items))
    if limits.max_time_s is not None and _time_needed_s(t0, largest(n), rate, tg) > limits.max_time_s:
        cap_audio_s = rate * ((limits.max_time_s - tg.signal_delay_s) / tg.safety - t0) - longest_s
        if cap_audio_s <= 0:
            raise ConfigError(
                f"partition {limits.partition}: {limits.time_source} {fmt_time(limits.max_time_s)} cannot hold one "
                f"task with a "
                f"{tg.safety:g}x margin: start-up {t0:.0f} s + the longest item ({longest_s:.0f} s of audio at "
                f"{rate:.1f} audio s/s); choose a partition with a longer MaxTime, a lower --safety, or cut the "
                "longest items (e.g. with VAD segments)")
        needed = min(items, math.ceil(audio_s / cap_audio_s))
        notes.append(f"{'--shards ' + str(n) if tg.shards else str(n) + ' shard(s)'} would need tasks longer than "
                     f"{limits.time_source} allows ({fmt_time(limits.max_time_s)}): {needed} shards instead")
        n = needed
    task_s = t0 + audio_s / n / rate
    task_max_s = t0 + largest(n) / rate
    time_limit_s = _time_needed_s(t0, largest(n), rate, tg)
    if limits.max_time_s is not None:
        time_limit_s = min(time_limit_s, limits.max_time_s)
    compute_h = (n * t0 + work_s) / 3600
    gpu_h = compute_h * tg.gpus_per_task
    billed_h = gpu_h if tg.gpus_per_task else compute_h
    if t0 > task_s / 2:
        notes.append(f"start-up ({t0:.0f} s) is more than half of each task: fewer, longer shards would waste less")
    if tg.concurrent and n < tg.concurrent:
        notes.append(f"only {n} tasks for {tg.concurrent} slots: splitting further would spend more GPU time on "
                     f"start-up ({t0:.0f} s per task) than it saves in wall time")
    parallelism = min(tg.concurrent, n) if tg.concurrent else None
    return Sizing(shards=n, task_s=task_s, task_max_s=task_max_s, time_limit_s=time_limit_s, compute_h=compute_h,
                  gpu_h=gpu_h, arrays=math.ceil(n / limits.max_array_size), parallelism=parallelism,
                  fits_budget=None if tg.budget_h is None else billed_h <= tg.budget_h, notes=notes)


def fmt_time(seconds: float) -> str:
    """SLURM's D-HH:MM:SS (what --time takes)."""
    s = int(math.ceil(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    mi, s = divmod(s, 60)
    return f"{d}-{h:02d}:{mi:02d}:{s:02d}" if d else f"{h:02d}:{mi:02d}:{s:02d}"


def fmt_duration(seconds: float) -> str:
    """Readable: 42 s, 12.5 min, 3.2 h, 4.1 days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
