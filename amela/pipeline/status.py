"""One line per step: its state from its run directory, overlaid with SLURM's view of the jobs submitted for it."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..paths import PipelinePaths


@dataclass
class StepStatus:
    step: str
    state: str  # complete | partial | running | queued | failed | pending
    items: int = 0
    ok: int = 0
    failed: int = 0
    detail: str = ""
    repair: str = ""


def rerun_command(root: str, backend: str) -> str:
    """What repairs a pipeline: run it again from its saved copy (complete steps are skipped)."""
    parts = ["amela", "pipeline", "run", str(PipelinePaths(root).spec), "-o", root]
    if backend != "local":
        parts += ["--backend", backend]
    return shlex.join(parts)


def step_statuses(pipe) -> list[StepStatus]:
    from ..runner import load_plan, run_status
    from .slurm import failed_tasks, job_states, load_jobs

    pp = pipe.paths
    jobs = load_jobs(pp)
    states = job_states(jobs)
    rows = []
    for step in pipe.spec.steps:
        paths = pp.step(step.name)
        row = StepStatus(step.name, "pending")
        if paths.plan.exists():
            st = run_status(paths)
            row.items = load_plan(paths).items
            row.ok = sum(s.ok for s in st.shards)
            row.failed = sum(s.failed for s in st.shards)
            done = len(st.indices("done"))
            if st.complete and st.merged:
                row.state = "complete"
            else:
                row.state = "partial"
                row.detail = f"{done}/{len(st.shards)} shard(s) done" + (", not merged" if st.complete else "")
        elif paths.root.exists():
            row.detail = "not prepared yet"
        else:
            row.detail = f"waiting for {step.upstream}" if step.upstream else "not started"
        own = jobs.get(step.name, {})
        active = [k for k, s in states.items() if _job_of(k) in _ids(own) and s.state in _ACTIVE]
        bad = failed_tasks(own, states)
        if row.state != "complete" and active:
            row.state = "running" if any(states[k].state == "RUNNING" for k in active) else "queued"
        elif row.state != "complete" and bad:
            row.state = "failed"
            row.detail = "; ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        rows.append(row)
    busy = any(r.state in ("running", "queued") for r in rows)
    for row in rows:
        if row.state in ("partial", "failed", "pending") and not busy:
            row.repair = rerun_command(pipe.root, pipe.backend)
    return rows


def _ids(own: dict) -> set[str]:
    ids = set()
    for value in own.values():
        ids.update(value if isinstance(value, list) else [value])
    return {str(i) for i in ids if i}


def _job_of(key: str) -> str:
    return key.split("_")[0]


_ACTIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUE_HOLD"})
