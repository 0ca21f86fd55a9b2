"""The pipeline as one SLURM job graph, submitted at once so `squeue` shows every step immediately.

Per step that must run:  [prepare job] -> array (one task per pending shard) -> merge job
  - a step whose input exists now (a raw corpus, or a complete step above) is prepared right here, so only its
    pending shards are submitted;
  - a step reading a step that runs in this submission gets a small preparation job (filter + split) that depends
    (afterok) on that step's merge job; its array depends on the preparation. The shard count is known up front
    (`shards:`), so the arrays are submitted before their input exists.
Every dependency is afterok with --kill-on-invalid-dep=yes: a failed task stops its dependents, never an unrelated
branch. Job ids go to ROOT/pipeline_jobs.json (for `amela pipeline status/cancel`) and to each step's own
slurm_jobs.json (for `amela status ROOT/<step>`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from ..errors import ConfigError, SubmissionError
from ..executors import slurm
from ..executors.sbatch import (
    GPU_REFUSED,
    SlurmOptions,
    batch_job,
    merge_job,
    render_array_script,
    render_merge_script,
    render_prepare_script,
    submission_commands,
)
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import PipelinePaths
from .spec import PipelineSpec
from .steps import RERUN, SKIP, Decision, begin, input_path, prepare_step, run_spec, set_aside

logger = logging.getLogger("amela.pipeline")
KILL = "--kill-on-invalid-dep=yes"


def load_jobs(pp: PipelinePaths) -> dict:
    if not pp.jobs.exists():
        return {}
    return loads(pp.jobs.read_bytes()).get("steps", {})


def recorded_backend(pp: PipelinePaths) -> str:
    if not pp.jobs.exists():
        return "local"
    return loads(pp.jobs.read_bytes()).get("backend", "sbatch")


def _save_jobs(pp: PipelinePaths, steps: dict, backend: str) -> None:
    write_bytes_atomic(pp.jobs, dumps({"version": 1, "backend": backend, "steps": steps,
                                       "updated_at": time.time()}))


def _all_ids(jobs: dict) -> list[str]:
    ids = []
    for step in jobs.values():
        for value in step.values():
            ids.extend(str(v) for v in (value if isinstance(value, list) else [value]) if v)
    return ids


def job_states(jobs: dict) -> dict:
    ids = _all_ids(jobs)
    if not ids or not slurm.have("squeue"):
        return {}
    return slurm.query_states(ids)


def failed_tasks(own: dict, states: dict) -> list[str]:
    """`JOB_TASK (kind) STATE` for this step's jobs that ended without success (newest submission only)."""
    out = []
    kinds = {str(own.get("prepare")): "prepare", str(own.get("merge")): "merge"}
    kinds.update({str(a): "array" for a in own.get("arrays", [])})
    for key, st in sorted(states.items()):
        job = key.split("_")[0]
        if job in kinds and st.state in slurm.FINAL_STATES and st.state != "COMPLETED":
            out.append(f"{kinds[job]} {key} {st.state}")
    return out


def cancel(pp: PipelinePaths) -> int:
    jobs = load_jobs(pp)
    states = job_states(jobs)
    live = sorted({k.split("_")[0] for k, s in states.items() if s.state in slurm.ACTIVE_STATES})
    if live:
        proc = slurm.run_command(["scancel", *live])
        if proc.returncode != 0:
            raise SubmissionError(f"scancel failed: {proc.stderr.strip()}")
    return len(live)


def submit_graph(pp: PipelinePaths, spec: PipelineSpec, decisions: list[Decision], backend: str,
                 mail_type: str | None = None, mail_user: str | None = None,
                 container_cmd: str | None = None) -> dict:
    """Submit every step that must run, wired by afterok dependencies; returns {step: its job ids}."""
    old = load_jobs(pp)
    states = job_states(old)
    live = sorted({k.split("_")[0] for k, s in states.items() if s.state in slurm.ACTIVE_STATES})
    if live:
        raise ConfigError(f"pipeline {pp.root} still has queued or running jobs ({', '.join(live)}); wait for them "
                          f"(amela pipeline status {pp.root}) or cancel them (amela pipeline cancel {pp.root})")
    todo = [d for d in decisions if d.action != SKIP]
    jobs: dict[str, dict] = {}
    try:
        _submit_steps(pp, spec, todo, jobs, old, backend, mail_type, mail_user, container_cmd)
    except SubmissionError as exc:  # never leave half a graph queued: take back what this call submitted
        ids = _all_ids(jobs)
        if ids:
            slurm.run_command(["scancel", *ids])
        _save_jobs(pp, old, backend)
        raise SubmissionError(f"{exc}\n  cancelled the {len(ids)} job(s) this call had submitted; fix the step "
                              "and run the same command again") from None
    if not todo:
        print("nothing to submit: every step is complete and unchanged")
    else:
        print(f"submitted {len(todo)} step(s); follow with: amela pipeline status {pp.root}")
    return jobs


