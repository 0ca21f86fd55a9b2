"""`amela status` for runs submitted to SLURM: the runner's status report (runner/status_report.py) with the
scheduler's states added, then its jobs, resubmissions, each unfinished task's log tail, and `--resubmit`.

Kept apart from slurm_status, which slurm_repair and the submitters read, so that resubmission (slurm_repair) can use
the view and this printer can use resubmission without a cycle.
"""
from __future__ import annotations

import shlex
import time
from collections import defaultdict

from ..paths import RunPaths
from . import slurm
from .slurm_status import NEEDS_WORK, ORDER, discover_arrays, load_arrays, merge_hint, resubmit_commands, shard_views, tail


def print_status(paths: RunPaths, resubmit: bool = False, max_attempts: int | None = None) -> int:
    """The CLI's `amela status RUN_DIR` for a run with SLURM jobs; returns 0 when every shard is done. With
    `resubmit`, the shards that need work are resubmitted with adjusted resources (slurm_repair)."""
    from ..runner import index_ranges, load_spec
    from ..runner.status_report import print_report

    stage_name = load_spec(paths).stage_class().name
    status, views = shard_views(paths, stage_name)
    by_state = defaultdict(list)
    for v in views:
        by_state[v.state].append(v.index)
    print_report(paths, status, by_state, ORDER, always=("done", "failed", "missing"))
    _print_jobs(paths)
    _print_history(paths)
    todo = [v.index for v in views if v.state in NEEDS_WORK]
    for v in views:
        if v.state in NEEDS_WORK and v.state != "missing":
            print(f"shard {v.index}: {v.state}: {v.detail}")
            lines = tail(v.log) if v.log else []
            if lines:
                print(f"  end of {v.log}:")
                print("\n".join(f"    | {line}" for line in lines))
    if todo and resubmit:
        given_up = _resubmit(paths, stage_name, max_attempts)
        if given_up:
            print(f"not resubmitted, {len(given_up)} shard(s) [{index_ranges(given_up)}]: by hand, once fixed:")
            for cmd in resubmit_commands(paths, stage_name, given_up):
                print(f"  {cmd}")
            print(f"  {merge_hint(paths, status.active_jobs)}")
    elif todo:
        print(f"resubmit only these {len(todo)} shard(s) [{index_ranges(todo)}]:")
        for cmd in resubmit_commands(paths, stage_name, todo):
            print(f"  {cmd}")
        if any(s.backend == "script" for s in load_arrays(paths)[-1:]):
            print("  (add the sbatch options you submitted with, e.g. --time or --cpus-per-task, if not in the script)")
        print(f"  {merge_hint(paths, status.active_jobs)}")
        if not any(s.backend != "sbatch" for s in load_arrays(paths)[-1:]):
            print(f"  or let amela adjust the resources to why each task failed and resubmit: "
                  f"amela status {shlex.quote(str(paths.root))} --resubmit")
    elif status.complete and not status.merged:
        print(f"all shards done; merge with: amela merge {paths.root}")
    elif status.complete:
        print(f"merged: {paths.output(stage_name)}")
    return 0 if status.complete else 1


def _resubmit(paths: RunPaths, stage_name: str, max_attempts: int | None) -> list[int]:
    """Resubmit, print what was done; returns the shards left alone (too many attempts)."""
    from . import slurm_repair

    limit = slurm_repair.DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts
    repairs = slurm_repair.resubmit(paths, stage_name, limit)
    sent = [r for r in repairs if r.action != "give-up"]
    if sent:
        print(f"resubmitted (each attempt recorded in {paths.resubmissions}):")
    for r in sent:
        print(f"  {slurm_repair.describe(r)}")
    given_up = [r for r in repairs if r.action == "give-up"]
    for r in given_up:
        print(f"  {slurm_repair.describe(r)}")
    return [r.shard for r in given_up]


def _print_history(paths: RunPaths, shown: int = 5) -> None:
    from .slurm_repair import load_history

    history = load_history(paths)
    if not history:
        return
    shards = {e["shard"] for e in history}
    print(f"  resubmissions: {len(history)} for {len(shards)} shard(s)" +
          (f", the last {shown} (all in {paths.resubmissions}):" if len(history) > shown else ":"))
    for e in history[-shown:]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["at"]))
        what = e["action"] + (f" into {e['shard']}+{e['into']}" if e.get("into") is not None else "")
        what += f" (split off shard {e['split_from']})" if e.get("split_from") is not None else ""
        args = f" {' '.join(e['sbatch_args'])}" if e.get("sbatch_args") and e["action"] != "give-up" else ""
        job = f", job {e['job']}" if e.get("job") else ""
        print(f"    {when} shard {e['shard']} attempt {e['attempt']}: {e['cause']} -> {what}{args}{job}")


def _print_jobs(paths: RunPaths) -> None:
    subs = slurm.load_submissions(paths)
    known = {s.job_id for s in subs}
    subs += [s for s in discover_arrays(paths) if s.job_id not in known]
    if not subs:
        return
    states = slurm.query_states([s.job_id for s in subs if s.kind == "merge"])
    parts = []
    for s in subs:
        if s.kind == "merge":
            st = states.get(s.job_id)
            parts.append(f"{s.job_id} (merge: {st.state if st else 'unknown'})")
        else:
            shards = array_list_of(s)
            parts.append(f"{s.job_id} ({s.backend} array{', shards ' + shards if shards else ''})")
    print("  SLURM jobs: " + ", ".join(parts))


def array_list_of(sub: slurm.Submission) -> str:
    from ..runner import index_ranges

    return index_ranges(sub.shards) if sub.shards is not None else ""
