"""The pipeline's job graph through submitit (notebooks): the same graph as with sbatch, submitted as submitit jobs.

Per step: [prepare_step job] -> map_array(ShardTask) over the pending shards -> merge_run job, each dependency
afterok with kill_on_invalid_dep, so a failed task stops its dependents only. Jobs are checkpointable (requeued near
their time limit, resuming their shard) and recorded where `amela pipeline status` and `amela status` look.
"""
from __future__ import annotations

import logging

from ..paths import PipelinePaths

logger = logging.getLogger("amela.pipeline")


def prepare_step_job(root: str, step: str) -> dict:
    """What a step's preparation job runs: filter its input and split it, once the step above merged."""
    from ..runtime import setup_logging
    from . import spec as pspec
    from .steps import prepare_step

    setup_logging()
    pp = PipelinePaths(root)
    spec = pspec.load(str(pp.spec))
    return prepare_step(pp, spec, spec.step(step)).to_dict()  # the job's result: plan.json as written


class StepJobs:
    """Submits one step's jobs with submitit; ids are returned as the sbatch path returns them."""

    def __init__(self, paths, step, opts, container_cmd: str | None):
        import submitit

        from ..executors.submitit import executor_params

        if container_cmd:
            raise_container(step)
        # submitit's own files (job logs, pickles) with the step's other logs: one place per step
        self.executor = submitit.AutoExecutor(folder=str(paths.submitit_step_dir), cluster="slurm")
        self.base = executor_params(opts, step.slurm["setup_cmd"], step.slurm["sbatch_arg"])
        self.extra = dict(self.base.pop("slurm_additional_parameters", {}))
        self.name = opts.job_name or f"amela-{step.stage_class().name}"
        self.paths = paths
        self.step = step

    def _params(self, name: str, after: list[str], **kw) -> None:
        extra = dict(self.extra)
        if after:
            extra.update({"dependency": f"afterok:{':'.join(after)}", "kill_on_invalid_dep": "yes"})
        self.executor.update_parameters(**{**self.base, "name": name, "slurm_additional_parameters": extra, **kw})

    def prepare(self, root: str, after: list[str]) -> str:
        self._params(f"{self.name}-prepare", after, gpus_per_node=0, slurm_array_parallelism=1)
        return self.executor.submit(prepare_step_job, root, self.step.name).job_id

    def array(self, shards: list[int], after: list[str]) -> str | None:
        from ..executors import slurm
        from ..executors.submitit_task import ShardTask

        if not shards:
            return None
        # update_parameters persists: set what the preparation job changed. Resources as `amela run` sizes them.
        res = self.step.stage_class().resources
        workers = self.step.run.workers or res.default_workers or 1
        self._params(self.name, after, slurm_array_parallelism=self.base.get("slurm_array_parallelism", 256),
                     gpus_per_node=self.base.get("gpus_per_node", res.gpus_per_worker),
                     cpus_per_task=self.base.get("cpus_per_task", max(1, res.cpus_per_worker) * max(1, workers)))
        jobs = self.executor.map_array(ShardTask(str(self.paths.root), self.step.run.workers), shards)
        array_id = jobs[0].job_id.split("_")[0]
        slurm.record_submission(self.paths, slurm.Submission(array_id, "array", "submitit", shards=shards))
        return array_id

    def merge(self, after: list[str], mail: dict) -> str:
        from ..executors import slurm
        from ..executors.submitit_task import merge_run

        self.extra.update(mail)
        self._params(f"{self.name}-merge", after, gpus_per_node=0, slurm_array_parallelism=1)
        job_id = self.executor.submit(merge_run, str(self.paths.root)).job_id
        slurm.record_submission(self.paths, slurm.Submission(job_id, "merge", "submitit"))
        return job_id


def raise_container(step) -> None:
    from ..errors import ConfigError

    raise ConfigError(f"step {step.name}: --container-cmd needs the sbatch backend (submitit runs this Python)")
