"""Talking to SLURM (sbatch, squeue, sacct, scontrol) and the run directory's record of submitted jobs.

Every submission is written down in RUN_DIR/slurm_jobs.json (atomically, under a lock) right after sbatch accepted it,
so `amela status` can ask the scheduler about exactly the jobs of this run, and map each array task back to its shard.
An entry maps task ids to shard indices either by an offset (task t runs shard offset + t: sbatch arrays, split when
larger than MaxArraySize) or by an explicit list (task t runs shards[t]: submitit's map_array over pending shards).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass

from ..errors import SubmissionError
from ..locks import Lock
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import RunPaths

logger = logging.getLogger("amela.slurm")
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default: task ids 0..1000
# States after which a job or array task never runs again (sacct/squeue names).
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                          "BOOT_FAIL", "DEADLINE", "REVOKED"})
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                           "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
                           "RESV_DEL_HOLD", "SPECIAL_EXIT"})


# -- commands -------------------------------------------------------------------------------------------------------
def have(command: str) -> bool:
    return shutil.which(command) is not None


def run_command(args: list[str], timeout_s: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a SLURM client; a missing binary is a SubmissionError naming it (not a bare FileNotFoundError)."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, input=input)
    except FileNotFoundError:
        raise SubmissionError(f"{args[0]}: command not found; is this a SLURM login node?") from None
    except subprocess.TimeoutExpired:
        raise SubmissionError(f"{' '.join(args)} did not answer within {timeout_s:.0f} s (slurmctld down?)") from None


def sbatch(args: list[str]) -> str:
    """Submit; returns the job id. Refusals become SubmissionError with sbatch's own message."""
    proc = run_command(["sbatch", "--parsable", *args])
    if proc.returncode != 0:
        raise SubmissionError(f"sbatch refused the job: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]


def max_array_size(default: int = DEFAULT_MAX_ARRAY_SIZE) -> int:
    """The cluster's MaxArraySize (task ids must be below it), from `scontrol show config`."""
    if not have("scontrol"):
        return default
    proc = run_command(["scontrol", "show", "config"], timeout_s=30)
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return default


def array_chunks(indices: list[int], limit: int) -> list[tuple[int, list[int]]]:
    """Split shard indices into arrays whose task ids stay below `limit`: [(offset, task ids)], shard = offset + id.
    Offsets are multiples of `limit`, so task ids equal shard indices below the limit (the common case)."""
    out: list[tuple[int, list[int]]] = []
    for i in sorted(set(indices)):
        offset = i // limit * limit
        if not out or out[-1][0] != offset:
            out.append((offset, []))
        out[-1][1].append(i - offset)
    return out


# -- the record of submitted jobs -------------------------------------------------------------------------------------
def array_list(task_ids) -> str:
    """SLURM's --array syntax for a set of task ids: [0,1,2,5,7,8] -> '0-2,5,7-8' (the form the runner's
    index_ranges gives shard sets in messages)."""
    from ..runner.status import index_ranges

    return index_ranges(task_ids)


def array_spec(task_ids: list[int], parallelism: int | None) -> str:
    """--array=SPEC: the task ids, and `%N` when at most N tasks may run at once."""
    return array_list(task_ids) + (f"%{parallelism}" if parallelism else "")


@dataclass
class Submission:
    job_id: str
    kind: str  # "array" (one task per shard) or "merge"
    backend: str  # "sbatch" (amela run), "script" (slurm/*.slurm by hand), "submitit"
    offset: int = 0
    shards: list | None = None  # task t runs shards[t] when set, else offset + t
    command: list | None = None  # how it was submitted (the resubmit hint reuses it)
    submitted_at: float = 0.0

    def shard_of(self, task_id: int) -> int:
        return self.shards[task_id] if self.shards is not None else self.offset + task_id

    def task_of(self, shard: int) -> int | None:
        if self.shards is not None:
            return self.shards.index(shard) if shard in self.shards else None
        return shard - self.offset if shard >= self.offset else None

    def to_dict(self) -> dict:
        return dict(vars(self))


def load_submissions(paths: RunPaths) -> list[Submission]:
    path = paths.slurm_jobs
    if not path.exists():
        return []
    return [Submission(**entry) for entry in loads(path.read_bytes())["jobs"]]


def record_submission(paths: RunPaths, sub: Submission) -> None:
    """Append (or, same job id and kind, keep) a submission; safe when many array tasks register at once."""
    sub.submitted_at = sub.submitted_at or time.time()
    lock = Lock(paths.jobs_lock, f"the job record of {paths.root}").acquire(wait=True)
    try:
        jobs = load_submissions(paths)
        if any(j.job_id == sub.job_id and j.kind == sub.kind for j in jobs):
            return
        jobs.append(sub)
        write_bytes_atomic(paths.slurm_jobs, dumps({"version": 1, "jobs": [j.to_dict() for j in jobs]}))
    finally:
        lock.release()


# -- the scheduler's view ---------------------------------------------------------------------------------------------
@dataclass
class TaskState:
    state: str  # SLURM's state name (CANCELLED by 0 -> CANCELLED)
    exit_code: str = ""  # "rc:signal" (sacct) or ""
    source: str = ""  # squeue or sacct


def _parse_rows(text: str, source: str) -> dict[str, TaskState]:
    rows = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        state = parts[1].split()[0] if parts[1] else ""
        rows[parts[0].strip()] = TaskState(state, parts[2] if len(parts) > 2 else "", source)
    return rows


def query_states(job_ids: list[str]) -> dict[str, TaskState]:
    """{"<job>_<task>" or "<job>": state} for the given jobs: sacct's record (when accounting is on) overlaid by
    squeue's live view, which has no lag and knows pending tasks one by one."""
    if not job_ids:
        return {}
    ids = ",".join(job_ids)
    states: dict[str, TaskState] = {}
    if have("sacct"):
        proc = run_command(["sacct", "-n", "-X", "-P", "-j", ids, "-o", "JobID,State,ExitCode"], timeout_s=60)
        if proc.returncode == 0:
            states.update(_parse_rows(proc.stdout, "sacct"))
        else:
            logger.debug("sacct unavailable: %s", proc.stderr.strip())
    if have("squeue"):
        proc = run_command(["squeue", "-h", "-r", "-j", ids, "--states=all", "-o", "%i|%T"], timeout_s=60)
        # squeue fails as a whole ("Invalid job id") once slurmctld forgot one of the jobs: ask one by one then.
        if proc.returncode != 0 and len(job_ids) > 1:
            for jid in job_ids:
                one = run_command(["squeue", "-h", "-r", "-j", jid, "--states=all", "-o", "%i|%T"], timeout_s=60)
                if one.returncode == 0:
                    _overlay(states, _parse_rows(one.stdout, "squeue"))
        elif proc.returncode == 0:
            _overlay(states, _parse_rows(proc.stdout, "squeue"))
    return states


def _overlay(states: dict[str, TaskState], live: dict[str, TaskState]) -> None:
    for key, st in live.items():
        old = states.get(key)
        # sacct keeps the exit code; squeue is fresher about the state itself.
        states[key] = TaskState(st.state, old.exit_code if old else "", "squeue")

