"""The submitit backend (notebooks, Python scripts): `amela.submit(...)` and `amela run --backend submitit`.

    import amela
    run = amela.submit("vad", "/data/corpus.jsonl", "/scratch/runs/vad", shards=64,
                       timeout_min=240, slurm_partition="cpu", cpus_per_task=4, slurm_array_parallelism=16)
    run.wait(); run.exceptions()   # {shard: FailedJobError with the job's traceback} for shards that failed
    stats = run.merge()

One submitit.AutoExecutor.map_array over the shards not done yet; each job runs the same runner code as a local run
and is checkpointable (requeued on preemption or near its time limit, resuming its shard). This module imports
submitit only when submitting, so the CLI stays quick.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("amela.submitit")


@dataclass
class RunJobs:
    """Handles of a submitted run: one submitit job per pending shard, plus an optional merge job."""

    run_dir: Path
    shards: list[int]
    jobs: list = field(default_factory=list)
    merge_job: object | None = None

    def job(self, shard: int):
        return self.jobs[self.shards.index(shard)]

    def done(self) -> bool:
        return all(j.done() for j in self.jobs)

    def wait(self) -> RunJobs:
        for j in self.jobs:
            j.wait()
        return self

    def results(self) -> dict[int, dict]:
        """{shard: its stats}; waits, and raises the first failed job's error (submitit.FailedJobError)."""
        return {s: j.result() for s, j in zip(self.shards, self.jobs)}

    def exceptions(self) -> dict[int, Exception]:
        """{shard: error} for the jobs that failed (waits for all); empty when every job succeeded."""
        out = {}
        for s, j in zip(self.shards, self.jobs):
            exc = j.exception()
            if exc is not None:
                out[s] = exc
        return out

    def merge(self, allow_partial: bool = False) -> dict:
        """Wait for the jobs, then merge here (not on the cluster); returns the merged stats."""
        from ..paths import RunPaths
        from ..runner import merge_locked

        self.wait()
        return merge_locked(RunPaths(self.run_dir), allow_partial=allow_partial)

    def cancel(self) -> None:
        for j in [*self.jobs, *([self.merge_job] if self.merge_job else [])]:
            j.cancel(check=False)

    def status(self) -> int:
        """Print `amela status RUN_DIR` (markers and SLURM's view); returns 0 when every shard is done."""
        from ..paths import RunPaths
        from .slurm_print import print_status

        return print_status(RunPaths(self.run_dir))


def submit(stage, manifest, run_dir, shards: int = 1, *, options: dict | None = None,
           run_options: dict | None = None, workers: int | None = None, merge_job: bool = False,
           cluster: str | None = None, folder: str | None = None, **executor_params) -> RunJobs:
    """Prepare `run_dir` for `stage` over `manifest` (or a directory) in `shards` shards and submit the shards not done
    yet as one submitit job array. `options`: the stage's options ({"threshold": 0.6}); `run_options`: strategy,
    on_invalid, out_dir; `workers`: processes per job (0: in the job's process); `executor_params`: anything
    submitit.AutoExecutor.update_parameters takes (timeout_min, slurm_partition, gpus_per_node, cpus_per_task,
    slurm_array_parallelism, ...). `merge_job=True` also submits a merge that runs after every job succeeded.
    `cluster`: submitit's cluster ("slurm", "local", "debug"; default: SLURM when available)."""
    import os

    from ..config import from_dict
    from ..paths import RunPaths
    from ..runner import RunOptions, RunSpec, prepare
    from ..stage import load_stage, stage_spec

    stage_cls = load_stage(stage) if isinstance(stage, str) else stage
    name = stage if isinstance(stage, str) else stage_spec(stage_cls)
    run = from_dict(RunOptions, {**(run_options or {}), "shards": shards, "workers": workers}, "run options")
    spec = RunSpec(name, os.path.abspath(manifest), run,
                   from_dict(stage_cls.config_cls, options or {}, f"{stage_cls.name} options"))
    paths = RunPaths(run_dir)
    prepare(paths, spec)
    return submit_prepared(paths, spec, merge_job=merge_job, cluster=cluster, folder=folder, **executor_params)