def _submit_steps(pp: PipelinePaths, spec: PipelineSpec, todo: list[Decision], jobs: dict, old: dict, backend: str,
                  mail_type: str | None, mail_user: str | None, container_cmd: str | None) -> None:
    from ..runner import run_status

    leaves = {d.step.name for d in todo if not any(e.step.upstream == d.step.name for e in todo)}
    for d in todo:
        step = d.step
        if d.action == RERUN:
            set_aside(pp, step.name)
        paths = begin(pp, d)
        opts = _options(step)
        if backend == "submitit":
            from .submitit_graph import StepJobs

            submitter = StepJobs(paths, step, opts, container_cmd)
        else:
            submitter = SbatchSteps(pp, spec, paths, step, opts, container_cmd)
        mine: dict = {"prepare": None, "arrays": []}
        jobs[step.name] = mine  # filled as jobs are accepted, so a refusal can take them back
        upstream_merge = jobs.get(step.upstream, {}).get("merge") if step.upstream else None
        after: list[str] = []
        if upstream_merge:  # its input does not exist yet: prepare in a job once the step above merged
            mine["prepare"] = submitter.prepare(str(pp.root), [upstream_merge])
            after = [mine["prepare"]]
            pending = list(range(step.run.shards))
        else:
            if step.upstream and not _exists(input_path(pp, spec, step)):
                raise ConfigError(f"step {step.name!r}: step {step.upstream!r} is neither complete nor submitted")
            prepare_step(pp, spec, step)
            pending = run_status(paths).indices("failed", "missing")
        array = submitter.array(pending, after)
        mine["arrays"] = array if isinstance(array, list) else [array] if array else []
        mail = {}
        if mail_type and step.name in leaves:  # mail comes from the job that finishes the pipeline
            mail = {"mail_type": mail_type, **({"mail_user": mail_user} if mail_user else {})}
        mine["merge"] = submitter.merge(mine["arrays"] or after, mail)
        _save_jobs(pp, {**old, **jobs}, backend)
        print(f"step {step.name}: " + (f"prepare job {mine['prepare']}, " if mine["prepare"] else "")
              + f"array job(s) {', '.join(mine['arrays']) or '-'} ({len(pending)} shard(s)), merge job {mine['merge']}")


class SbatchSteps:
    """One step's rendered batch scripts (saved under ROOT/<step>/slurm/) and their submission with sbatch."""

    def __init__(self, pp: PipelinePaths, spec: PipelineSpec, paths, step, opts: SlurmOptions,
                 container_cmd: str | None):
        self.paths, self.step, self.opts = paths, step, opts
        rs = run_spec(pp, spec, step)
        self.job = replace(batch_job(paths, rs, opts, step.slurm["setup_cmd"], step.slurm["sbatch_arg"]),
                           container_cmd=container_cmd)
        self.scripts = paths.slurm_scripts
        self.scripts.mkdir(parents=True, exist_ok=True)

    def prepare(self, root: str, after: list[str]) -> str:
        path = self.paths.prepare_script
        prep = replace(merge_job(self.job, self.paths), job_name=f"{self.job.job_name}-prepare",
                       log_pattern=self.paths.prepare_log_pattern, sbatch_args=())
        text = render_prepare_script(prep, ["pipeline", "prepare-step", root, self.step.name],
                                     f"pipeline {root}: prepare step {self.step.name}")
        write_bytes_atomic(path, text.encode())
        return _sbatch([*_after(after), str(path)], self.step, 0)

    def array(self, pending: list[int], after: list[str]) -> list[str]:
        path = self.paths.array_script(self.job.stage)
        write_bytes_atomic(path, render_array_script(self.job).encode())
        ids = []
        limit = self.opts.max_array_size or slurm.max_array_size()
        for cmd, offset in submission_commands(pending, limit, self.opts.array_parallelism, str(path)):
            job_id = _sbatch([*_after(after), *cmd], self.step, self.job.gpus_per_task)
            slurm.record_submission(self.paths, slurm.Submission(job_id, "array", "sbatch", offset=offset,
                                                                 command=["sbatch", *cmd]))
            ids.append(job_id)
        return ids

    def merge(self, after: list[str], mail: dict) -> str:
        path = self.paths.merge_script
        job = merge_job(self.job, self.paths)
        job = replace(job, sbatch_args=job.sbatch_args + tuple(f"--{k.replace('_', '-')}={v}" for k, v in mail.items()))
        write_bytes_atomic(path, render_merge_script(job).encode())
        job_id = _sbatch([*_after(after), str(path)], self.step, 0)
        slurm.record_submission(self.paths, slurm.Submission(job_id, "merge", "sbatch",
                                                             command=["sbatch", str(path)]))
        return job_id


def _after(ids: list[str]) -> list[str]:
    return [f"--dependency=afterok:{':'.join(ids)}", KILL] if ids else []


def _sbatch(args: list[str], step, gpus: int) -> str:
    try:
        return slurm.sbatch(args)
    except SubmissionError as exc:
        if GPU_REFUSED in str(exc) and gpus:
            raise SubmissionError(f"step {step.name}: {exc}\n  no node of this partition has {gpus} GPU(s) per task: "
                                  "set the step's slurm: {partition: ...} to a GPU partition, or "
                                  "{gpus_per_task: 0} to run it on CPU") from None
        raise SubmissionError(f"step {step.name}: {exc}") from None


def _options(step) -> SlurmOptions:
    from .. import config as cfg

    fields = {k: v for k, v in step.slurm.items() if k not in ("setup_cmd", "sbatch_arg", "dry_run")}
    return cfg.from_dict(SlurmOptions, fields, f"step {step.name}: slurm")


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)



