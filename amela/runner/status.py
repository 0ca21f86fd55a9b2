"""What state a run directory is in, from its files alone (the SLURM executor adds the scheduler's view)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..locks import is_held
from ..manifest import loads
from ..paths import RunPaths
from ..stage import load_stage
from . import shardio
from .plan import load_plan

DONE, RUNNING, FAILED, MISSING = "done", "running", "failed", "missing"


@dataclass
class ShardStatus:
    index: int
    state: str
    items: int
    ok: int = 0
    failed: int = 0
    detail: str = ""


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
    name = load_stage(plan["stage"]).name  # plan["stage"] may be an import path (module:Class)
    status = RunStatus(name, plan["items"], plan["rejected"])
    for i in range(plan["num_shards"]):
        sp = paths.shard(i)
        items = plan["shard_items"][i]
        if sp.done.exists():
            stats = loads(sp.stats.read_bytes())
            status.shards.append(ShardStatus(i, DONE, items, stats["ok"], stats["failed"]))
            continue
        ok, failed = shardio.count_lines(sp.output), shardio.count_lines(sp.failures)
        if not sp.input.exists():
            state, detail = MISSING, (f"its directory {sp.dir} was deleted: `amela run-shard {paths.root} {i}` "
                                      "rebuilds it from plan.json and the input, and runs it")
        elif is_held(sp.lock):  # read-only probe: status works on a read-only run directory
            state, detail = RUNNING, ""
        elif (sp.dir / "ATTEMPT").exists():
            state, detail = FAILED, "started but did not finish (crashed, killed or interrupted)"
        else:
            state, detail = MISSING, "never started"
        status.shards.append(ShardStatus(i, state, items, ok, failed, detail))
    status.merged = paths.output(name).exists() and paths.stats.exists() and status.complete
    return status
