"""What the `amela` dispatcher (cli.py) shares with the command modules of other packages (`amela prepare`,
`amela plan`, `amela vad resegment`): the `run` parser, the spec it resolves to, and running that spec here or on a
backend. cli.py imports those command modules to register them, so they import this module, never cli.py.
"""
from __future__ import annotations

import argparse
import importlib
import os

from . import config as cfg
from .errors import ConfigError
from .paths import RunPaths

BACKENDS = ("local", "sbatch", "submitit")
EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3


def run_parser(sub, stage_name: str | None, name: str = "run", help: str = "run a stage over a manifest or directory"):
    """`amela run`'s parser (flags generated from the stage's config), added to `sub` as command `name`."""
    from .runner import RunOptions
    from .stage import load_stage

    stage_cls = load_stage(stage_name) if stage_name else None
    desc = (stage_cls.description if stage_cls else "") + (
        "\n\nINPUT is a JSONL manifest (one object per line: audio_filepath absolute, duration in seconds)"
        + (" or a directory of audio (recursive)" if stage_cls is None or stage_cls.accepts_directory else "")
        + ". Outputs in RUN_DIR: <stage>.jsonl (input order), failures.jsonl, stats.json, config.yaml, logs/. "
        "Rerun the same command to resume; finished shards are skipped.")
    kw = dict(help=help, description=desc.strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p = sub.add_parser(name, **kw)
    p.add_argument("stage", metavar="STAGE", help="vad, asr, s2s, quality (or package.module:Class)")
    p.add_argument("input", metavar="INPUT", help="manifest (.jsonl/.json) or audio directory")
    p.add_argument("-o", "--output", dest="run_dir", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--config", metavar="FILE", help="YAML with stage options (or a saved config.yaml)")
    p.add_argument("--backend", choices=BACKENDS, default="local", help="where shards run (default: local)")
    p.add_argument("--retry-failed", action="store_true", help="re-attempt items that failed in an earlier run")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--no-report", action="store_true", help="skip RUN_DIR/report.html at the end (env: AMELA_REPORT=0)")
    p.add_argument("--keep-plan", action="store_true",
                   help="resume an existing RUN_DIR's recorded plan even though INPUT changed since it was prepared "
                        "(the changes are ignored; without this flag such a rerun is refused)")
    cfg.add_arguments(p, RunOptions, "run options")
    for backend in BACKENDS[1:]:
        mod = backend_module(backend, required=False)
        if mod is not None and hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
    if stage_cls is not None:
        if stage_cls.presets:
            p.add_argument("--preset", choices=sorted(stage_cls.presets), default=None,
                           help="a named set of stage options (under --config and flags); see the stage's docs")
        cfg.add_arguments(p, stage_cls.config_cls, f"{stage_cls.name} options")
    p.set_defaults(func=cmd_run, stage_cls=stage_cls)
    return p


def backend_module(name: str, required: bool = True):
    try:
        return importlib.import_module(f"amela.executors.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"amela.executors.{name}":
            raise
        if required:
            raise ConfigError(f"backend {name!r} is not available in this installation") from None
        return None

def resolve_spec(args):
    from .runner import RunOptions, RunSpec
    from .stage import stage_spec

    stage_cls = args.stage_cls
    yaml_opts, yaml_run = {}, {}
    if args.config:
        data = cfg.load_yaml(args.config)
        if "options" in data:  # a saved config.yaml
            yaml_opts, yaml_run = data.get("options") or {}, data.get("run") or {}
        else:
            yaml_opts = data
    preset = stage_cls.presets.get(getattr(args, "preset", None) or "", {})
    options = cfg.from_dict(stage_cls.config_cls, {**preset, **yaml_opts, **cfg.pick(args, stage_cls.config_cls)},
                            f"{stage_cls.name} options")
    run = cfg.from_dict(RunOptions, {**yaml_run, **cfg.pick(args, RunOptions)}, "run options")
    stage = args.stage if getattr(args, "stage", None) else stage_spec(stage_cls)
    return RunSpec(stage, os.path.abspath(args.input), run, options)


def cmd_run(args) -> int:
    return run_spec(resolve_spec(args), args)


def run_spec(spec, args) -> int:
    """Prepare, run and merge `spec` into args.run_dir (or hand it to args.backend); also used by commands that
    build their own spec (e.g. `amela vad resegment`)."""
    from .runner import locked, merge, prepare, reopen_failed

    paths = RunPaths(args.run_dir)
    if args.backend != "local":
        if getattr(args, "after", None):  # the input may not exist yet: a job prepares the run once it does
            if args.backend != "sbatch":
                raise ConfigError("--after needs --backend sbatch")
            return backend_module("sbatch").launch_after(paths, spec, args)
        if not getattr(args, "dry_run", False):  # a dry run writes nothing: a later real one may use other flags
            prepare(paths, spec, keep_plan=getattr(args, "keep_plan", False))
        return backend_module(args.backend).launch(paths, spec, args)
    paths.root.mkdir(parents=True, exist_ok=True)
    from .executors.local import run_local

    with locked(paths.lock, f"run directory {paths.root}"):
        plan = prepare(paths, spec, keep_plan=getattr(args, "keep_plan", False))
        if args.retry_failed:
            reopen_failed(paths, plan.num_shards)
        run_local(paths, spec, spec.run.workers, show_progress=not args.no_progress)
        stats = merge(paths, spec.stage_class()(spec.options))
    print_summary(paths, stats)
    run_report(args, paths)
    return EXIT_OK if stats["failed"] == 0 and not stats["rejected"] else EXIT_ITEMS_FAILED

def run_report(args, paths: RunPaths) -> None:
    """The run report after a local run or a merge (the SLURM merge job); --no-report or AMELA_REPORT=0 skip it."""
    if not getattr(args, "no_report", False):
        from .report import write_after_run

        path = write_after_run(paths.root)
        if path:
            print(f"  report: {path}")

def print_summary(paths: RunPaths, stats: dict) -> None:
    lines = [
        f"{stats['stage']}: {stats['ok']} ok, {stats['failed']} failed, {stats['rejected']} rejected"
        + (f", {stats['missing']} missing" if stats.get("missing") else "")
        + f" of {stats['items']} item(s); {stats['audio_hours']:.3f} h of audio",
        f"  wall {stats['wall_seconds']:.1f} s" + (f", {stats['throughput_audio_s_per_s']:.1f} audio s/s"
                                                  if stats.get("throughput_audio_s_per_s") else ""),
    ]
    for k, v in (stats.get("summary") or {}).items():
        lines.append(f"  {k}: {v}")
    lines.append(f"  output: {paths.output(stats['stage'])}")
    if stats["failed"]:
        lines.append(f"  failures: {paths.failures}" + ("  (by reason:)" if stats.get("failure_reasons") else ""))
        for reason, n in list((stats.get("failure_reasons") or {}).items())[:5]:
            lines.append(f"    {n:7d} x {reason}")
    if stats["rejected"]:
        lines.append(f"  rejected (not processed): {paths.rejected}")
        lines += [f"    {line}" for line in first_rejected(paths, 5)]
    lines.append(f"  stats: {paths.stats}   logs: {paths.logs}")
    print("\n".join(lines))


def first_rejected(paths: RunPaths, n: int) -> list[str]:
    from .manifest import iter_jsonl

    out = []
    try:
        for i, p in enumerate(iter_jsonl(paths.rejected)):
            if i == n:
                out.append("...")
                break
            out.append(f"{p['file']}:{p['line']}: {p['reason']}" if p.get("line") else f"{p['file']}: {p['reason']}")
    except OSError:
        pass
    return out
