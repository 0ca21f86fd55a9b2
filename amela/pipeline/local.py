"""The local backend: steps one after another on this machine, each an ordinary run (prepare, shards, merge)."""
from __future__ import annotations

import logging

from ..paths import PipelinePaths
from .spec import PipelineSpec
from .steps import RERUN, SKIP, Decision, begin, drop_old, prepare_step, run_spec, set_aside

logger = logging.getLogger("amela.pipeline")


def run(pp: PipelinePaths, spec: PipelineSpec, decisions: list[Decision], show_progress: bool = True) -> dict:
    """Carry out the decisions; returns {step: merged stats} for the steps that ran."""
    from ..executors.local import run_local
    from ..report import write_after_run
    from ..runner import locked, merge

    results = {}
    for d in decisions:
        if d.action == SKIP:
            print(f"step {d.step.name}: skipped ({d.why})")
            continue
        if d.action == RERUN:
            set_aside(pp, d.step.name)
        print(f"step {d.step.name} ({d.step.stage}): {d.action} ({d.why})")
        paths = begin(pp, d)
        with locked(paths.lock, f"run directory {paths.root}"):
            prepare_step(pp, spec, d.step)
            rs = run_spec(pp, spec, d.step)
            run_local(paths, rs, rs.run.workers, show_progress=show_progress)
            stats = merge(paths, rs.stage_class()(rs.options))
        results[d.step.name] = stats
        write_after_run(paths.root)  # the step's report, and the pipeline's (funnel + steps so far) refreshed
        if stats["complete"]:
            drop_old(pp, d.step.name)
        print(f"step {d.step.name}: {stats['ok']} ok, {stats['failed']} failed, "
              f"{stats['audio_hours']:.3f} h of audio -> {paths.root}")
    if results and pp.html_report.exists():
        print(f"report: {pp.html_report} (the funnel and every step)")
    return results
