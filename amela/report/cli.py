"""`amela report RUN_DIR [-o FILE]`."""
from __future__ import annotations


def register(sub, stage_name=None) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML page about a run (RUN_DIR/report.html)",
                       description="One HTML file (no network needed to open it): overview, shard timeline, failures "
                       "grouped by reason, the stage's distributions and samples, and short audio excerpts to listen "
                       "to. Works on a finished, partial or running run. `amela run` and `amela merge` write it "
                       "automatically (set AMELA_REPORT=0, or pass --no-report, to skip). See docs/report.md.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="where to write (default: RUN_DIR/report.html)")
    p.add_argument("--no-listening", action="store_true", help="leave out the audio excerpts (smaller, faster)")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from . import write_report

    path = write_report(args.run_dir, args.output, listening=not args.no_listening)
    size = path.stat().st_size
    print(f"report: {path} ({size / 1e6:.2f} MB)")
    return 0
