"""Splitting an unfinished shard in two (what `amela status --resubmit` does to a shard that ran out of time).

Shard N keeps its input's records already processed plus the first half (by audio duration) of the rest; the second
half moves to a new shard appended at the end of the plan (index M = the old shard count). Both halves keep per-record
resume: N's output.partial stays where it is, M starts empty. Merging restores input order because every line carries
its input position (shardio), and a record is never in two shard inputs at once, so nothing is duplicated or lost.

The steps are made idempotent by a journal (RUN_DIR/split.pending.json), so a split interrupted half-way is finished
by the next one (or by `finish_pending`): 1. journal; 2. M's input written; 3. N's input rewritten without M's
records; 4. plan.json records M (num_shards + 1, item counts, `splits`); 5. journal removed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from ..locks import Lock
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import RunPaths
from . import shardio
from .plan import _waiting, load_plan
from .schema import ShardSplit
from .shard import locked

logger = logging.getLogger("amela.runner")


def split_shard(paths: RunPaths, index: int) -> int | None:
    """Move the second half of shard `index`'s unprocessed records into a new shard; returns its index, or None when
    fewer than two records are left to process (nothing to split). The shard must not be running (its lock)."""
    with _waiting(Lock(paths.prepare_lock, f"preparing {paths.root}")), \
            locked(paths.shard(index).lock, f"shard {index} of {paths.root}"):
        _finish_pending(paths)
        sp = paths.shard(index)
        if sp.done.exists():
            return None
        lines = list(shardio.iter_lines(sp.input))
        done = {i for f in (sp.output, sp.failures) for i, _ in shardio.iter_lines(f)}
        todo = [(i, body) for i, body in lines if i not in done]
        if len(todo) < 2:
            return None
        cut = _half_by_duration([float(loads(body).get("duration") or 0.0) for _, body in todo])
        moved = todo[cut:]
        new = load_plan(paths).num_shards
        write_bytes_atomic(paths.pending_split, dumps({"shard": index, "into": new, "at": time.time()}))
        target = paths.shard(new)
        write_bytes_atomic(target.input, _lines(moved))
        stopped = _stopped(sp)  # an item's "stopped twice" count follows it (no requeue loop through a split)
        carried = {k: v for k, v in stopped.items() if int(k) in {i for i, _ in moved}}
        if carried:
            write_bytes_atomic(target.stopped, dumps(carried))
        _finish_pending(paths)
        logger.info("shard %d split: %d record(s) moved to new shard %d, %d left to do in shard %d (%d done)",
                    index, len(moved), new, cut, index, len(done))
        return new


def finish_pending(paths: RunPaths) -> None:
    """Complete a split that was interrupted (idempotent; nothing to do without a journal)."""
    if paths.pending_split.exists():
        with _waiting(Lock(paths.prepare_lock, f"preparing {paths.root}")):
            _finish_pending(paths)


def _finish_pending(paths: RunPaths) -> None:
    if not paths.pending_split.exists():
        return
    job = loads(paths.pending_split.read_bytes())
    index, new = job["shard"], job["into"]
    target = paths.shard(new).input
    if target.exists():
        moved = {i for i, _ in shardio.iter_lines(target)}
        src = paths.shard(index).input
        kept = [(i, body) for i, body in shardio.iter_lines(src) if i not in moved]
        write_bytes_atomic(src, _lines(kept))
        plan = load_plan(paths)
        if plan.num_shards == new:  # not recorded yet
            seconds = [_seconds(paths.shard(i).input) for i in (index, new)]
            plan = replace(
                plan, num_shards=new + 1,
                shard_items=[*plan.shard_items[:index], len(kept), *plan.shard_items[index + 1:], len(moved)],
                shard_seconds=[*plan.shard_seconds[:index], seconds[0], *plan.shard_seconds[index + 1:], seconds[1]],
                splits=(*plan.splits, ShardSplit(index, new, len(moved), job["at"])))
            write_bytes_atomic(paths.plan, dumps(plan.to_dict()))
    paths.pending_split.unlink()


def _half_by_duration(durations: list[float]) -> int:
    """Where to cut so both halves hold about half the audio (each at least one record)."""
    total, acc = sum(durations), 0.0
    for k, d in enumerate(durations):
        acc += d
        if total and acc >= total / 2:
            return min(max(k + 1, 1), len(durations) - 1)
    return len(durations) // 2


def _lines(rows: list[tuple[int, bytes]]) -> bytes:
    return b"".join(b"%d\t%s\n" % (i, body) for i, body in rows)  # the records' bytes as they were


def _seconds(path) -> float:
    return round(sum(float(loads(body).get("duration") or 0.0) for _, body in shardio.iter_lines(path)), 3)


def _stopped(sp) -> dict:
    try:
        return loads(sp.stopped.read_bytes())
    except (OSError, ValueError):
        return {}
