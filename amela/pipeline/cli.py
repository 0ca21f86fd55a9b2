"""`amela pipeline run | status | cancel` (and `prepare-step`, what a SLURM preparation job runs)."""
from __future__ import annotations

import argparse
import logging

logger = logging.getLogger("amela.pipeline")
EXIT_OK, EXIT_INCOMPLETE = 0, 1

DESCRIPTION = """Run several stages as one pipeline: each step is an ordinary run in ROOT/<step>/ (so `amela status
ROOT/<step>` works on it), a step may read the output (or a stream) of a step above it, optionally filtered with
`where:`. Rerunning skips complete steps whose fingerprint (stage, options, model sha256, input) is unchanged,
resumes unfinished ones, and reruns changed steps and everything downstream. See docs/pipeline.md."""


def register(subparsers, stage_name: str | None = None) -> None:
    p = subparsers.add_parser("pipeline", help="run VAD -> filters -> ASR -> ... as one pipeline (pipeline.yaml)",
                              description=DESCRIPTION)
    sub = p.add_subparsers(dest="pipeline_command", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="run (or resume, or rerun what changed in) a pipeline",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("pipeline", metavar="PIPELINE.yaml")
    r.add_argument("-o", "--output", dest="root", required=True, metavar="ROOT",
                   help="pipeline root: one run directory per step")
    r.add_argument("--backend", choices=("local", "sbatch", "submitit"), default="local",
                   help="local: steps one after another here; sbatch: the whole job graph submitted at once; "
                        "submitit: the same graph through submitit (default: local)")
    r.add_argument("--dry-run", action="store_true", help="print what each step would do (skip / resume / run / "
                                                          "rerun, and why); write and submit nothing")
    r.add_argument("--from", dest="from_step", metavar="STEP",
                   help="rerun STEP and everything downstream of it even if unchanged")
    r.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")
    r.add_argument("--mail-type", default=None, help="SLURM --mail-type for the job that finishes the pipeline")
    r.add_argument("--mail-user", default=None, help="SLURM --mail-user for that job")
    r.add_argument("--container-cmd", default=None, metavar="CMD",
                   help="prefix of every task's Python on SLURM, e.g. 'apptainer exec --nv image.sif'")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("status", help="one line per step: state, items, and the command that repairs it")
    s.add_argument("root", metavar="ROOT")
    s.add_argument("--resubmit", action="store_true",
                   help="resubmit each step's failed SLURM tasks with resources adjusted to why they failed (as "
                        "`amela status RUN_DIR --resubmit`: TIMEOUT splits the shard, OUT_OF_MEMORY doubles --mem, "
                        "NODE_FAIL excludes the node); steps below resume with `amela pipeline run` afterwards")
    s.add_argument("--max-attempts", type=int, default=3, metavar="N",
                   help="with --resubmit: resubmit a shard at most N times (default 3)")
    s.set_defaults(func=cmd_status)
    c = sub.add_parser("cancel", help="cancel every SLURM job of the pipeline still queued or running")
    c.add_argument("root", metavar="ROOT")
    c.set_defaults(func=cmd_cancel)
    q = sub.add_parser("prepare-step", help=argparse.SUPPRESS)  # what a SLURM preparation job runs
    q.add_argument("root", metavar="ROOT")
    q.add_argument("step", metavar="STEP")
    q.set_defaults(func=cmd_prepare_step)


def cmd_run(args) -> int:
    from . import submit

    pipe = submit(args.pipeline, args.root, backend=args.backend, dry_run=args.dry_run, from_step=args.from_step,
                  show_progress=not args.no_progress, mail_type=args.mail_type, mail_user=args.mail_user,
                  container_cmd=args.container_cmd)
    if args.dry_run or args.backend != "local":
        return EXIT_OK
    rows = pipe.status()
    failed = sum(r.failed for r in rows)
    print(f"pipeline {pipe.root}: {len(rows)} step(s) complete" if pipe.complete(rows)
          else f"pipeline {pipe.root}: not complete; `amela pipeline status {pipe.root}`")
    return EXIT_OK if pipe.complete(rows) and not failed else EXIT_INCOMPLETE


def cmd_status(args) -> int:
    from . import Pipeline

    pipe = Pipeline.open(args.root)
    if args.resubmit:
        from .repair import resubmit_steps

        lines = resubmit_steps(pipe, args.max_attempts)
        print("resubmitted (each step's attempts: ROOT/<step>/resubmissions.jsonl):" if lines
              else "nothing to resubmit: no step has a failed SLURM task")
        for line in lines:
            print(f"  {line}")
    rows = pipe.status()
    width = max(len(r.step) for r in rows)
    print(f"pipeline {pipe.root}")
    for r in rows:
        line = f"  {r.step:<{width}}  {r.state:<9} {r.ok:>8} ok {r.failed:>6} failed"
        line += f"  of {r.items}" if r.items else ""
        line += f"  ({r.detail})" if r.detail else ""
        print(line)
        if r.repair:
            print(f"  {'':<{width}}  repair: {r.repair}")
    return EXIT_OK if pipe.complete(rows) else EXIT_INCOMPLETE


def cmd_cancel(args) -> int:
    from . import Pipeline

    n = Pipeline.open(args.root).cancel()
    print(f"cancelled {n} job(s)" if n else "no queued or running job to cancel")
    return EXIT_OK


def cmd_prepare_step(args) -> int:
    from ..paths import PipelinePaths
    from . import spec as pspec
    from .steps import prepare_step

    pp = PipelinePaths(args.root)
    spec = pspec.load(str(pp.spec))
    plan = prepare_step(pp, spec, spec.step(args.step))
    print(f"step {args.step}: prepared {plan.items} item(s) in {plan.num_shards} shard(s)")
    return EXIT_OK


__all__ = ["register"]
