"""What state a run directory is in, from its files alone (the SLURM executor adds the scheduler's view).

At ten thousand shards this must stay cheap: a finished shard costs one stat of its DONE marker. Its figures (items
ok and failed, attempt times) are read once and kept in RUN_DIR/.status_cache.json, keyed by the marker's mtime (a
shard run again gets a new marker), so later calls parse nothing of it; the cache is best effort (a read-only run
directory is read in full each time).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..locks import is_held
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import SHARD_DONE, SHARD_STATS, RunPaths, shard_dir_name
from ..stage import load_stage
from . import attempts, shardio
from .plan import load_plan
from .schema import ShardStats

DONE, RUNNING, FAILED, MISSING = "done", "running", "failed", "missing"


@dataclass
class ShardStatus:
    index: int
    state: str
    items: int
    ok: int = 0
    failed: int = 0
    detail: str = ""
    spans: list | None = None  # a finished shard's attempt spans (see attempts.spans), read once and cached
    reason: str = ""  # `detail` without what is particular to this shard: shards are grouped by it (default: detail)


@dataclass
class RunStatus:
    stage: str
    items: int
    rejected: int
    shards: list[ShardStatus] = field(default_factory=list)
    merged: bool = False

    def indices(self, *states: str) -> list[int]:
        return [s.index for s in self.shards if s.state in states]

    @property
    def complete(self) -> bool:
        return all(s.state == DONE for s in self.shards)


def run_status(paths: RunPaths) -> RunStatus:
    plan = load_plan(paths)
    name = load_stage(plan.stage).name  # plan.stage may be an import path (module:Class)
    status = RunStatus(name, plan.items, plan.rejected)
    cache_path = str(paths.status_cache)
    cache = _read_cache(cache_path)
    fresh: dict[str, list] = {}
    stat, shards_dir = os.stat, str(paths.shards_dir)
    for i in range(plan.num_shards):
        items = plan.shard_items[i]
        shard_dir = os.path.join(shards_dir, shard_dir_name(i))  # RunPaths.shard(i).dir, without pathlib's cost
        try:
            mtime_ns = stat(os.path.join(shard_dir, SHARD_DONE)).st_mtime_ns
        except FileNotFoundError:
            mtime_ns = None
        if mtime_ns is not None:
            entry = cache.get(str(i))
            if not entry or entry[0] != mtime_ns:
                stats = ShardStats.read(os.path.join(shard_dir, SHARD_STATS))
                entry = [mtime_ns, stats.ok, stats.failed, [list(x) for x in attempts.spans(shard_dir, 0.0)]]
            fresh[str(i)] = entry
            status.shards.append(ShardStatus(i, DONE, items, entry[1], entry[2], spans=[tuple(x) for x in entry[3]]))
            continue
        sp = paths.shard(i)
        ok, failed = shardio.count_lines(sp.output), shardio.count_lines(sp.failures)
        reason = ""
        if not sp.input.exists():
            state, detail = MISSING, (f"its directory {sp.dir} was deleted: `amela run-shard {paths.root} {i}` "
                                      "rebuilds it from plan.json and the input, and runs it")
            reason = (f"their directories were deleted: `amela run-shard {paths.root} INDEX` rebuilds each from "
                      "plan.json and the input, and runs it")
        elif is_held(sp.lock):  # read-only probe: status works on a read-only run directory
            state, detail = RUNNING, ""
        elif sp.attempt.exists():
            state, detail = FAILED, "started but did not finish (crashed, killed or interrupted)"
        else:
            state, detail = MISSING, "never started"
        status.shards.append(ShardStatus(i, state, items, ok, failed, detail, reason=reason))
    if fresh != cache:
        try:
            write_bytes_atomic(cache_path, dumps(fresh))
        except OSError:
            pass  # a read-only run directory: no cache, the same answer
    status.merged = paths.output(name).exists() and paths.stats.exists() and status.complete
    return status


def _read_cache(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            data = loads(fh.read())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: rebuilt from the shards' own files


def index_ranges(indices) -> str:
    """A set of shard indices, compact: [0,1,2,5,7,8] -> '0-2,5,7-8' (ten thousand shards stay one short line). The
    form is also SLURM's --array syntax, which the SLURM executor writes with executors.slurm.array_list."""
    out, run = [], []
    for i in sorted(indices):
        if run and i != run[-1] + 1:
            out.append(_span(run))
            run = []
        run.append(i)
    if run:
        out.append(_span(run))
    return ",".join(out)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"
