"""`amela prepare`: what each task of a hand-written batch script (slurm/*.slurm) runs before `amela run-shard`.

    amela prepare STAGE INPUT -o RUN_DIR --shards N [run and stage options] [--record-job]

creates the run directory (plan, shard inputs, config.yaml) or, when it exists, checks the options agree: many array
tasks may call it at once (a lock serialises them, the first one creates). The shard count of a prepared directory
always wins over --shards, so resubmitting single tasks (`--array=0,5,12`, whose SLURM_ARRAY_TASK_MAX is smaller)
keeps the recorded split. --record-job writes the calling SLURM array job into RUN_DIR/slurm_jobs.json, so
`amela status` can ask SLURM about it and print a resubmission command.
"""
from __future__ import annotations

import logging
import os

from ..errors import ConfigError

logger = logging.getLogger("amela.prepare")


def register(subparsers, stage_name: str | None = None) -> None:
    from ..cli_common import run_parser

    p = run_parser(subparsers, stage_name, name="prepare",
                    help="create (or check) a run directory without running it: the first step of each task of a "
                         "hand-written batch script")
    p.add_argument("--record-job", action="store_true",
                   help="record this SLURM array job (SLURM_ARRAY_JOB_ID) in RUN_DIR/slurm_jobs.json for "
                        "`amela status`")
    p.add_argument("--auto", action="append", default=[], metavar="OPTION=VALUE",
                   help="a stage option the task tuned itself (e.g. batch_s from its GPU's memory): used when "
                        "this call creates the run directory and the option was not given; a prepared directory "
                        "keeps its recorded value (repeatable)")
    p.set_defaults(func=cmd_prepare)


def _auto_values(items: list[str], typed: dict) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--auto {item!r}: expected OPTION=VALUE")
        if key.replace("-", "_") not in typed:  # a value the user typed always wins
            out[key.replace("-", "_")] = value
    return out


def _with_options(spec, values: dict, source: str):
    """`spec` with some stage options replaced (strings are coerced and checked like flags)."""
    from dataclasses import replace

    from ..config import from_dict, to_dict

    if not values:
        return spec
    cls = spec.stage_class().config_cls
    return replace(spec, options=from_dict(cls, {**to_dict(spec.options), **values}, source))


def _resolve(args, paths):
    """The spec this call prepares: a prepared directory's shard count and auto-tuned options win."""
    from dataclasses import replace

    from ..cli_common import resolve_spec
    from ..config import pick, to_dict
    from ..runner import load_spec

    spec = resolve_spec(args)
    auto = _auto_values(args.auto, pick(args, spec.stage_class().config_cls))
    if not paths.plan.exists():
        return _with_options(spec, auto, "--auto")
    # config.yaml's count, not plan.json's: a resubmission may have split shards since (plan.json `splits`).
    recorded = load_spec(paths).run.shards
    if recorded != spec.run.shards:
        logger.info("%s is already split into %d shard(s): keeping that (not %d)", paths.root, recorded,
                    spec.run.shards)
        spec = replace(spec, run=replace(spec.run, shards=recorded))
    old = to_dict(load_spec(paths).options)
    return _with_options(spec, {k: old[k] for k in auto if k in old}, "recorded options")


def cmd_prepare(args) -> int:
    from ..paths import RunPaths
    from ..runner import prepare

    paths = RunPaths(args.run_dir)
    existed = paths.plan.exists()
    try:
        plan = prepare(paths, _resolve(args, paths), keep_plan=args.keep_plan)
    except ConfigError:
        if existed or not paths.plan.exists():
            raise
        # Another task created the directory meanwhile (with its own shard count or tuned values): agree with it.
        plan = prepare(paths, _resolve(args, paths), keep_plan=args.keep_plan)
    if args.record_job:
        record_current_job(paths)
    print(f"prepared {paths.root}: {plan.items} item(s) in {plan.num_shards} shard(s)")
    return 0


def record_current_job(paths) -> None:
    from . import slurm

    job_id = os.environ.get("SLURM_ARRAY_JOB_ID")
    if not job_id:
        logger.warning("--record-job outside a SLURM array task: nothing recorded")
        return
    offset = int(os.environ.get("AMELA_SHARD_OFFSET", "0") or 0)
    slurm.record_submission(paths, slurm.Submission(job_id, "array", "script", offset=offset,
                                                    command=submitted_command(os.environ.get("SLURM_JOB_ID", job_id))))


def submitted_command(job_id: str) -> list[str] | None:
    """The script and arguments the job was submitted with (scontrol's Command=), for the resubmit hint."""
    from . import slurm

    if not slurm.have("scontrol"):
        return None
    proc = slurm.run_command(["scontrol", "show", "job", job_id], timeout_s=30)
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("Command="):
            return line[len("Command="):].split()
    return None