def submit_prepared(paths, spec, *, merge_job: bool = False, cluster: str | None = None, folder: str | None = None,
                    **executor_params) -> RunJobs:
    import submitit

    from ..runner import run_status
    from . import slurm
    from .slurm_status import active_shards
    from .submitit_task import ShardTask, merge_run

    status = run_status(paths)
    active = active_shards(paths)
    todo = [i for i in status.indices("failed", "missing") if i not in active]
    executor = submitit.AutoExecutor(folder=folder or str(paths.submitit_dir), cluster=cluster)
    executor.update_parameters(**{"name": f"amela-{spec.stage_class().name}", **executor_params})
    handles = RunJobs(paths.root, todo)
    if todo:
        handles.jobs = executor.map_array(ShardTask(str(paths.root), spec.run.workers), todo)
        array_id = handles.jobs[0].job_id.split("_")[0]
        if executor.cluster == "slurm":
            slurm.record_submission(paths, slurm.Submission(array_id, "array", "submitit", shards=todo))
        logger.info("submitted %d shard(s) of %s as submitit job %s", len(todo), paths.root, array_id)
    if merge_job and executor.cluster == "slurm":
        deps = ":".join(sorted({j.job_id.split("_")[0] for j in handles.jobs}))
        extra = {"dependency": f"afterok:{deps}", "kill_on_invalid_dep": "yes"} if deps else {}
        executor.update_parameters(slurm_array_parallelism=1, slurm_additional_parameters=extra,
                                   name=f"amela-{spec.stage_class().name}-merge", gpus_per_node=0)
        handles.merge_job = executor.submit(merge_run, str(paths.root))
        slurm.record_submission(paths, slurm.Submission(handles.merge_job.job_id, "merge", "submitit"))
    return handles


def executor_params(opts, setup_cmds=(), sbatch_args=()) -> dict:
    """`amela run --backend submitit` flags (SlurmOptions) as AutoExecutor parameters."""
    from .sbatch import time_seconds

    params: dict = {"tasks_per_node": 1, "slurm_signal_delay_s": opts.signal_delay_s or 90}
    pairs = {"partition": "slurm_partition", "array_parallelism": "slurm_array_parallelism",
             "gpus_per_task": "gpus_per_node", "cpus_per_task": "cpus_per_task", "mem": "slurm_mem",
             "account": "slurm_account", "qos": "slurm_qos", "job_name": "name"}
    for ours, theirs in pairs.items():
        value = getattr(opts, ours)
        if value is not None:
            params[theirs] = value
    if opts.time:
        params["timeout_min"] = math.ceil(time_seconds(opts.time) / 60)
    if setup_cmds:
        params["slurm_setup"] = list(setup_cmds)
    extra = {}
    for arg in sbatch_args:
        key, _, value = arg.lstrip("-").partition("=")
        extra[key.replace("-", "_")] = value or True
    if extra:
        params["slurm_additional_parameters"] = extra
    return params


def launch(paths, spec, args) -> int:
    """`amela run ... --backend submitit`: submit and return (follow with `amela status RUN_DIR`)."""
    from .sbatch import slurm_options

    opts = slurm_options(args)
    params = executor_params(opts, getattr(args, "setup_cmd", ()), getattr(args, "sbatch_arg", ()))
    if opts.venv:
        logger.warning("--venv is ignored by the submitit backend: jobs run this Python (%s)", __import__("sys").executable)
    if opts.dry_run:
        print(f"submitit.AutoExecutor(folder={paths.submitit_dir}).update_parameters({params})")
        return 0
    handles = submit_prepared(paths, spec, merge_job=opts.merge_job, **params)
    if handles.jobs:
        print(f"submitted {len(handles.jobs)} shard(s) as submitit job {handles.jobs[0].job_id.split('_')[0]}")
    if handles.merge_job is not None:
        print(f"submitted merge job {handles.merge_job.job_id}")
    print(f"progress: amela status {paths.root}")
    return 0
