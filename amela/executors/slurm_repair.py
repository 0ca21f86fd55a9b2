"""`amela status RUN_DIR --resubmit`: resubmit failed array tasks with resources adjusted from SLURM's record.

What sacct says about a task's last run decides what its shard gets next:

    TIMEOUT, DEADLINE   the shard is split in two (runner/split.py): the unprocessed records halve, both halves resume
    OUT_OF_MEMORY       twice the memory the task had (--mem), at most the largest node's
    NODE_FAIL           the same again with the node it ran on excluded (--exclude, accumulated over attempts)
    anything else       the same again (FAILED, CANCELLED, PREEMPTED, BOOT_FAIL, never started, ...)

A shard is resubmitted at most `max_attempts` times (a split-off shard inherits its parent's count), then left alone
and named. Item failures are never retried here: a shard resumes past the items in its failures file, so an item
that crashes a worker again and again stays a failure. Every attempt is one line of RUN_DIR/resubmissions.jsonl.
"""
from __future__ import annotations

import logging
import re
import shlex
import time
from dataclasses import dataclass, field

from ..errors import SubmissionError
from ..locks import Lock
from ..manifest import dumps, iter_jsonl, write_bytes_atomic
from ..paths import RunPaths
from . import slurm

logger = logging.getLogger("amela.slurm")
DEFAULT_MAX_ATTEMPTS = 3
MEM_RE = re.compile(r"^([\d.]+)([KMGTP]?)([nc]?)$")


@dataclass
class TaskRecord:
    """sacct's record of one array task's last run (steps folded in: a step killed for memory marks the task)."""

    state: str
    exit_code: str = ""
    node: str = ""
    req_mem: str = ""  # as sacct prints it: "512M", "4G", older versions "4000Mn" (per node) / "2000Mc" (per CPU)
    time_limit: str = ""
    max_rss: str = ""


@dataclass
class Repair:
    shard: int
    cause: str  # sacct's state, or "never started"
    action: str  # split | more-memory | exclude-node | again | give-up
    sbatch_args: list = field(default_factory=list)
    note: str = ""
    task: str = ""
    into: int | None = None  # split: the new shard


# -- sacct ----------------------------------------------------------------------------------------------------------
SACCT_FIELDS = "JobID,State,ExitCode,NodeList,ReqMem,Timelimit,MaxRSS"


def parse_sacct(text: str) -> dict[str, TaskRecord]:
    """`sacct -n -P -o SACCT_FIELDS` (with steps) -> {"<job>_<task>": TaskRecord}."""
    out: dict[str, TaskRecord] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 7 or not parts[0] or "[" in parts[0]:
            continue  # not a row, or an array not expanded yet (pending)
        key, _, step = parts[0].partition(".")
        state = parts[1].split()[0] if parts[1] else ""
        rec = out.setdefault(key, TaskRecord(""))
        if not step:
            rec.state = rec.state if rec.state == "OUT_OF_MEMORY" else state
            rec.exit_code, rec.node, rec.req_mem, rec.time_limit = parts[2], parts[3], parts[4], parts[5]
        elif state == "OUT_OF_MEMORY":  # the batch step was killed for memory, whatever the allocation row says
            rec.state = state
        if parts[6]:
            rec.max_rss = max(rec.max_rss, parts[6], key=lambda v: mem_mb(v)[0] if mem_mb(v) else 0)
    return out


def task_records(job_ids: list[str]) -> dict[str, TaskRecord]:
    if not job_ids or not slurm.have("sacct"):
        return {}
    proc = slurm.run_command(["sacct", "-n", "-P", "-j", ",".join(job_ids), "-o", SACCT_FIELDS], timeout_s=60)
    return parse_sacct(proc.stdout) if proc.returncode == 0 else {}


def mem_mb(text: str) -> tuple[float, bool] | None:
    """sacct/sbatch memory ("512M", "4G", "4000Mn", "2000Mc", "626696K") -> (MB, per CPU)."""
    m = MEM_RE.match(text.strip()) if text else None
    if not m:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 ** 2, "P": 1024 ** 3}[m.group(2)]
    return float(m.group(1)) * scale, m.group(3) == "c"


