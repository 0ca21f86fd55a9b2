"""`amela plan STAGE INPUT -o RUN_DIR [run, stage and SLURM options] [planner options]`: measure, size, print the
command. Light to import: the stage, the runner and SLURM are touched only when the command runs."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
from pathlib import Path

logger = logging.getLogger("amela.plan")
EXIT_OK, EXIT_OVER_BUDGET = 0, 1
DESCRIPTION = """\
Size a job before submitting it. A duration-stratified sample of INPUT (--pilot-items records, one from each
duration stratum) runs through the stage as an ordinary run directory (--pilot-dir), here (--backend local) or as one
SLURM task on a real node (--backend sbatch, with the --partition/--gpus-per-task/... you will submit with). From its
throughput (audio seconds per second, per task and per worker) and fixed start-up cost (interpreter, imports, model
load) and the corpus's total audio, it prints: compute (task and GPU) hours, the shard count, --time per task with its
safety margin, the array layout and parallelism, wall time for several numbers of concurrent tasks (GPUs), whether it
fits --budget-gpu-hours, and the exact `amela run ... --backend sbatch` command to submit.

On SLURM the partition's MaxTime (scontrol show partition) and the cluster's MaxArraySize (scontrol show config) are
read, and nothing beyond them is recommended: shards are made smaller until a task fits MaxTime (or --time, when
given: then the longest a task may take).
Stage, run and SLURM options are those of `amela run` and go into the printed command as given (except
--retry-failed, --keep-plan, --dry-run and --after, which are about an existing run or a submission: refused here).
Exit status: 0, or 1 when the job does not fit --budget-gpu-hours. The figures also go to PILOT_DIR/sizing.json."""


MEANINGLESS_FLAGS = {"--retry-failed": "retry_failed", "--keep-plan": "keep_plan", "--dry-run": "dry_run",
                     "--after": "after"}


def register(subparsers, stage_name: str | None = None) -> None:
    from ..cli_common import run_parser

    p = run_parser(subparsers, stage_name, name="plan",
                    help="run a pilot sample, then print shard count, --time, GPU hours, wall time and the command")
    p.description = DESCRIPTION
    g = p.add_argument_group("planner options")
    g.add_argument("--pilot-items", type=int, default=32, metavar="K",
                   help="records in the pilot sample (default: 32); more: a closer estimate, a longer pilot")
    g.add_argument("--pilot-dir", default=None, metavar="DIR",
                   help="the pilot's run directory (default: RUN_DIR-pilot); an earlier pilot there is replaced")
    g.add_argument("--pilot-time", default=None, metavar="TIME",
                   help="--backend sbatch: the pilot task's --time (default: the partition's)")
    g.add_argument("--pilot-timeout-s", type=float, default=6 * 3600.0, metavar="S",
                   help="--backend sbatch: give up waiting for the pilot job after S seconds (default: 21600)")
    g.add_argument("--budget-gpu-hours", type=float, default=None, metavar="H",
                   help="say whether the job fits in H GPU hours (CPU stages: task hours)")
    g.add_argument("--target-task-min", type=float, default=60.0, metavar="MIN",
                   help="work per task to aim for, in minutes (default: 60): long enough to amortise the start-up, "
                        "short enough that a requeue or a straggler costs little")
    g.add_argument("--safety", type=float, default=2.0, metavar="F",
                   help="--time = F x the largest task's expected time + --signal-delay-s (default: 2.0)")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from ..cli_common import resolve_spec
    from ..errors import ConfigError
    from ..executors import sbatch
    from ..manifest import dumps, write_bytes_atomic
    from . import pilot
    from .sizing import Targets, size_job

    if args.pilot_items < 1 or args.safety < 1 or args.target_task_min <= 0:
        raise ConfigError("--pilot-items must be >= 1, --safety >= 1 and --target-task-min > 0")
    if args.backend not in ("local", "sbatch"):
        raise ConfigError("amela plan runs its pilot with --backend local or sbatch")
    # `amela run` flags about an existing run or the moment of submission: a plan makes a new pilot and submits nothing
    given = [flag for flag, dest in MEANINGLESS_FLAGS.items() if getattr(args, dest, None)]
    if given:
        raise ConfigError(f"amela plan does not take {', '.join(given)} (it runs a fresh pilot and submits nothing): "
                          "drop them here, and give them to the `amela run` it prints if you need them")
    spec = resolve_spec(args)
    opts = sbatch.slurm_options(args)
    run_dir = Path(os.path.abspath(args.run_dir))
    corpus = pilot.read_corpus(spec)
    limits = pilot.partition_limits(opts.partition)
    if opts.time:  # the user's own ceiling on a task, within the partition's
        own_s = sbatch.time_seconds(opts.time)
        if limits.max_time_s is None or own_s < limits.max_time_s:
            limits = dataclasses.replace(limits, max_time_s=own_s, time_source="--time")
    paths = pilot.new_pilot_dir(Path(args.pilot_dir or f"{run_dir}-pilot").absolute())
    picks = pilot.write_sample(corpus, args.pilot_items, paths.pilot_sample)
    pspec = pilot.pilot_spec(spec, paths.pilot_sample)
    logger.info("pilot: %d record(s) in %s (%s backend)", len(picks), paths.root, args.backend)
    if args.backend == "sbatch":
        measured, pstats = pilot.run_sbatch(paths, pspec, args, args.pilot_timeout_s)
    else:
        measured, pstats = pilot.run_local(paths, pspec)
    gpus = sbatch.batch_job(paths, spec, opts).gpus_per_task
    targets = Targets(task_work_s=args.target_task_min * 60, safety=args.safety, signal_delay_s=opts.signal_delay_s,
                      concurrent=opts.array_parallelism, budget_h=args.budget_gpu_hours,
                      shards=spec.run.shards if "shards" in args else None, gpus_per_task=gpus)
    longest_s = max(corpus.durations)
    sizing = size_job(corpus.audio_s, longest_s, len(corpus.durations), measured, limits, targets)
    command = run_command(args, spec, run_dir, sizing, limits)
    report = {
        "stage": spec.stage, "input": spec.input, "items": len(corpus.durations), "invalid_lines": corpus.invalid,
        "audio_seconds": round(corpus.audio_s, 3), "longest_item_s": longest_s,
        "pilot": {"dir": str(paths.root), "items": len(picks), "ok": pstats["ok"], "failed": pstats["failed"],
                  **{k: round(v, 6) if isinstance(v, float) else v for k, v in dataclasses.asdict(measured).items()},
                  "task_rate_audio_s_per_s": round(measured.task_rate, 6),
                  "worker_rate_audio_s_per_s": round(measured.worker_rate, 6)},
        "limits": dataclasses.asdict(limits), "gpus_per_task": gpus, "safety": args.safety,
        "sizing": sizing.to_dict(), "local_s": measured.startup_s + corpus.audio_s / measured.task_rate,
        "command": command,
    }
    write_bytes_atomic(paths.pilot_sizing, dumps(report))
    print(format_report(report, sizing, measured, limits, targets, pstats))
    return EXIT_OVER_BUDGET if sizing.fits_budget is False else EXIT_OK


def run_command(args, spec, run_dir: Path, sizing, limits) -> str:
    """`amela run` with the options typed for the plan (stage, run, SLURM) and the recommended ones."""
    from .. import config as cfg
    from ..executors.sbatch import SlurmOptions
    from ..runner import RunOptions
    from .sizing import fmt_time

    ours = {"shards", "strategy", "time", "array_parallelism", "partition", "workers"}
    words = ["amela", "run", args.stage, spec.input, "-o", str(run_dir)]
    if args.config:
        words += ["--config", os.path.abspath(args.config)]
    if getattr(args, "preset", None):
        words += ["--preset", args.preset]
    for cls in (args.stage_cls.config_cls, RunOptions, SlurmOptions):
        for name, value in cfg.pick(args, cls).items():
            if name in ours or name == "dry_run":
                continue
            flag = cfg.flag_name(name)
            if isinstance(value, bool):
                words.append(flag if value else "--no-" + flag[2:])
            else:
                words += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    for cmd in getattr(args, "setup_cmd", ()):
        words += ["--setup-cmd", cmd]
    for arg in getattr(args, "sbatch_arg", ()):
        words.append(f"--sbatch-arg={arg}")
    if spec.run.workers is not None:
        words += ["--workers", str(spec.run.workers)]
    words += ["--shards", str(sizing.shards), "--strategy", "duration", "--backend", "sbatch",
              "--time", fmt_time(sizing.time_limit_s)]
    if limits.partition:
        words += ["--partition", limits.partition]
    if sizing.parallelism:
        words += ["--array-parallelism", str(sizing.parallelism)]
    return shlex.join(words)


def format_report(r: dict, sizing, m, limits, targets, pstats: dict) -> str:
    from .sizing import fmt_duration, fmt_time

    hours = r["audio_seconds"] / 3600
    lines = [
        f"pilot: {r['pilot']['items']} of {r['items']:,} records (duration-stratified), {m.audio_s:.1f} s of audio, "
        f"{m.workers} worker(s), on {m.where}"
        + (f"; {pstats['failed']} item(s) failed (see {r['pilot']['dir']}/failures.jsonl)" if pstats["failed"] else ""),
        f"  throughput: {m.task_rate:.2f} audio s/s per task, {m.worker_rate:.2f} per worker"
        f"{' (per GPU)' if r['gpus_per_task'] == 1 and m.workers == 1 else ''}; start-up {m.startup_s:.1f} s per task "
        "(interpreter, imports, model load)"
        + (f"\n  (the pilot worked only {m.work_s:.1f} s: a rough figure; more --pilot-items give a closer one)"
           if m.work_s < 10 and r["pilot"]["items"] < r["items"] else ""),
        f"corpus: {r['items']:,} records, {hours:,.2f} h of audio (longest item {r['longest_item_s']:.1f} s)"
        + (f"; {r['invalid_lines']} invalid line(s) left out" if r["invalid_lines"] else ""),
        (f"partition {limits.partition}: longest task {fmt_time(limits.max_time_s) if limits.max_time_s else 'unlimited'}"
         f" ({limits.time_source}), MaxArraySize {limits.max_array_size}") if limits.partition else
        f"{limits.unchecked}: partition limits not checked; give --partition and plan on the login node",
        "",
        f"compute:  {sizing.compute_h:,.3f} task hours = {sizing.shards} x {m.startup_s:.1f} s start-up + "
        f"{r['audio_seconds'] / m.task_rate:,.0f} s of work"
        + (f"; {sizing.gpu_h:,.3f} GPU hours ({r['gpus_per_task']} GPU(s) per task)" if r["gpus_per_task"]
           else " (CPU only)"),
        f"shards:   {sizing.shards}, about {fmt_duration(sizing.task_s)} per task"
        + ("" if targets.shards else f" (aim: {fmt_duration(targets.task_work_s)} of work"
           + (f"; spread over {targets.concurrent} slots as far as start-up allows" if targets.concurrent else "")
           + ")")
        + ", balanced by duration",
        f"--time:   {fmt_time(sizing.time_limit_s)} per task = {targets.safety:g} x the largest task's expected "
        f"{fmt_duration(sizing.task_max_s)} + {targets.signal_delay_s} s for the requeue signal",
        f"array:    {sizing.shards} task(s) in {sizing.arrays} array(s) (MaxArraySize {limits.max_array_size})"
        + (f", at most {sizing.parallelism} at once" if sizing.parallelism else ", no throttle (--array-parallelism)"),
        "wall time (whole waves of tasks; queue wait not included):",
    ]
    slots = sorted({g for g in (1, 10, 100, 1000, targets.concurrent) if g and g <= sizing.shards} | {sizing.shards})
    for g in slots:
        mark = "  <- --array-parallelism" if g == targets.concurrent else ""
        lines.append(f"  {g:>6} task(s) at once: {fmt_duration(sizing.wall_s(g))}{mark}")
    lines.append(f"  locally, one process: {fmt_duration(r['local_s'])}")
    if sizing.fits_budget is not None:
        unit = "GPU hours" if r["gpus_per_task"] else "task hours (CPU stage)"
        used = sizing.gpu_h if r["gpus_per_task"] else sizing.compute_h
        lines.append(f"budget:   {used:,.2f} of {targets.budget_h:,.2f} {unit}: "
                     + ("fits" if sizing.fits_budget else f"DOES NOT FIT (over by {used - targets.budget_h:,.2f})"))
    lines += [f"note:     {n}" for n in sizing.notes]
    lines += ["", "submit with:", f"  {r['command']}", f"(figures: {r['pilot']['dir']}/sizing.json)"]
    return "\n".join(lines)


__all__ = ["cmd_plan", "register"]
