"""`amela pipeline status ROOT --resubmit`: each step's failed array tasks resubmitted with resources adjusted to why
they failed (executors/slurm_repair, the same as `amela status ROOT/<step> --resubmit`). The new jobs join the step's
entry in pipeline_jobs.json, so `pipeline status`, `cancel` and `run` know them (`run` refuses while they are queued,
so nothing is submitted twice). Steps below a repaired one were cancelled with it (their jobs waited for its merge):
`amela pipeline run ...` resumes them once it is complete."""
from __future__ import annotations


def resubmit_steps(pipe, max_attempts: int) -> list[str]:
    """Repair every prepared step with shards that need work; returns one line per decision."""
    from ..executors import slurm, slurm_repair, slurm_status
    from ..runner import load_spec
    from .slurm import _save_jobs, load_jobs, recorded_backend

    pp = pipe.paths
    jobs = load_jobs(pp)
    lines: list[str] = []
    changed = False
    for step in pipe.spec.steps:
        paths = pp.step(step.name)
        if not (paths.plan.exists() and paths.slurm_jobs.exists()):
            continue  # not prepared (waits for a step above) or never submitted to SLURM
        stage = load_spec(paths).stage_class().name
        _, views = slurm_status.shard_views(paths, stage)
        if not any(v.state in slurm_status.NEEDS_WORK for v in views):
            continue
        before = {(s.job_id, s.kind) for s in slurm.load_submissions(paths)}
        repairs = slurm_repair.resubmit(paths, stage, max_attempts)
        new = [s for s in slurm.load_submissions(paths) if (s.job_id, s.kind) not in before]
        own = jobs.setdefault(step.name, {"prepare": None, "arrays": []})
        own["arrays"] = [*own.get("arrays", []), *(s.job_id for s in new if s.kind == "array")]
        own["merge"] = next((s.job_id for s in reversed(new) if s.kind == "merge"), own.get("merge"))
        changed = changed or bool(new)
        lines += [f"step {step.name}: {slurm_repair.describe(r)}" for r in repairs]
    if changed:
        _save_jobs(pp, jobs, recorded_backend(pp))
    return lines