def largest_node_mb(partition: str | None = None) -> int | None:
    """The most memory a node of the partition has (sinfo %m, MB): more can never be granted."""
    if not slurm.have("sinfo"):
        return None
    proc = slurm.run_command(["sinfo", "-h", "-N", *(["-p", partition] if partition else []), "-o", "%m"])
    sizes = [int(v) for v in proc.stdout.split() if v.strip().isdigit()]
    return max(sizes) if sizes else None


# -- the decision (pure) ----------------------------------------------------------------------------------------------
def cause_of(slurm_state: str, rec: TaskRecord | None) -> str:
    """Why the shard's last task ended: a step killed for memory wins; else squeue's state (fresher than sacct's)."""
    if rec and rec.state == "OUT_OF_MEMORY":
        return rec.state
    return slurm_state or (rec.state if rec and rec.state else "never started")


def decide(shard: int, cause: str, rec: TaskRecord | None, history: list[dict], max_attempts: int,
           node_mb: int | None) -> Repair:
    """What to do with one shard that needs work, given why its last task ended (`cause_of`), sacct's record of
    that task and the shard's past attempts (its lines of resubmissions.jsonl)."""
    args = carried_args(history)
    attempts = max((e["attempt"] for e in history), default=0)
    if attempts >= max_attempts:
        return Repair(shard, cause, "give-up", args, f"resubmitted {attempts} time(s) already, as many as "
                                                     f"--max-attempts {max_attempts} allows: see its log, fix the "
                                                     "cause, then resubmit it by hand")
    if cause in ("TIMEOUT", "DEADLINE"):
        return Repair(shard, cause, "split", args, f"time limit {rec.time_limit if rec else '?'} reached")
    if cause == "OUT_OF_MEMORY":
        return _more_memory(shard, cause, rec, args, node_mb)
    if cause == "NODE_FAIL":
        nodes = sorted(set(_flag_values(args, "--exclude")) | {n for n in slurm_nodes(rec.node if rec else "")})
        if not nodes:
            return Repair(shard, cause, "again", args, "sacct names no node to exclude")
        return Repair(shard, cause, "exclude-node", _set_flag(args, "--exclude", ",".join(nodes)),
                      f"node {rec.node} failed")
    return Repair(shard, cause, "again", args)


def _more_memory(shard: int, cause: str, rec: TaskRecord | None, args: list, node_mb: int | None) -> Repair:
    had = mem_mb(rec.req_mem) if rec else None
    if not had or not had[0]:
        return Repair(shard, cause, "give-up", args, "sacct does not say how much memory the task had; resubmit by "
                                                     "hand with --mem")
    mb, per_cpu = had
    flag = "--mem-per-cpu" if per_cpu else "--mem"
    want = int(mb * 2)
    if node_mb and not per_cpu:
        want = min(want, node_mb)
    if want <= mb:
        return Repair(shard, cause, "give-up", args, f"it had {mb:.0f} MB, the most a node here has: run it with "
                                                     "smaller batches (a stage's batch options) in a new run directory")
    return Repair(shard, cause, "more-memory", _set_flag(_drop_flag(args, "--mem"), flag, f"{want}M"),
                  f"{flag} {mb:.0f}M -> {want}M (max RSS seen {rec.max_rss or '?'})")


def carried_args(history: list[dict]) -> list[str]:
    """The sbatch options the shard's last resubmission used: memory and exclusions are kept across attempts."""
    return list(history[-1]["sbatch_args"]) if history else []


def slurm_nodes(text: str) -> list[str]:
    """A NodeList as plain names (expanded with scontrol when it is a range such as node[01-03])."""
    if not text or text in ("None assigned", "(null)"):
        return []
    if "[" not in text:
        return text.split(",")
    proc = slurm.run_command(["scontrol", "show", "hostnames", text], timeout_s=30)
    return proc.stdout.split() if proc.returncode == 0 else [text]


