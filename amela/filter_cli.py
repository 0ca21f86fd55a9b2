"""`amela filter INPUT -o OUTPUT --where EXPR`: keep the records an expression accepts, and say why each other went.

The expression language is `amela.filters` (the one the pipeline's `where:` uses); the streaming split is the
runner's filter step. Light to import: the CLI builds this parser on every call.
"""
from __future__ import annotations

import argparse
import os
import re
from collections import Counter

EPILOG = """examples:
  amela filter run/quality.jsonl -o clean.jsonl --where "dnsmos_ovrl >= 3.0 and clipping_ratio < 0.001"
  amela filter run/ -o long.jsonl --where "duration >= 1 and not has(header_error)"
  amela filter segs.jsonl -o de.jsonl --where "lang in ['de', 'at'] and bandwidth_hz > 6000"

language: comparisons (chains too: 1 <= duration < 30), and / or / not, in / not in [list], + - * /, has(field)
(present and not null), len(x), abs(x), field("odd-name"); literals: numbers, "strings", true/false/null.
A record is dropped when the expression is false on it or cannot be evaluated (a missing field, a string compared
with a number); its line in the dropped file says which clause and the values."""


def register(sub) -> None:
    p = sub.add_parser("filter", help="keep the records of a manifest (or a run's output) that an expression accepts",
                       description=__doc__.split("\n\n")[0], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", help="a JSONL manifest, or a run directory (its merged <stage>.jsonl)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="where the kept records go (JSONL)")
    p.add_argument("--where", required=True, metavar="EXPR", help="keep records for which EXPR is true")
    p.add_argument("--dropped", metavar="PATH", default=None,
                   help="where the dropped records go, each with its reason (default: filtered.jsonl beside OUTPUT)")
    p.set_defaults(func=cmd_filter)


def _source(path: str) -> str:
    from .errors import ConfigError

    if not os.path.isdir(path):
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: no such manifest or run directory")
        return path
    from .paths import RunPaths
    from .runner import load_spec

    paths = RunPaths(path)
    if not paths.config.exists():
        raise ConfigError(f"{path}: a directory but not a run directory (no config.yaml); give a manifest")
    output = paths.output(load_spec(paths).stage_class().name)
    if not output.exists():
        raise ConfigError(f"{path}: {output.name} does not exist yet: finish the run (or `amela merge {path}`)")
    return str(output)


def cmd_filter(args) -> int:
    from .errors import ConfigError
    from .filters import compile_filter
    from .paths import RunPaths
    from .runner.filter import filter_manifest

    expression = compile_filter(args.where)
    source = _source(args.input)
    dropped = args.dropped or str(RunPaths(os.path.dirname(os.path.abspath(args.output))).filtered)  # as a step names it
    if os.path.abspath(dropped) == os.path.abspath(args.output):
        raise ConfigError(f"the kept and the dropped records would both go to {dropped}: choose --dropped")
    seen: set[str] = set()

    def reason_of(record: dict) -> str | None:
        seen.update(record)
        return expression.reason(record)

    counts = filter_manifest(source, args.output, dropped, reason_of, expression.text)
    total = counts.kept + counts.dropped
    share = f" ({100 * counts.kept / total:.1f} %)" if total else ""
    print(f"kept {counts.kept} of {total} record(s){share} -> {args.output}")
    print(f"dropped {counts.dropped} -> {dropped}")
    by_clause = Counter()
    for reason, n in counts.reasons.items():  # "x > 1 is false (x=0.5)": counted by clause, without the values
        by_clause[re.sub(r" \([^()]*\)$", "", reason)] += n
    for reason, n in by_clause.most_common(8):
        print(f"  {n:8d}  {reason}")
    if len(by_clause) > 8:
        print(f"  ... and {len(by_clause) - 8} other reason(s)")
    # A field no record has, that dropped records for being missing (has(x) on an absent x is no typo).
    unseen = sorted(f for f in expression.fields - seen if any(f"missing field {f!r}" in r for r in counts.reasons))
    if unseen and total:
        print(f"warning: field(s) {', '.join(unseen)} appear in no record of {source} (a typo?); fields there: "
              f"{', '.join(sorted(seen)[:30])}")
    return 0
