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
    if backend == "submitit":
        logger.info("submitit backend: the graph is submitted with sbatch, the same jobs submitit would make")
    todo = [d for d in decisions if d.action != SKIP]
    leaves = {d.step.name for d in todo if not any(e.step.upstream == d.step.name for e in todo)}
    jobs: dict[str, dict] = {}
    for d in todo:
        step = d.step
        if d.action == RERUN:
            set_aside(pp, step.name)
        paths = begin(pp, d)
        opts = _options(step)
        rs = run_spec(pp, spec, step)
        job = replace(batch_job(paths, rs, opts, step.slurm["setup_cmd"], step.slurm["sbatch_arg"]),
                      container_cmd=container_cmd)
        scripts = paths.slurm_scripts
        scripts.mkdir(parents=True, exist_ok=True)
        stage = job.stage
        array_path, merge_path = scripts / f"{stage}.sbatch", scripts / "merge.sbatch"
        write_bytes_atomic(array_path, render_array_script(job).encode())
        merge = merge_job(job, paths)
        if mail_type and step.name in leaves:
            merge = replace(merge, sbatch_args=(f"--mail-type={mail_type}",) + ((f"--mail-user={mail_user}",)
                                                                                 if mail_user else ()))
        write_bytes_atomic(merge_path, render_merge_script(merge).encode())
        mine: dict = {"arrays": []}
        upstream_merge = jobs.get(step.upstream, {}).get("merge") if step.upstream else None
        dep: list[str] = []
        if upstream_merge:  # its input does not exist yet: prepare in a job once the step above merged
            prep_path = scripts / "prepare.sbatch"
            prep = replace(merge, job_name=f"{job.job_name}-prepare", log_pattern=paths.prepare_log_pattern(),
                           sbatch_args=())
            write_bytes_atomic(prep_path, render_prepare_script(prep, str(pp.root), step.name).encode())
            mine["prepare"] = slurm.sbatch([f"--dependency=afterok:{upstream_merge}", KILL, str(prep_path)])
            dep = [f"--dependency=afterok:{mine['prepare']}", KILL]
            pending = list(range(step.run.shards))
        else:
            if step.upstream and not _exists(input_path(pp, spec, step)):
                raise ConfigError(f"step {step.name!r}: step {step.upstream!r} is neither complete nor submitted")
            prepare_step(pp, spec, step)
            from ..runner import run_status

            pending = run_status(paths).indices("failed", "missing")
        limit = opts.max_array_size or slurm.max_array_size()
        for cmd, offset in submission_commands(pending, limit, opts.array_parallelism, str(array_path)):
            job_id = slurm.sbatch([*dep, *cmd])
            slurm.record_submission(paths, slurm.Submission(job_id, "array", "sbatch", offset=offset,
                                                            command=["sbatch", *cmd]))
            mine["arrays"].append(job_id)
        merge_dep = [f"--dependency=afterok:{':'.join(mine['arrays'])}", KILL] if mine["arrays"] else dep
        mine["merge"] = slurm.sbatch([*merge_dep, str(merge_path)])
        slurm.record_submission(paths, slurm.Submission(mine["merge"], "merge", "sbatch",
                                                        command=["sbatch", str(merge_path)]))
        jobs[step.name] = mine
        _save_jobs(pp, {**old, **jobs}, backend)  # after each step: a failure later keeps what was submitted
        print(f"step {step.name}: " + ", ".join(
            f"{k} {v if not isinstance(v, list) else ','.join(v) or '-'}" for k, v in mine.items())
            + f" ({len(pending)} shard(s))")
    if not todo:
        print("nothing to submit: every step is complete and unchanged")
    else:
        print(f"submitted {len(todo)} step(s); follow with: amela pipeline status {pp.root}")
    return jobs


def _options(step) -> SlurmOptions:
    from .. import config as cfg

    fields = {k: v for k, v in step.slurm.items() if k not in ("setup_cmd", "sbatch_arg", "dry_run")}
    return cfg.from_dict(SlurmOptions, fields, f"step {step.name}: slurm")


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)



