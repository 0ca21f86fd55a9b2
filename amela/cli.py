"""amela: run | run-shard | status | merge | validate | doctor | fetch-models | filter (+ commands stages register).

Kept light: torch, NeMo and fairseq are imported only inside workers (or by `doctor`), so --help answers at once.
Exit codes: 0 every item succeeded; 1 the run completed but some items failed or were rejected (or it is
incomplete); 2 usage or configuration error; 3 environment error (the run could not write: disk full, quota,
read-only file system, permission denied); 130/143 interrupted by SIGINT/SIGTERM (rerun the same command to resume);
141 the reader of stdout went away (`amela validate ... | head`), said by nothing.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys

from .cli_common import EXIT_ENVIRONMENT, EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, print_summary, run_parser, run_report
from .errors import AmelaError, ConfigError, ManifestError, StageUnavailableError, UnknownShardError
from .paths import RunPaths
from .runtime import setup_logging

logger = logging.getLogger("amela")
EXIT_STDOUT_CLOSED = 128 + signal.SIGPIPE  # what the shell reports for a command that SIGPIPE stopped
# Modules with register(subparsers, stage_name) adding commands (kept light to import). stage_name is the STAGE typed
# after a command of STAGED_COMMANDS, whose options depend on the stage (parsed in one pass, flags from its config).
# slurm_cli: amela prepare (the first step of hand-written SLURM scripts); asr.cli: asr-eval;
# vad.cli: amela vad probs|resegment|tune; report.cli: amela report; planner.cli: amela plan (pilot run, job sizing);
# pipeline.cli: amela pipeline run|status|cancel
EXTRA_COMMANDS = ("amela.executors.slurm_cli", "amela.asr.cli", "amela.vad.cli", "amela.report.cli",
                  "amela.planner.cli", "amela.pipeline.cli")
STAGED_COMMANDS = ("run", "prepare", "plan")


class Interrupted(BaseException):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, _frame):
    raise Interrupted(signum)


# -- parsers -----------------------------------------------------------------------------------------------------------
def build_parser(stage_name: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amela", description=__doc__.split("\n\n")[0],
                                     epilog="`amela run STAGE --help` lists a stage's options.")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (env: AMELA_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_parser(sub, stage_name)

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
    p.add_argument("stage", type=_stage_with_models, metavar="STAGE",
                   help="a stage with models to download (e.g. asr, s2s: the stages whose class names a models_module)")
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
def cmd_run_shard(args) -> int:
    from .executors.local import run_shards
    from .runner import load_plan, load_spec

    paths = RunPaths(args.run_dir)
    spec, plan = load_spec(paths), load_plan(paths)
    if not 0 <= args.index < plan.num_shards:
        raise UnknownShardError(f"{paths.root}: shard index {args.index} out of range 0-{plan.num_shards - 1}")
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
    from .runner.status_report import print_local_status

    paths = RunPaths(args.run_dir)
    if paths.slurm_jobs.exists():  # submitted to SLURM: add the scheduler's view
        from .executors.slurm_print import print_status

        return print_status(paths, resubmit=args.resubmit, max_attempts=args.max_attempts)
    if args.resubmit:
        raise ConfigError(f"{paths.root}: --resubmit needs a run submitted to SLURM (--backend sbatch); this one has "
                          "no SLURM jobs: run it again with `amela run` (it resumes)")
    st = print_local_status(paths, verbose=getattr(args, "verbose", False))
    return EXIT_OK if st.complete else EXIT_ITEMS_FAILED


def cmd_merge(args) -> int:
    from .runner import merge_locked

    paths = RunPaths(args.run_dir)
    stats = merge_locked(paths, allow_partial=args.allow_partial)
    print_summary(paths, stats)
    run_report(args, paths)
    return EXIT_OK if stats["failed"] == 0 and not stats["rejected"] and stats["complete"] else EXIT_ITEMS_FAILED


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


def _stage_with_models(name: str) -> type:
    """fetch-models' STAGE: a stage from the registry (or module:Class) that declares a models module."""
    from .stage import REGISTRY, load_stage

    try:
        cls = load_stage(name)
    except ConfigError as exc:
        cls, problem = None, str(exc)
    if cls is None or not cls.models_module:
        known = [n for n in REGISTRY if load_stage(n).models_module]
        raise argparse.ArgumentTypeError(f"{problem if cls is None else f'stage {name!r} has no models to fetch'}; "
                                         f"stages with models: {', '.join(known)}")
    return cls


def cmd_fetch_models(args) -> int:
    module = importlib.import_module(args.stage.models_module)
    if args.check:
        lines, missing = module.cache_report(args.names, args.cache_dir)
        print("\n".join(lines))
        return EXIT_ITEMS_FAILED if missing else EXIT_OK
    for path in module.fetch_models(args.names, args.cache_dir):
        print(path)
    return EXIT_OK


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
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            return EXIT_STDOUT_CLOSED  # `amela validate ... | head`: the reader had what it wanted
        logger.debug("environment error", exc_info=True)
        print(f"amela: error: {environment_message(exc)}", file=sys.stderr)
        return EXIT_ENVIRONMENT


def _stdout_gone() -> bool:
    """Was it our stdout whose reader went away (not a pipe to a worker)? Then stdout points at /dev/null, so the
    interpreter's last flush at exit stays quiet too."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        gone = any(event & select.POLLERR for _, event in poll.poll(0))  # a pipe whose reader closed: POLLERR
    except (OSError, ValueError):  # stdout closed or not a real file
        return False
    if gone:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return gone


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
