"""`python -m amela.s2s MODE INPUT -o RUN_DIR ...` == `amela run s2s INPUT -o RUN_DIR --mode MODE ...`.

A first argument that is not a mode (e.g. --help, or a manifest with --mode given as a flag) is passed through as is.
"""
from __future__ import annotations

import sys

from .config import MODES


def translate(argv: list[str]) -> list[str]:
    if argv and argv[0] in MODES:
        return argv[1:] + ["--mode", argv[0]]
    return argv


def main(argv: list[str] | None = None) -> int:
    from amela.cli import stage_main

    return stage_main("s2s", translate(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    raise SystemExit(main())