def _flag_values(args: list[str], flag: str) -> list[str]:
    return [v for a in args if a.startswith(flag + "=") for v in a.split("=", 1)[1].split(",")]


def _drop_flag(args: list[str], prefix: str) -> list[str]:
    return [a for a in args if not a.startswith(prefix)]


def _set_flag(args: list[str], flag: str, value: str) -> list[str]:
    return [*(a for a in args if not a.startswith(flag + "=")), f"{flag}={value}"]


# -- the record of attempts ---------------------------------------------------------------------------------------------
def load_history(paths: RunPaths) -> list[dict]:
    return list(iter_jsonl(paths.resubmissions)) if paths.resubmissions.exists() else []


def shard_history(history: list[dict], shard: int) -> list[dict]:
    return [e for e in history if e["shard"] == shard]


def append_history(paths: RunPaths, entries: list[dict]) -> None:
    lock = Lock(paths.jobs_lock, f"the job record of {paths.root}").acquire(wait=True)
    try:
        rows = load_history(paths) + entries
        write_bytes_atomic(paths.resubmissions, b"".join(dumps(r) + b"\n" for r in rows))
    finally:
        lock.release()


# -- doing it ----------------------------------------------------------------------------------------------------------
def resubmit(paths: RunPaths, stage_name: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> list[Repair]:
    """Resubmit every shard that needs work (slurm_status.NEEDS_WORK); returns what was decided. Two at once would
    submit the same shards twice: a lock makes the second one fail at once, and the shards' states are read under
    it (a resubmission that just ended shows its tasks as queued)."""
    from ..runner import locked

    with locked(paths.resubmit_lock, f"resubmitting shards of {paths.root}"):
        return _resubmit(paths, stage_name, max_attempts)


def _resubmit(paths: RunPaths, stage_name: str, max_attempts: int) -> list[Repair]:
    from ..runner.split import finish_pending, split_shard
    from . import slurm_status

    finish_pending(paths)
    _, views = slurm_status.shard_views(paths, stage_name)
    subs = slurm_status.load_arrays(paths)
    if subs and subs[-1].backend != "sbatch":
        raise SubmissionError(f"{paths.root} was submitted with {subs[-1].backend!r}: --resubmit resubmits runs "
                              "submitted with `amela run --backend sbatch` (or a pipeline); use the printed commands")
    script = paths.array_script(stage_name)
    if not script.exists():
        raise SubmissionError(f"{script} is missing: --resubmit reuses the batch script of `amela run --backend "
                              "sbatch`; run that command again instead")
    todo = [v for v in views if v.state in slurm_status.NEEDS_WORK]
    records = task_records(sorted({v.task.split("_")[0] for v in todo if v.task}, key=int))
    history = load_history(paths)
    node_mb = largest_node_mb(_partition(script)) if any(r.state == "OUT_OF_MEMORY" for r in records.values()) \
        else None
    repairs: list[Repair] = []
    for v in todo:
        own = shard_history(history, v.index)
        rec = records.get(v.task)
        if rec and not mem_mb(rec.req_mem):  # sacct not filled in yet ("16?" for a moment): what was asked for
            rec.req_mem = next(iter(_flag_values(carried_args(own), "--mem")), None) or _directive(script, "mem") \
                or rec.req_mem
        rep = decide(v.index, cause_of(v.slurm_state, rec), rec, own, max_attempts, node_mb)
        rep.task = v.task
        if rep.action == "split":
            rep.into = split_shard(paths, v.index)
            if rep.into is None:
                rep.action, rep.note = "again", rep.note + "; one record left to process: not split"
        repairs.append(rep)
    _submit(paths, script, [r for r in repairs if r.action != "give-up"], history)
    return repairs


def _submit(paths: RunPaths, script, repairs: list[Repair], history: list[dict]) -> None:
    groups: dict[tuple, list[int]] = {}
    for r in repairs:
        groups.setdefault(tuple(r.sbatch_args), []).extend([r.shard] + ([r.into] if r.into is not None else []))
    job_of: dict[int, str] = {}
    limit = slurm.max_array_size()
    throttle = _throttle(paths)
    try:
        for args, shards in groups.items():
            for offset, ids in slurm.array_chunks(shards, limit):
                cmd = [*args, f"--array={slurm.array_spec(ids, throttle)}", str(script), str(offset)]
                job_id = slurm.sbatch(cmd)
                slurm.record_submission(paths, slurm.Submission(job_id, "array", "sbatch", offset=offset,
                                                                command=["sbatch", *cmd]))
                for t in ids:
                    job_of[offset + t] = job_id
    finally:  # a refusal half-way (sbatch's message goes up): what was decided and done is recorded all the same
        _record(paths, repairs, history, job_of)
    if job_of:
        _merge_after(paths, sorted(set(job_of.values()), key=int))


def _record(paths: RunPaths, repairs: list[Repair], history: list[dict], job_of: dict[int, str]) -> None:
    now = time.time()
    entries = []
    for r in repairs:
        attempt = max((e["attempt"] for e in shard_history(history, r.shard)), default=0) + 1
        base = {"at": now, "attempt": attempt, "cause": r.cause, "action": r.action, "task": r.task,
                "sbatch_args": r.sbatch_args, "note": r.note}
        entries.append({**base, "shard": r.shard, "job": job_of.get(r.shard), "into": r.into})
        if r.into is not None:
            entries.append({**base, "shard": r.into, "job": job_of.get(r.into), "split_from": r.shard})
    if entries:
        append_history(paths, entries)


def _merge_after(paths: RunPaths, new_jobs: list[str]) -> None:
    """A merge job after the new arrays and every array of the run still queued, unless one is queued already."""
    from . import slurm_status

    merge_script = paths.merge_script
    subs = slurm.load_submissions(paths)
    merges = [s.job_id for s in subs if s.kind == "merge"]
    if not merge_script.exists() or not merges:
        return
    states = slurm.query_states(merges)
    if any(st.state in slurm.ACTIVE_STATES for st in states.values()):
        return
    latest = slurm_status.latest_tasks(paths)
    active = sorted({sub.job_id for sub, _, st in latest.values() if st.state in slurm.ACTIVE_STATES} - set(new_jobs),
                    key=int)
    cmd = [f"--dependency=afterok:{':'.join([*new_jobs, *active])}", "--kill-on-invalid-dep=yes", str(merge_script)]
    job_id = slurm.sbatch(cmd)
    slurm.record_submission(paths, slurm.Submission(job_id, "merge", "sbatch", command=["sbatch", *cmd]))


def _throttle(paths: RunPaths) -> int | None:
    """The run's --array-parallelism (%K of its first array), kept for resubmissions."""
    for sub in slurm.load_submissions(paths):
        for word in sub.command or ():
            m = re.match(r"--array=\S*%(\d+)$", word)
            if m:
                return int(m.group(1))
    return None


def _partition(script) -> str | None:
    return _directive(script, "partition")


def _directive(script, flag: str) -> str | None:
    """The value of `#SBATCH --FLAG=VALUE` in the run's batch script."""
    for line in script.read_text().splitlines():
        if line.startswith(f"#SBATCH --{flag}="):
            return line.split("=", 1)[1]
    return None


def describe(r: Repair) -> str:
    what = {"split": f"split: shard {r.shard} keeps half of what is left, new shard {r.into} the other half",
            "more-memory": "more memory", "exclude-node": "same again without that node", "again": "same again",
            "give-up": "not resubmitted"}[r.action]
    args = f" [{shlex.join(r.sbatch_args)}]" if r.sbatch_args and r.action != "give-up" else ""
    return f"shard {r.shard}: {r.cause} -> {what}{args}" + (f" ({r.note})" if r.note else "")
