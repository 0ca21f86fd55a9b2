"""`amela report RUN_DIR`: one self-contained HTML page about a run, to copy off the cluster and open anywhere.

Reads the run directory only (plan, config, stats, shard attempts, failures, outputs) in one pass over the output
records; plots are inline SVG, audio excerpts are embedded, nothing refers to the network. See docs/report.md.
On a pipeline root it writes the funnel of the steps and each step's run report (report/pipeline.py).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

DISABLE_ENV = "AMELA_REPORT"  # "0": `amela run` and `amela merge` (the SLURM merge job) write no report
logger = logging.getLogger("amela.report")


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1").strip().lower() not in ("0", "no", "false", "off")


def build_report(run_dir, listening: bool = True) -> str:
    """A run's report, or a pipeline root's (its funnel, then each step's run report)."""
    from . import pipeline
    from .page import build
    from .rundata import load

    if pipeline.is_pipeline_root(run_dir):
        return pipeline.build(run_dir, listening=listening)
    return build(load(run_dir), listening=listening)


def write_report(run_dir, out: str | os.PathLike | None = None, listening: bool = True) -> Path:
    """Write the report (atomically) to `out` (default RUN_DIR/report.html); returns its path."""
    from ..manifest import write_bytes_atomic
    from ..paths import RunPaths

    target = Path(out) if out else RunPaths(run_dir).html_report  # a pipeline root names it alike
    write_bytes_atomic(target, build_report(run_dir, listening).encode("utf-8"))
    return target


def write_after_run(run_dir) -> Path | None:
    """The automatic report at the end of `amela run` / `amela merge`: never fails the run that produced it."""
    if not enabled():
        return None
    try:
        path = write_report(run_dir)
        parent = Path(run_dir).absolute().parent
        from .pipeline import is_pipeline_root

        if is_pipeline_root(parent) and not is_pipeline_root(run_dir):  # a pipeline step (e.g. its SLURM merge job)
            write_report(parent)
    except Exception as exc:  # noqa: BLE001 - the run's results are written; a report problem must not hide them
        logger.warning("could not write the run report: %s: %s (retry with `amela report %s`)",
                       type(exc).__name__, exc, run_dir)
        return None
    return path
