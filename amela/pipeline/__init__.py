"""Pipelines: stages chained as ordinary runs, locally or as one SLURM job graph, rerunning only what changed.

    import amela.pipeline
    p = amela.pipeline.submit("pipeline.yaml", "/scratch/root", backend="sbatch")
    p.status(); p.wait(); p.cancel()

The layer above executors: it composes runs (ROOT/<step>/) and hands them to an executor; it reads records only
through the runner's filter step.
"""
from __future__ import annotations

import logging
import time

from ..errors import ConfigError
from ..manifest import write_bytes_atomic
from ..paths import PipelinePaths
from . import spec as pspec
from .status import StepStatus
from .steps import RERUN, RUN, SKIP, Decision, decide

logger = logging.getLogger("amela.pipeline")
BACKENDS = ("local", "sbatch", "submitit")


class Pipeline:
    """A pipeline root: its spec, its steps' states, its SLURM jobs."""

    def __init__(self, root: str, spec: pspec.PipelineSpec, backend: str = "local"):
        self.paths = PipelinePaths(root)
        self.root = str(self.paths.root)
        self.spec = spec
        self.backend = backend

    @classmethod
    def open(cls, root: str) -> Pipeline:
        pp = PipelinePaths(root)
        if not pp.spec.exists():
            raise ConfigError(f"{pp.root}: not a pipeline root (no pipeline.yaml); start one with "
                              "`amela pipeline run PIPELINE.yaml -o ROOT`")
        from .slurm import recorded_backend

        return cls(str(pp.root), pspec.load(str(pp.spec)), recorded_backend(pp))

    def status(self) -> list[StepStatus]:
        from .status import step_statuses

        return step_statuses(self)

    @staticmethod
    def complete(rows: list[StepStatus]) -> bool:
        return all(r.state == "complete" for r in rows)

    def wait(self, poll_s: float = 10.0, timeout_s: float | None = None) -> list[StepStatus]:
        """Until every step is complete, or a step failed and nothing is queued or running any more."""
        t0 = time.monotonic()
        while True:
            rows = self.status()
            active = any(r.state in ("running", "queued") for r in rows)
            if self.complete(rows) or not active:
                return rows
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"pipeline {self.root} not finished after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def cancel(self) -> int:
        from .slurm import cancel

        return cancel(self.paths)


def submit(pipeline_yaml: str, root: str, backend: str = "local", dry_run: bool = False,
           from_step: str | None = None, show_progress: bool = True, mail_type: str | None = None,
           mail_user: str | None = None, container_cmd: str | None = None) -> Pipeline:
    """Validate every step, decide what each must do, then run (local) or submit (sbatch/submitit) the steps."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    spec = pspec.load(pipeline_yaml)
    pp = PipelinePaths(root)
    decisions = decide(pp, spec, save_cache=not dry_run)
    if from_step is not None:
        _force_from(spec, decisions, from_step)
    print_plan(pp, decisions, dry_run)
    pipe = Pipeline(str(pp.root), spec, backend)
    if dry_run:
        return pipe
    pp.root.mkdir(parents=True, exist_ok=True)
    with open(pipeline_yaml, "rb") as fh:  # the copy every later command (status, prepare jobs, reruns) reads
        write_bytes_atomic(pp.spec, fh.read())
    from .steps import drop_old, step_complete

    for d in decisions:  # a rerun that completed on SLURM: its previous directory is no longer needed
        if d.action == SKIP and step_complete(pp.step(d.step.name)):
            drop_old(pp, d.step.name)
    if backend == "local":
        from ..runner import locked
        from .local import run

        with locked(pp.lock, f"pipeline {pp.root}"):
            run(pp, spec, decisions, show_progress)
    else:
        from .slurm import submit_graph

        submit_graph(pp, spec, decisions, backend, mail_type=mail_type, mail_user=mail_user,
                     container_cmd=container_cmd)
    return pipe


def _force_from(spec: pspec.PipelineSpec, decisions: list[Decision], name: str) -> None:
    spec.step(name)  # unknown names fail with the list of steps
    forced = {name, *spec.downstream(name)}
    for d in decisions:
        if d.step.name in forced and d.action in (SKIP, "resume"):
            d.action, d.why = RERUN, f"--from {name}"


def print_plan(pp: PipelinePaths, decisions: list[Decision], dry_run: bool) -> None:
    width = max(len(d.step.name) for d in decisions)
    print(f"pipeline {pp.root}" + (" (dry run: nothing written or submitted)" if dry_run else ""))
    for d in decisions:
        arrow = {SKIP: "skip", RUN: "run", RERUN: "rerun"}.get(d.action, d.action)
        print(f"  {d.step.name:<{width}}  {arrow:<6}  {d.why}")


__all__ = ["BACKENDS", "Pipeline", "StepStatus", "submit"]
