"""`amela status --watch`: the status again every few seconds, until the run is complete or Ctrl-C.

On a terminal the screen is redrawn in place; otherwise (a log file, a pipe, `watch`-less SLURM job output) each
refresh is a plain block under a timestamp, so nothing but text ends up in the file.
"""
from __future__ import annotations

import contextlib
import io
import sys
import time


def watch(print_once, interval_s: float, out=None, max_rounds: int | None = None) -> int:
    """Call `print_once()` (prints, returns the status exit code) every `interval_s` until it returns 0."""
    out = out or sys.stdout
    tty = out.isatty()
    rounds = 0
    try:
        while True:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                code = print_once()
            stamp = time.strftime("%H:%M:%S")
            if tty:
                out.write("\x1b[H\x1b[2J" + buf.getvalue() + f"\n[{stamp}] refreshing every {interval_s:g} s; "
                          "Ctrl-C to stop\n")
            else:
                out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{buf.getvalue()}")
            out.flush()
            rounds += 1
            if code == 0 or (max_rounds is not None and rounds >= max_rounds):
                return code
            time.sleep(max(interval_s, 0.2))
    except KeyboardInterrupt:
        return 0
