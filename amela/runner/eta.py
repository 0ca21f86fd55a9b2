"""Run-level progress for `amela status`: throughput so far and an ETA for the whole run, from files alone.

Throughput is measured over the run's active time (the union of all shard attempts), so a run resumed days later is
not shown as slow; audio seconds come from the plan (per-shard totals), so no record is read.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..paths import RunPaths
from . import attempts
from .plan import load_plan


@dataclass
class RunProgress:
    items_done: int
    items_total: int
    audio_done_s: float
    audio_total_s: float
    active_s: float  # wall time during which at least one shard was running
    first_start: float | None
    running: int

    @property
    def items_per_s(self) -> float | None:
        return self.items_done / self.active_s if self.active_s > 0 and self.items_done else None

    @property
    def audio_per_s(self) -> float | None:
        return self.audio_done_s / self.active_s if self.active_s > 0 and self.audio_done_s else None

    @property
    def eta_s(self) -> float | None:
        """Seconds until every item is processed, at the throughput so far (None: nothing to go on)."""
        if self.items_done >= self.items_total:
            return 0.0
        rate = self.audio_per_s
        if rate:
            return max(self.audio_total_s - self.audio_done_s, 0.0) / rate
        return (self.items_total - self.items_done) / self.items_per_s if self.items_per_s else None


def run_progress(paths: RunPaths, status, now: float | None = None) -> RunProgress:
    """`status`: the RunStatus of the run (ok/failed per shard)."""
    now = time.time() if now is None else now
    plan = load_plan(paths)
    done_items, done_audio, intervals = 0, 0.0, []
    for s in status.shards:
        n = s.ok + s.failed
        done_items += n
        if s.items:
            done_audio += plan.shard_seconds[s.index] * min(n / s.items, 1.0)
        intervals += (s.spans if s.spans is not None
                      else attempts.spans(paths.shard(s.index).dir, now if s.state == "running" else 0.0))
    starts = [a for a, _ in intervals]
    return RunProgress(done_items, status.items, done_audio, float(plan.audio_seconds or 0.0),
                       _union_s(intervals), min(starts) if starts else None,
                       sum(s.state == "running" for s in status.shards))


def _union_s(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def progress_line(paths: RunPaths, status, now: float | None = None) -> str:
    """'throughput so far ...; ETA ...' for the status printers (local and SLURM)."""
    p = run_progress(paths, status, now)
    if not p.items_done:
        return "  throughput: nothing processed yet; ETA unknown"
    if p.items_per_s is None:
        return "  throughput: unknown (this run's shards recorded no attempt times)"
    rate = (f"  throughput so far: {p.items_per_s:.2f} items/s, {p.audio_per_s or 0:.1f} audio s/s "
            f"over {_clock(p.active_s)} of activity")
    if p.items_done >= p.items_total:
        return rate + "; all items processed"
    eta = p.eta_s
    if p.running == 0:
        return rate + f"; ETA {_clock(eta)} of processing once shards run again (none is running now)"
    return rate + f"; ETA {_clock(eta)} at this rate ({p.running} shard(s) running)"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
