"""`amela status`'s report, one for every backend: the run, its shards per state, items, progress, and why unfinished
shards are unfinished. The local view is print_local_status; the SLURM view (executors/slurm_print.py) prints the same
report with the scheduler's states added (pending, cancelled, timed-out) and its own sections below it.
"""
from __future__ import annotations

from ..paths import RunPaths
from .eta import progress_line
from .status import RunStatus, index_ranges, run_status

LOCAL_STATES = ("done", "running", "failed", "missing")


def print_report(paths: RunPaths, status: RunStatus, by_state: dict[str, list[int]], states=LOCAL_STATES,
                 always=LOCAL_STATES) -> None:
    """The report's head: one line per state of `states` (listed when it has shards or is in `always`), shards as
    ranges, then items and the progress line. `by_state` maps a state to its shard indices."""
    ok = sum(s.ok for s in status.shards)
    failed = sum(s.failed for s in status.shards)
    width = max(8, *(len(state) for state in states))
    print(f"run {paths.root} (stage {status.stage}): {len(status.shards)} shard(s), {status.items} item(s), "
          f"{status.rejected} rejected")
    for state in states:
        idx = by_state.get(state, [])
        if idx or state in always:
            print(f"  {state:{width}s} {len(idx):5d}" + (f"  [{index_ranges(idx)}]" if idx and state != "done" else ""))
    print(f"  items: {ok} ok, {failed} failed, {status.items - ok - failed} not yet processed")
    print(progress_line(paths, status))


def print_local_status(paths: RunPaths, verbose: bool = False) -> RunStatus:
    """`amela status RUN_DIR` for a run without SLURM jobs, from the run directory's files; returns the status."""
    st = run_status(paths)
    by_state: dict[str, list[int]] = {}
    for s in st.shards:
        by_state.setdefault(s.state, []).append(s.index)
    print_report(paths, st, by_state)
    print_details(st.shards, verbose)
    todo = st.indices("failed", "missing")
    if todo:
        print(f"resubmit: --array={index_ranges(todo)}   (local: amela run-shard {paths.root} INDEX)")
    if st.complete and not st.merged:
        print(f"all shards done; merge with: amela merge {paths.root}")
    return st


def print_details(shards, verbose: bool, shown: int = 10) -> None:
    """Why unfinished shards are unfinished: one line per reason with the shards as ranges (ten thousand shards
    stay readable), at most `shown` lines; every shard on its own line with --verbose."""
    by_reason: dict[str, list] = {}
    for s in shards:
        if s.state in ("failed", "missing") and s.detail:
            if verbose:
                print(f"  shard {s.index}: {s.detail}")
            else:
                by_reason.setdefault(s.reason or s.detail, []).append(s)
    lines = [f"  shard {group[0].index}: {group[0].detail}" if len(group) == 1
             else f"  {len(group)} shards [{index_ranges([s.index for s in group])}]: {why}"
             for why, group in by_reason.items()]
    for line in lines[:shown]:
        print(line)
    if len(lines) > shown:
        print(f"  ... {len(lines) - shown} more reason(s) for {sum(len(i) for i in list(by_reason.values())[shown:])} "
              "shard(s): --verbose lists every shard")
