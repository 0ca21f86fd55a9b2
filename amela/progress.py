"""Progress: a tqdm bar on a terminal; periodic log lines otherwise (SLURM logs must stay readable)."""
from __future__ import annotations

import logging
import os
import sys
import time

logger = logging.getLogger("amela.progress")
INTERVAL_ENV = "AMELA_PROGRESS_INTERVAL_S"


class Progress:
    def __init__(self, total_items: int, total_seconds: float, label: str, enabled: bool = True):
        self.total_items, self.total_seconds, self.label = total_items, total_seconds, label
        self.items = self.failed = 0
        self.audio_s = 0.0
        self.t0 = self.last_log = time.monotonic()
        self.interval_s = float(os.environ.get(INTERVAL_ENV, "30"))
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_items, desc=label, unit="item", dynamic_ncols=True, leave=False)

    def update(self, audio_s: float, failed: bool) -> None:
        self.items += 1
        self.failed += failed
        self.audio_s += audio_s
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.audio_s / max(now - self.t0, 1e-9):.1f} audio s/s, {self.failed} failed",
                                     refresh=False)
        elif now - self.last_log >= self.interval_s:
            self.last_log = now
            logger.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.t0
        rate = self.items / max(elapsed, 1e-9)
        eta = (self.total_items - self.items) / rate if rate > 0 else float("inf")
        return (f"{self.label}: {self.items}/{self.total_items} items, {self.failed} failed, "
                f"{rate:.1f} items/s, {self.audio_s / max(elapsed, 1e-9):.1f} audio s/s, ETA {_fmt(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        logger.info("%s", self.line())


def _fmt(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
