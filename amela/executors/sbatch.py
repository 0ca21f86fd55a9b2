"""The sbatch backend: one array task per pending shard, each running `amela run-shard RUN_DIR INDEX`.

`amela run STAGE INPUT -o RUN_DIR --backend sbatch ...` prepares the run directory (cli), then `launch()` renders the
batch scripts (pure functions of their inputs, tested against saved reference files), saves them under RUN_DIR/slurm/,
submits arrays over the shards not done yet (split by MaxArraySize, task index = offset + SLURM_ARRAY_TASK_ID) and an
optional merge job that runs once every task succeeded. `--dry-run` prints the scripts and commands instead.
Kept light to import (the CLI builds its parser from `add_arguments`).
"""
from __future__ import annotations

import argparse
import logging
import re
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from .. import config as cfg
from ..config import option
from ..errors import ConfigError, SubmissionError
from .slurm import array_spec

logger = logging.getLogger("amela.sbatch")
TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
GPU_REFUSED = "Requested node configuration is not available"


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = option(None, "SLURM partition (default: the cluster's default partition)")
    time: str | None = option(None, "time limit per task: MM, HH:MM:SS or D-HH:MM:SS (default: the partition's)")
    array_parallelism: int | None = option(None, "at most this many tasks at once (--array=...%%K)")
    gpus_per_task: int | None = option(None, "GPUs per task (default: the stage's GPUs per worker; 0 runs on CPU)")
    cpus_per_task: int | None = option(None, "CPUs per task (default: the stage's CPUs per worker x workers)")
    mem: str | None = option(None, "memory per task, e.g. 16G (default: the cluster's)")
    account: str | None = option(None, "SLURM account to charge")
    qos: str | None = option(None, "SLURM quality of service")
    job_name: str | None = option(None, "job name (default: amela-<stage>)")
    signal_delay_s: int = option(120, "seconds before the time limit when a task is told to stop and requeue itself")
    merge_job: bool = option(True, "submit a merge job that runs after every task succeeded (--dependency=afterok)")
    dry_run: bool = option(False, "print the batch scripts and sbatch commands; submit nothing")
    venv: str | None = option(None, "virtual environment the tasks activate (default: run this Python, "
                                    f"{sys.executable})")
    max_array_size: int | None = option(None, "split arrays at this many task ids (default: the cluster's "
                                              "MaxArraySize)")

    def check(self) -> None:
        for name in ("array_parallelism", "cpus_per_task", "max_array_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.gpus_per_task is not None and self.gpus_per_task < 0:
            raise ConfigError(f"--gpus-per-task must be >= 0, got {self.gpus_per_task}")
        if self.signal_delay_s < 0:
            raise ConfigError(f"--signal-delay-s must be >= 0, got {self.signal_delay_s}")
        if self.time is not None:
            limit_s = time_seconds(self.time)
            if self.signal_delay_s and self.signal_delay_s >= limit_s:
                raise ConfigError(f"--signal-delay-s {self.signal_delay_s} must be shorter than --time {self.time} "
                                  f"({limit_s} s)")


def time_seconds(text: str) -> int:
    """SLURM's time formats (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in seconds."""
    m = TIME_RE.match(text.strip())
    if not m:
        raise ConfigError(f"--time {text!r}: use MM, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        return days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:  # HH:MM:SS
        return a * 3600 + b * 60 + c
    return a * 60 + (b or 0)  # MM or MM:SS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cfg.add_arguments(parser, SlurmOptions, "SLURM options (--backend sbatch or submitit)")
    group = parser.add_argument_group("SLURM environment (--backend sbatch)")
    group.add_argument("--setup-cmd", action="append", dest="setup_cmd", default=argparse.SUPPRESS, metavar="CMD",
                       help="a shell line each task runs before amela, e.g. 'module load cuda/12.4' (repeatable)")
    group.add_argument("--sbatch-arg", action="append", dest="sbatch_arg", default=argparse.SUPPRESS, metavar="ARG",
                       help="an extra sbatch option for the array tasks, e.g. --constraint=a100 (repeatable)")
    group.add_argument("--after", default=argparse.SUPPRESS, metavar="JOBID|RUN_DIR",
                       help="run once this SLURM job succeeded (or the merge job of that run directory): INPUT "
                            "may not exist yet; a small job prepares the run when it does (--shards is kept)")


def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    return cfg.from_dict(SlurmOptions, cfg.pick(args, SlurmOptions), "SLURM options")


# -- rendering (pure) ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchJob:
    """Everything a batch script depends on; `render_*` turn it into text and nothing else."""

    run_dir: str
    stage: str
    job_name: str
    python: str  # interpreter that runs `-m amela` (after the venv, if any, is activated)
    log_pattern: str
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    partition: str | None = None
    time: str | None = None
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    signal_delay_s: int = 120
    venv: str | None = None
    setup_cmds: tuple[str, ...] = ()
    sbatch_args: tuple[str, ...] = ()
    container_cmd: str | None = None  # prefix of the Python command, e.g. 'apptainer exec --nv image.sif'


def _directive_value(value: str) -> str:
    """sbatch reads #SBATCH lines word by word: a value with spaces needs double quotes."""
    if '"' in value or "\n" in value:
        raise ConfigError(f"{value!r}: quotes and newlines cannot go into an #SBATCH line")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _header(job: BatchJob, gpus: int, extra: tuple[str, ...]) -> list[str]:
    lines = [f"#SBATCH --job-name={_directive_value(job.job_name)}",
             f"#SBATCH --output={_directive_value(job.log_pattern)}",
             "#SBATCH --open-mode=append", "#SBATCH --ntasks=1", f"#SBATCH --cpus-per-task={job.cpus_per_task}"]
    if gpus:
        lines.append(f"#SBATCH --gpus-per-task={gpus}")
    for flag in ("mem", "time", "partition", "account", "qos"):
        if getattr(job, flag):
            lines.append(f"#SBATCH --{flag}={getattr(job, flag)}")
    return lines + [f"#SBATCH {a}" for a in extra]


def _environment(job: BatchJob) -> list[str]:
    lines = ["# -- environment", *job.setup_cmds]  # modules first: a venv may need their Python
    if job.venv:
        lines.append(f"source {shlex.quote(job.venv.rstrip('/') + '/bin/activate')}")
    lines.append(f"PYTHON={shlex.quote(job.python)}")
    return lines


def render_array_script(job: BatchJob) -> str:
    """The script every array task runs: shard OFFSET + SLURM_ARRAY_TASK_ID, requeued before the time limit."""
    lines = [
        "#!/bin/bash",
        f"# AMELA {job.stage} over {job.run_dir}: array task T runs shard OFFSET + T (OFFSET: first argument, 0).",
        "# Generated by `amela run --backend sbatch`. Resubmit chosen shards by hand, e.g. shards 3 and 7:",
        "#   sbatch --array=3,7 THIS_SCRIPT 0        (`amela status RUN_DIR` prints the exact command)",
        *_header(job, job.gpus_per_task, job.sbatch_args),
    ]
    if job.signal_delay_s:
        lines += [f"#SBATCH --signal=B:USR1@{job.signal_delay_s}", "#SBATCH --requeue"]
    lines += [
        "set -uo pipefail",
        "",
        f"RUN_DIR={shlex.quote(job.run_dir)}",
        'OFFSET="${1:-0}"',
        'SHARD=$((OFFSET + ${SLURM_ARRAY_TASK_ID:?submit this script with sbatch --array=...}))',
        "",
        *_environment(job),
        "",
        'echo "amela: task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} (job $SLURM_JOB_ID, restart'
        ' ${SLURM_RESTART_COUNT:-0}) runs shard $SHARD on $(hostname) with ${SLURM_CPUS_PER_TASK:-1} CPU(s)"',
    ]
    if job.gpus_per_task:
        lines.append("command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.free "
                     "--format=csv,noheader")
    lines += [
        "",
        "# SIGUSR1 comes signal_delay_s before the time limit: stop the shard cleanly (complete records stay",
        "# written) and requeue this task, which then resumes where it stopped. SIGTERM (scancel): just stop.",
        "# A second signal while stopping (SLURM's own USR1 and a manual one, or the TERM that the requeue sends)",
        "# changes nothing: one requeue, one clean stop.",
        "pid=",
        "stopping=",
        "stop_child() { [ -n \"$pid\" ] || return 0; kill -TERM \"$pid\" 2>/dev/null; while kill -0 \"$pid\" 2>/dev/null; "
        "do wait \"$pid\"; done; }",
        "on_usr1() {",
        '  [ -z "$stopping" ] || return 0',
        "  stopping=1",
        '  echo "amela: USR1 (time limit near or preemption): stopping shard $SHARD, requeueing $SLURM_JOB_ID"',
        "  stop_child",
        '  scontrol requeue "$SLURM_JOB_ID" || exit 143',
        "  exit 0",
        "}",
        "on_term() { [ -z \"$stopping\" ] || return 0; stopping=1; stop_child; exit 143; }",
        "trap on_usr1 USR1",
        "trap on_term TERM",
        "",
        f'{_launcher(job)}"$PYTHON" -m amela run-shard "$RUN_DIR" "$SHARD" --no-progress &',
        "pid=$!",
        'wait "$pid"',
        "exit $?",
        "",
    ]
    return "\n".join(lines)


def render_merge_script(job: BatchJob) -> str:
    """The merge job: `amela merge RUN_DIR` once every array task succeeded (item failures still merge)."""
    lines = [
        "#!/bin/bash",
        f"# AMELA {job.stage}: merge the shards of {job.run_dir} (submitted with --dependency=afterok on the arrays).",
        *_header(job, 0, job.sbatch_args),
        "set -uo pipefail",
        "",
        f"RUN_DIR={shlex.quote(job.run_dir)}",
        *_environment(job),
        "",
        f'{_launcher(job)}"$PYTHON" -m amela merge "$RUN_DIR"',
        "rc=$?",
        "# 1 also means 'merged, but some items failed' (listed in failures.jsonl): the merge itself succeeded then.",
        'if [ "$rc" = 1 ] && grep -q \'"complete":true\' "$RUN_DIR/stats.json" 2>/dev/null; then rc=0; fi',
        'exit "$rc"',
        "",
    ]
    return "\n".join(lines)


def render_prepare_script(job: BatchJob, amela_args: list[str], what: str) -> str:
    """A preparation job: `amela AMELA_ARGS` (filter, validate, split) once the job that writes its input succeeded."""
    lines = [
        "#!/bin/bash",
        f"# AMELA: {what} (submitted with --dependency=afterok on the job that writes its input).",
        *_header(job, 0, ()),
        "set -uo pipefail",
        "",
        *_environment(job),
        "",
        f'{_launcher(job)}"$PYTHON" -m amela {shlex.join(amela_args)}',
        "",
    ]
    return "\n".join(lines)


def _launcher(job: BatchJob) -> str:
    """Many clusters run software only in containers: every Python of a task goes through the container command."""
    return f"{job.container_cmd} " if job.container_cmd else ""


# -- launching ---------------------------------------------------------------------------------------------------------
def batch_job(paths, spec, opts: SlurmOptions, setup_cmds=(), sbatch_args=()) -> BatchJob:
    res = spec.stage_class().resources
    gpus = res.gpus_per_worker if opts.gpus_per_task is None else opts.gpus_per_task
    workers = spec.run.workers or res.default_workers or 1
    cpus = opts.cpus_per_task or max(1, res.cpus_per_worker) * max(1, workers)
    stage_name = spec.stage_class().name
    python = "python" if opts.venv else sys.executable
    return BatchJob(
        run_dir=str(paths.root), stage=stage_name, job_name=opts.job_name or f"amela-{stage_name}", python=python,
        log_pattern=paths.slurm_log_pattern(stage_name), cpus_per_task=cpus, gpus_per_task=gpus,
        partition=opts.partition, time=opts.time, mem=opts.mem, account=opts.account, qos=opts.qos,
        signal_delay_s=opts.signal_delay_s, venv=opts.venv, setup_cmds=tuple(setup_cmds),
        sbatch_args=tuple(sbatch_args))


def merge_job(job: BatchJob, paths) -> BatchJob:
    from dataclasses import replace

    # Mail options go to the merge too: it is the job that finishes the run.
    mail = tuple(a for a in job.sbatch_args if a.startswith("--mail-"))
    return replace(job, job_name=f"{job.job_name}-merge", log_pattern=paths.merge_log_pattern,
                   cpus_per_task=1, gpus_per_task=0, signal_delay_s=0, sbatch_args=mail)


def launch(paths, spec, args) -> int:
    """Submit the pending shards of a prepared run; returns the CLI's exit code."""
    from ..manifest import executable_mode, write_bytes_atomic
    from ..runner import load_plan, run_status
    from . import slurm

    opts = slurm_options(args)
    job = batch_job(paths, spec, opts, getattr(args, "setup_cmd", ()), getattr(args, "sbatch_arg", ()))
    if opts.dry_run:
        return _dry_run(paths, spec, opts, job)
    plan = load_plan(paths)
    status = run_status(paths)
    # Not submitted twice: shards a queued/running SLURM task will do, or a live process holds (its lock).
    busy, todo = _pending(paths, status)
    array_path, merge_path = paths.array_script(job.stage), paths.merge_script
    write_bytes_atomic(array_path, render_array_script(job).encode())
    write_bytes_atomic(merge_path, render_merge_script(merge_job(job, paths)).encode())
    array_path.chmod(executable_mode())  # 0777 & ~umask: the group may read and resubmit them
    merge_path.chmod(executable_mode())
    if not todo and (status.merged or busy):
        print(f"nothing to submit: {plan.num_shards} shard(s) done or queued; `amela status {paths.root}`")
        return 0
    limit = opts.max_array_size or slurm.max_array_size()
    commands = submission_commands(todo, limit, opts.array_parallelism, str(array_path))
    # All shards done but not merged: `commands` is empty and only the merge job is submitted.
    return _submit(paths, commands, merge_path if opts.merge_job else None, job.gpus_per_task, plan)


def launch_after(paths, spec, args) -> int:
    """`amela run ... --backend sbatch --after JOBID|RUN_DIR`: queue preparation, array and merge now, each waiting
    (afterok) for the one before; the first waits for JOBID. An upstream run that already merged needs no wait."""
    from ..config import dump_yaml
    from ..manifest import executable_mode, write_bytes_atomic
    from . import slurm

    opts = slurm_options(args)
    after = after_job(args.after)
    if after is None or paths.plan.exists():  # nothing to wait for, or prepared already: an ordinary launch
        from ..runner import prepare

        if not opts.dry_run:
            prepare(paths, spec, keep_plan=getattr(args, "keep_plan", False))
        return launch(paths, spec, args)
    job = batch_job(paths, spec, opts, getattr(args, "setup_cmd", ()), getattr(args, "sbatch_arg", ()))
    pending = paths.pending_config
    prep_args = ["prepare", spec.stage, spec.input, "-o", str(paths.root), "--config", str(pending),
                 "--shards", str(spec.run.shards)]
    prep = replace(merge_job(job, paths), job_name=f"{job.job_name}-prepare", log_pattern=paths.prepare_log_pattern,
                   sbatch_args=())
    array_path, merge_path = paths.array_script(job.stage), paths.merge_script
    texts = {paths.prepare_script: render_prepare_script(prep, prep_args, f"prepare {paths.root} after job {after}"),
             array_path: render_array_script(job), merge_path: render_merge_script(merge_job(job, paths))}
    if opts.dry_run:
        for path, text in texts.items():
            print(f"# {path} (not written)\n{text}")
        print(f"# sbatch --dependency=afterok:{after} prepare.sbatch, then the array and merge after it")
        return 0
    paths.logs.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(pending, dump_yaml(spec.to_dict()).encode())
    for path, text in texts.items():
        write_bytes_atomic(path, text.encode())
        path.chmod(executable_mode())
    kill = "--kill-on-invalid-dep=yes"
    prep_id = slurm.sbatch([f"--dependency=afterok:{after}", kill, str(paths.prepare_script)])
    print(f"submitted preparation job {prep_id} (runs after job {after} succeeded)")
    ids = []
    limit = opts.max_array_size or slurm.max_array_size()
    for cmd, offset in submission_commands(list(range(spec.run.shards)), limit, opts.array_parallelism,
                                           str(array_path)):
        job_id = slurm.sbatch([f"--dependency=afterok:{prep_id}", kill, *cmd])
        slurm.record_submission(paths, slurm.Submission(job_id, "array", "sbatch", offset=offset,
                                                        command=["sbatch", *cmd]))
        ids.append(job_id)
        print(f"submitted array job {job_id}: {cmd[0]} (shard = {offset} + task id)")
    if opts.merge_job:
        merge_id = slurm.sbatch([f"--dependency=afterok:{':'.join(ids)}", kill, str(merge_path)])
        slurm.record_submission(paths, slurm.Submission(merge_id, "merge", "sbatch",
                                                        command=["sbatch", str(merge_path)]))
        print(f"submitted merge job {merge_id} (runs after every task succeeded)")
    print(f"{spec.run.shards} shard(s) in {paths.root}; logs: {paths.logs}; progress: amela status {paths.root}")
    return 0


def after_job(after: str) -> str | None:
    """The job id to wait for: JOBID as given, or a run directory's newest merge job (None: it already merged)."""
    import os

    from ..errors import ConfigError
    from ..paths import RunPaths
    from . import slurm

    if re.fullmatch(r"\d+(_\d+)?", after.strip()):
        return after.strip()
    if not os.path.isdir(after):
        raise ConfigError(f"--after {after!r}: give a SLURM job id or the run directory of a submitted run")
    up = RunPaths(after)
    if up.stats.exists() and up.plan.exists():
        from ..runner import run_status

        if run_status(up).merged:
            return None
    merges = [s for s in slurm.load_submissions(up) if s.kind == "merge"]
    if not merges:
        raise ConfigError(f"--after {after}: that run has no SLURM merge job to wait for (submit it with "
                          "--backend sbatch, or give a job id)")
    return merges[-1].job_id


def _pending(paths, status) -> tuple[set[int], list[int]]:
    """(shards a queued/running SLURM task or a live process holds, shards to submit): never submitted twice."""
    from . import slurm_status

    busy = slurm_status.active_shards(paths) | set(status.indices("running"))
    todo = [i for i in status.indices("failed", "missing") if i not in busy]
    busy -= set(status.indices("done"))
    if busy:
        print(f"already queued or running, not submitted again: {array_spec(sorted(busy), None)}")
    return busy, todo


def _dry_run(paths, spec, opts: SlurmOptions, job: BatchJob) -> int:
    """Print what a submission would do; write nothing (no run directory, no scripts, no job record)."""
    from ..errors import ManifestError
    from ..runner import load_plan, run_status
    from ..runner.plan import input_kind, read_input
    from . import slurm

    if paths.plan.exists():
        status = run_status(paths)
        _, todo = _pending(paths, status)
        print(f"# {paths.root} is prepared ({load_plan(paths).num_shards} shard(s)); would submit: "
              f"{array_spec(todo, None) or 'nothing'}")
    else:
        records, problems = read_input(spec, spec.stage_class())  # the input checked now, not at submission
        if problems and spec.run.on_invalid == "fail" and input_kind(Path(spec.input)) == "manifest":
            raise ManifestError(f"{spec.input}: {len(problems)} invalid line(s); fix them or use --on-invalid skip",
                                problems)
        todo = list(range(spec.run.shards))
        print(f"# would prepare {paths.root}: {len(records)} item(s) in {spec.run.shards} shard(s)")
    array_path, merge_path = paths.array_script(job.stage), paths.merge_script
    print(f"# {array_path} (not written)")
    print(render_array_script(job))
    if opts.merge_job:
        print(f"# {merge_path} (not written)")
        print(render_merge_script(merge_job(job, paths)))
    limit = opts.max_array_size or slurm.max_array_size()
    commands = submission_commands(todo, limit, opts.array_parallelism, str(array_path))
    print("# sbatch commands (JOB<n>: the job id printed by the n-th command):")
    for n, (cmd, _) in enumerate(commands):
        dep = [f"--dependency=afterany:JOB{n}"] if n and opts.array_parallelism else []
        print(shlex.join(["sbatch", *dep, *cmd]))
    if opts.merge_job:
        deps = ":".join(f"JOB{n + 1}" for n in range(len(commands)))
        print(shlex.join(["sbatch", *([f"--dependency=afterok:{deps}"] if deps else []), "--kill-on-invalid-dep=yes",
                          str(merge_path)]))
    return 0


def submission_commands(todo: list[int], limit: int, parallelism: int | None, script: str) -> list[tuple[list, int]]:
    """sbatch arguments (without dependencies) and offset of each array covering `todo`."""
    from . import slurm

    return [([f"--array={array_spec(ids, parallelism)}", script, str(offset)], offset)
            for offset, ids in slurm.array_chunks(todo, limit)]


def _submit(paths, commands, merge_path, gpus: int, plan) -> int:
    from . import slurm

    ids: list[str] = []
    for cmd, offset in commands:
        # With a throttle, arrays run one after another so the limit holds for the run as a whole.
        dep = [f"--dependency=afterany:{ids[-1]}"] if ids and "%" in cmd[0] else []
        try:
            job_id = slurm.sbatch([*dep, *cmd])
        except SubmissionError as exc:
            if GPU_REFUSED not in str(exc) or not gpus:
                raise
            raise SubmissionError(f"{exc}\n  no node of this partition has {gpus} GPU(s) per task: choose a GPU "
                                  "partition (--partition) or run on CPU with --gpus-per-task 0") from None
        slurm.record_submission(paths, slurm.Submission(job_id, "array", "sbatch", offset=offset,
                                                        command=["sbatch", *cmd]))
        ids.append(job_id)
        print(f"submitted array job {job_id}: {cmd[0]} (shard = {offset} + task id)")
    if merge_path is not None and ids:
        cmd = [f"--dependency=afterok:{':'.join(ids)}", "--kill-on-invalid-dep=yes", str(merge_path)]
        job_id = slurm.sbatch(cmd)
        slurm.record_submission(paths, slurm.Submission(job_id, "merge", "sbatch", command=["sbatch", *cmd]))
        print(f"submitted merge job {job_id} (runs after every task succeeded)")
    elif merge_path is not None:  # every shard already done: only the merge is left
        job_id = slurm.sbatch([str(merge_path)])
        slurm.record_submission(paths, slurm.Submission(job_id, "merge", "sbatch", command=["sbatch", str(merge_path)]))
        print(f"submitted merge job {job_id}")
    print(f"{plan.num_shards} shard(s) in {paths.root}; logs: {paths.logs}; progress: amela status {paths.root}")
    return 0
