"""The state of a run submitted to SLURM: completion markers combined with the scheduler's view.

The files say what is finished (a DONE marker is the only proof); SLURM says what is queued, running, or ended
without finishing: failed (with its exit code), cancelled, timed out. For every shard that needs work the view
names its task and log, and the commands that resubmit only those shards (slurm_print prints it all).
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

from ..paths import RunPaths
from . import slurm

RUNNING_STATES = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}
TIMED_OUT_STATES = {"TIMEOUT", "DEADLINE"}
# Order in which states are listed; the last four need a resubmission.
ORDER = ("done", "running", "pending", "failed", "cancelled", "timed-out", "missing")
NEEDS_WORK = ("failed", "cancelled", "timed-out", "missing")
LOG_TAIL_LINES = 12


@dataclass
class ShardView:
    index: int
    state: str
    detail: str = ""
    task: str = ""  # "<array job id>_<task id>" of the latest SLURM task that ran (or will run) the shard
    log: str = ""
    slurm_state: str = ""  # SLURM's state of that task (squeue over sacct), "" when no task ran it


def latest_tasks(paths: RunPaths, subs: list[slurm.Submission] | None = None):
    """{shard: (submission, "<job>_<task>", TaskState)} from the most recent submission that knows the shard."""
    subs = load_arrays(paths) if subs is None else subs
    states = slurm.query_states([s.job_id for s in subs])
    latest = {}
    for sub in subs:  # in submission order: a later submission of a shard wins
        prefix = f"{sub.job_id}_"
        for key, st in states.items():
            if key.startswith(prefix) and key[len(prefix):].isdigit():
                latest[sub.shard_of(int(key[len(prefix):]))] = (sub, key, st)
    return latest


def load_arrays(paths: RunPaths) -> list[slurm.Submission]:
    """Every array job of this run: the recorded submissions, and jobs found in the queue that run this run's
    scripts (a resubmission made by hand with the printed command is recorded only when its first task starts:
    until then, only the queue knows it, and status must not invite a second one)."""
    recorded = [s for s in slurm.load_submissions(paths) if s.kind == "array"]
    known = {s.job_id for s in recorded}
    return recorded + [s for s in discover_arrays(paths) if s.job_id not in known]


def discover_arrays(paths: RunPaths) -> list[slurm.Submission]:
    """Array jobs in the queue (pending or running, any user's view of ours) whose command runs this run directory:
    RUN_DIR/slurm/<stage>.sbatch OFFSET (amela run --backend sbatch), or slurm/<stage>.slurm INPUT RUN_DIR ...
    (hand-written scripts). Read-only: nothing is recorded here."""
    if not slurm.have("squeue"):
        return []
    import getpass

    proc = slurm.run_command(["squeue", "-h", "-u", getpass.getuser(), "-o", "%F|%K|%o"], timeout_s=60)
    if proc.returncode != 0:
        return []
    scripts, root = str(paths.slurm_scripts) + os.sep, str(paths.root)
    found: dict[str, slurm.Submission] = {}
    for line in proc.stdout.splitlines():
        job_id, sep, rest = line.strip().partition("|")
        task, _, command = rest.partition("|")
        words = command.split()
        if not sep or not words or job_id in found or task in ("", "N/A"):
            continue  # not an array job
        if words[0].startswith(scripts) and words[0].endswith(".sbatch"):
            offset = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
            found[job_id] = slurm.Submission(job_id, "array", "sbatch", offset=offset, command=words)
        elif len(words) >= 3 and words[0].endswith(".slurm") and os.path.normpath(words[2]) == root:
            found[job_id] = slurm.Submission(job_id, "array", "script", command=words)
    return list(found.values())


def active_shards(paths: RunPaths) -> set[int]:
    """Shards a queued or running SLURM task will take care of (not to be submitted twice)."""
    if not paths.slurm_jobs.exists():
        return set()
    return {i for i, (_, _, st) in latest_tasks(paths).items() if st.state in slurm.ACTIVE_STATES}


def _combined(file_state, slurm_task) -> tuple[str, str]:
    if file_state.state == "done":
        return "done", ""
    if slurm_task is None:
        return file_state.state, file_state.detail
    _, key, st = slurm_task
    where = f"SLURM task {key}: {st.state}" + (f", exit {st.exit_code}" if st.exit_code else "")
    if st.state in RUNNING_STATES:
        return "running", where
    if st.state in slurm.ACTIVE_STATES:
        return "pending", where
    if st.state == "CANCELLED":
        return "cancelled", where
    if st.state in TIMED_OUT_STATES:
        return "timed-out", where
    if st.state == "COMPLETED":
        return "failed", where + " without finishing the shard (no DONE marker)"
    return "failed", where


def shard_views(paths: RunPaths, stage_name: str):
    from ..runner import run_status

    status = run_status(paths)
    subs = load_arrays(paths)
    latest = latest_tasks(paths, subs) if subs else {}
    status.active_jobs = sorted({sub.job_id for sub, _, st in latest.values() if st.state in slurm.ACTIVE_STATES},
                                key=int)
    views = []
    for fs in status.shards:
        state, detail = _combined(fs, latest.get(fs.index))
        view = ShardView(fs.index, state, detail)
        if fs.index in latest:
            view.task = latest[fs.index][1]
            view.slurm_state = latest[fs.index][2].state
            view.log = str(paths.slurm_log(stage_name, view.task))
        if state in NEEDS_WORK and not (view.log and os.path.exists(view.log)):
            view.log = str(paths.shard_log(fs.index)) if paths.shard_log(fs.index).exists() else view.log
        views.append(view)
    return status, views


def tail(path: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return fh.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def resubmit_commands(paths: RunPaths, stage_name: str, indices: list[int]) -> list[str]:
    """Commands that run only `indices` again, in the way the run was submitted."""
    subs = load_arrays(paths)
    backend = subs[-1].backend if subs else "sbatch"
    if backend == "submitit":
        return [f"amela.submit(...) with the same arguments (it submits only unfinished shards), or: amela run-shard "
                f"{shlex.quote(str(paths.root))} INDEX"]
    limit = slurm.max_array_size()
    out = []
    for offset, ids in slurm.array_chunks(indices, limit):
        if backend == "script" and subs[-1].command:
            env = f"AMELA_SHARD_OFFSET={offset} " if offset else ""
            out.append(env + shlex.join(["sbatch", f"--array={slurm.array_spec(ids, None)}", *subs[-1].command]))
        else:
            script = paths.array_script(stage_name)
            out.append(shlex.join(["sbatch", f"--array={slurm.array_spec(ids, None)}", str(script), str(offset)]))
    return out


def merge_hint(paths: RunPaths, active_jobs: list[str] = ()) -> str:
    """How to merge once the resubmitted shards are done: a merge job after the new array (JOBID, printed by the
    resubmission) and after every array job of this run still queued or running."""
    merge_script = paths.merge_script
    root = shlex.quote(str(paths.root))
    after = ":".join(["JOBID", *active_jobs])
    if merge_script.exists():
        return (f"then merge: amela merge {root}   (or as a job after them: "
                f"sbatch --dependency=afterok:{after} {shlex.quote(str(merge_script))})")
    return f"then merge: amela merge {root}" + (f"   (after jobs {', '.join(active_jobs)} end)" if active_jobs else "")
