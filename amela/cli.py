"""amela: run | run-shard | status | merge | validate | doctor | fetch-models | filter (+ commands stages register).

Kept light: torch, NeMo and fairseq are imported only inside workers (or by `doctor`), so --help answers at once.
Exit codes: 0 every item succeeded; 1 the run completed but some items failed or were rejected (or it is
incomplete); 2 usage or configuration error; 3 environment error (the run could not write: disk full, quota,
read-only file system, permission denied); 130/143 interrupted by SIGINT/SIGTERM (rerun the same command to resume).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys

from . import config as cfg
from .errors import AmelaError, ConfigError, ManifestError, StageUnavailableError
from .paths import RunPaths
from .runtime import setup_logging

logger = logging.getLogger("amela")
BACKENDS = ("local", "sbatch", "submitit")
# Modules with register(subparsers, stage_name) adding commands (kept light to import). stage_name is the STAGE typed
# after a command of STAGED_COMMANDS, whose options depend on the stage (parsed in one pass, flags from its config).
# slurm_cli: amela prepare (the first step of hand-written SLURM scripts); asr.cli: asr-eval;
# vad.cli: amela vad probs|resegment|tune; report.cli: amela report; planner.cli: amela plan (pilot run, job sizing);
# pipeline.cli: amela pipeline run|status|cancel
EXTRA_COMMANDS = ("amela.executors.slurm_cli", "amela.asr.cli", "amela.vad.cli", "amela.report.cli",
                  "amela.planner.cli", "amela.pipeline.cli")
STAGED_COMMANDS = ("run", "prepare", "plan")
EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3


class Interrupted(BaseException):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, _frame):
    raise Interrupted(signum)


# -- parsers -----------------------------------------------------------------------------------------------------------
def _run_parser(sub, stage_name: str | None, name: str = "run", help: str = "run a stage over a manifest or directory"):
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
        mod = _backend_module(backend, required=False)
        if mod is not None and hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
    if stage_cls is not None:
        if stage_cls.presets:
            p.add_argument("--preset", choices=sorted(stage_cls.presets), default=None,
                           help="a named set of stage options (under --config and flags); see the stage's docs")
        cfg.add_arguments(p, stage_cls.config_cls, f"{stage_cls.name} options")
    p.set_defaults(func=cmd_run, stage_cls=stage_cls)
    return p


def _backend_module(name: str, required: bool = True):
    try:
        return importlib.import_module(f"amela.executors.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"amela.executors.{name}":
            raise
        if required:
            raise ConfigError(f"backend {name!r} is not available in this installation") from None
        return None


def build_parser(stage_name: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amela", description=__doc__.split("\n\n")[0],
                                     epilog="`amela run STAGE --help` lists a stage's options.")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (env: AMELA_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub, stage_name)

    p = sub.add_parser("run-shard", help="run one shard of a prepared run (what one array task runs); idempotent")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("index", metavar="INDEX", type=int)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: from the stage and CPUs)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_run_shard)

    p = sub.add_parser("status", help="done / running / failed / missing shards, throughput, ETA, what to resubmit")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--watch", nargs="?", type=float, const=10.0, default=None, metavar="SECONDS",
                   help="repeat every SECONDS (default 10) until the run is complete: in place on a terminal, "
                   "as plain timestamped blocks otherwise (logs, pipes)")
    p.add_argument("--resubmit", action="store_true",
                   help="SLURM runs (--backend sbatch): resubmit the shards that need work, adjusted to why each "
                        "task ended (sacct): TIMEOUT -> the shard is split in two, OUT_OF_MEMORY -> twice the "
                        "memory, NODE_FAIL -> without that node, else the same again; each attempt goes to "
                        "RUN_DIR/resubmissions.jsonl (docs/slurm.md)")
    p.add_argument("--max-attempts", type=int, default=None, metavar="N",
                   help="with --resubmit: resubmit a shard at most N times (default 3), then leave it to you")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="one line per unfinished shard (default: shards with the same reason grouped as ranges)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("merge", help="merge finished shards into RUN_DIR/<stage>.jsonl, failures.jsonl, stats.json")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--allow-partial", action="store_true", help="merge even if shards are missing")
    p.add_argument("--no-report", action="store_true", help="skip RUN_DIR/report.html (env: AMELA_REPORT=0)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("validate", help="check a manifest: `file:line: problem` for each bad line")
    p.add_argument("manifest", metavar="MANIFEST")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("doctor", help="check Python, torch, GPU, and each stage's dependencies; print fixes")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("fetch-models", help="download models into the cache before submitting an array")
    p.add_argument("stage", choices=("asr", "s2s"))
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="asr: org/name (Hugging Face) or an NGC name; s2s: zoo names (default: the default models)")
    p.add_argument("--cache-dir", default=None, help="cache directory (default: $AMELA_CACHE)")
    p.add_argument("--check", action="store_true", help="download nothing: print what is cached where (every "
                   "cached model when no NAME is given); exit 1 if a NAME is missing")
    p.set_defaults(func=cmd_fetch_models)

    from . import filter_cli

    filter_cli.register(sub)
    for module in EXTRA_COMMANDS:
        importlib.import_module(module).register(sub, stage_name)
    return parser


# -- commands ------------------------------------------------------------------------------------------------------------
def _resolve_spec(args):
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
    return run_spec(_resolve_spec(args), args)


def run_spec(spec, args) -> int:
    """Prepare, run and merge `spec` into args.run_dir (or hand it to args.backend); also used by commands that
    build their own spec (e.g. `amela vad resegment`)."""
    from .runner import locked, merge, prepare

    paths = RunPaths(args.run_dir)
    if args.backend != "local":
        if getattr(args, "after", None):  # the input may not exist yet: a job prepares the run once it does
            if args.backend != "sbatch":
                raise ConfigError("--after needs --backend sbatch")
            return _backend_module("sbatch").launch_after(paths, spec, args)
        if not getattr(args, "dry_run", False):  # a dry run writes nothing: a later real one may use other flags
            prepare(paths, spec, keep_plan=getattr(args, "keep_plan", False))
        return _backend_module(args.backend).launch(paths, spec, args)
    paths.root.mkdir(parents=True, exist_ok=True)
    from .executors.local import run_local

    with locked(paths.lock, f"run directory {paths.root}"):
        plan = prepare(paths, spec, keep_plan=getattr(args, "keep_plan", False))
        if args.retry_failed:
            _reopen_failed(paths, plan.num_shards)
        run_local(paths, spec, spec.run.workers, show_progress=not args.no_progress)
        stats = merge(paths, spec.stage_class()(spec.options))
    print_summary(paths, stats)
    _report(args, paths)
    return EXIT_OK if stats["failed"] == 0 and not stats["rejected"] else EXIT_ITEMS_FAILED


def _reopen_failed(paths: RunPaths, num_shards: int) -> None:
    """Finished shards with failures lose their marker and failures, so those items are attempted again."""
    for i in range(num_shards):
        sp = paths.shard(i)
        if sp.done.exists() and sp.failures.exists() and sp.failures.stat().st_size:
            sp.done.unlink()
            sp.failures.unlink()
            logger.info("shard %d: retrying its failed items", i)


def cmd_run_shard(args) -> int:
    from .executors.local import run_shards
    from .runner import load_plan, load_spec

    paths = RunPaths(args.run_dir)
    spec, plan = load_spec(paths), load_plan(paths)
    if not 0 <= args.index < plan.num_shards:
        raise ConfigError(f"{paths.root}: shard index {args.index} out of range 0-{plan.num_shards - 1}")
    run_shards(paths, spec, [args.index], args.workers, show_progress=not args.no_progress)
    # Item failures are recorded, not fatal: the task succeeded if the shard is marked done.
    return EXIT_OK


def cmd_status(args) -> int:
    if args.max_attempts is not None and args.max_attempts < 0:
        raise ConfigError(f"--max-attempts must be >= 0, got {args.max_attempts}")
    if args.resubmit and args.watch is not None:
        raise ConfigError("--resubmit and --watch do not go together: resubmit once, then watch")
    if args.watch is None:
        return _status_once(args)
    from .status_watch import watch

    try:
        return watch(lambda: _status_once(args), args.watch)
    except Interrupted:  # Ctrl-C ends watching; the run itself is not touched
        return EXIT_OK


def _status_once(args) -> int:
    from .runner import array_list, run_status
    from .runner.eta import progress_line

    paths = RunPaths(args.run_dir)
    if paths.slurm_jobs.exists():  # submitted to SLURM: add the scheduler's view
        from .executors.slurm_status import print_status

        return print_status(paths, resubmit=args.resubmit, max_attempts=args.max_attempts)
    if args.resubmit:
        raise ConfigError(f"{paths.root}: --resubmit needs a run submitted to SLURM (--backend sbatch); this one has "
                          "no SLURM jobs: run it again with `amela run` (it resumes)")
    st = run_status(paths)
    by_state: dict[str, list[int]] = {}
    for s in st.shards:
        by_state.setdefault(s.state, []).append(s.index)
    ok = sum(s.ok for s in st.shards)
    failed = sum(s.failed for s in st.shards)
    print(f"run {paths.root} (stage {st.stage}): {len(st.shards)} shard(s), {st.items} item(s), {st.rejected} rejected")
    for state in ("done", "running", "failed", "missing"):
        idx = by_state.get(state, [])
        print(f"  {state:8s} {len(idx):5d}" + (f"  [{array_list(idx)}]" if idx and state != "done" else ""))
    print(f"  items: {ok} ok, {failed} failed, {st.items - ok - failed} not yet processed")
    print(progress_line(paths, st))
    _print_details(st.shards, getattr(args, "verbose", False))
    todo = st.indices("failed", "missing")
    if todo:
        print(f"resubmit: --array={array_list(todo)}   (local: amela run-shard {paths.root} INDEX)")
    if st.complete and not st.merged:
        print(f"all shards done; merge with: amela merge {paths.root}")
    return EXIT_OK if st.complete else EXIT_ITEMS_FAILED


def _print_details(shards, verbose: bool, shown: int = 10) -> None:
    """Why unfinished shards are unfinished: one line per reason with the shards as ranges (ten thousand shards
    stay readable), at most `shown` lines; every shard on its own line with --verbose."""
    from .runner import array_list

    by_reason: dict[str, list] = {}
    for s in shards:
        if s.state in ("failed", "missing") and s.detail:
            if verbose:
                print(f"  shard {s.index}: {s.detail}")
            else:
                by_reason.setdefault(s.reason or s.detail, []).append(s)
    lines = [f"  shard {group[0].index}: {group[0].detail}" if len(group) == 1
             else f"  {len(group)} shards [{array_list([s.index for s in group])}]: {why}"
             for why, group in by_reason.items()]
    for line in lines[:shown]:
        print(line)
    if len(lines) > shown:
        print(f"  ... {len(lines) - shown} more reason(s) for {sum(len(i) for i in list(by_reason.values())[shown:])} "
              "shard(s): --verbose lists every shard")


def cmd_merge(args) -> int:
    from .runner import load_spec, locked, merge

    paths = RunPaths(args.run_dir)
    spec = load_spec(paths)
    with locked(paths.lock, f"run directory {paths.root}"):
        stats = merge(paths, spec.stage_class()(spec.options), allow_partial=args.allow_partial)
    print_summary(paths, stats)
    _report(args, paths)
    return EXIT_OK if stats["failed"] == 0 and not stats["rejected"] and stats["complete"] else EXIT_ITEMS_FAILED


def _report(args, paths: RunPaths) -> None:
    """The run report after a local run or a merge (the SLURM merge job); --no-report or AMELA_REPORT=0 skip it."""
    if not getattr(args, "no_report", False):
        from .report import write_after_run

        path = write_after_run(paths.root)
        if path:
            print(f"  report: {path}")


def cmd_validate(args) -> int:
    from .manifest_scan import ManifestScan

    scan = ManifestScan(args.manifest)  # streamed: a 10 M-line manifest is checked in bounded memory
    for p in scan.problems():
        print(p)
    print(f"{args.manifest}: {scan.n_records} valid record(s), {scan.n_problems} problem(s)", file=sys.stderr)
    return EXIT_OK if not scan.n_problems else EXIT_ITEMS_FAILED


def cmd_doctor(args) -> int:
    from .doctor import run_doctor

    return run_doctor()


def cmd_fetch_models(args) -> int:
    module = importlib.import_module(f"amela.{args.stage}.models")
    if args.check:
        lines, missing = module.cache_report(args.names, args.cache_dir)
        print("\n".join(lines))
        return EXIT_ITEMS_FAILED if missing else EXIT_OK
    if args.stage == "asr" and not args.names:
        raise ConfigError("fetch-models asr: name the models to fetch (or pass --check to list the cache)")
    for path in module.fetch_models(args.names, args.cache_dir):
        print(path)
    return EXIT_OK


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
        lines += [f"    {line}" for line in _first_rejected(paths, 5)]
    lines.append(f"  stats: {paths.stats}   logs: {paths.logs}")
    print("\n".join(lines))


def _first_rejected(paths: RunPaths, n: int) -> list[str]:
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


# -- entry points ----------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage_name = argv[1] if len(argv) > 1 and argv[0] in STAGED_COMMANDS and not argv[1].startswith("-") else None
    try:
        parser = build_parser(stage_name)
    except ConfigError as exc:
        print(f"amela: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if args.command in STAGED_COMMANDS and args.stage_cls is None:
        parser.error(f"{args.command} needs a STAGE")
    return _dispatch(args)


def stage_main(stage: str, argv: list[str] | None = None) -> int:
    """`python -m amela.<stage> INPUT -o RUN_DIR ...` is `amela run <stage> INPUT -o RUN_DIR ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return main(["run", stage, *argv])


def _dispatch(args) -> int:
    setup_logging(args.log_level)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return args.func(args)
    except ManifestError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"amela: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, StageUnavailableError) as exc:
        print(f"amela: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as exc:
        print(f"amela: interrupted ({exc}); nothing is lost: rerun the same command to resume", file=sys.stderr)
        return 128 + exc.signum
    except AmelaError as exc:
        print(f"amela: error: {exc}", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    except OSError as exc:  # the machine, not the user's input: a full disk, a read-only mount, permissions
        logger.debug("environment error", exc_info=True)
        print(f"amela: error: {environment_message(exc)}", file=sys.stderr)
        return EXIT_ENVIRONMENT


ENVIRONMENT_HINTS = {
    errno.ENOSPC: "the disk is full: free space, or use a run directory on another file system; then rerun the same "
                  "command to resume (nothing written so far is lost)",
    errno.EDQUOT: "your disk quota is used up: free space (`quota -s`, `lfs quota`), or use another file system; then "
                  "rerun the same command to resume",
    errno.EROFS: "the file system is read-only: use a run directory on a writable file system",
    errno.EACCES: "permission denied: check the owner and mode of the directory (`ls -ld`), or use another one",
    errno.EPERM: "operation not permitted: check the owner and mode of the directory, or use another one",
    errno.EIO: "input/output error: the file system or disk is failing; ask the cluster's administrators",
}


def environment_message(exc: OSError) -> str:
    what = exc.filename if exc.filename is not None else ""
    where = f"{os.fsdecode(what)}: " if what != "" else ""
    hint = ENVIRONMENT_HINTS.get(exc.errno, "")
    return f"{where}{exc.strerror or exc}" + (f" ({hint})" if hint else "")


if __name__ == "__main__":
    raise SystemExit(main())
