"""Each attempt at a shard, appended to shards/NNNNN/attempts.jsonl: when it started and how it ended.

ATTEMPT holds only the latest start; the report's shard timeline needs every try (requeues, preemptions, crashes).
A start line without an end line is an attempt that was killed outright (SIGKILL, node failure, out of time).
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import time
from importlib import metadata

from ..manifest import dumps
from ..paths import SHARD_ATTEMPTS

logger = logging.getLogger("amela.runner")
# Distributions whose versions decide results; recorded once per attempt (cheap: metadata only, no imports).
VERSIONED = ("amela", "numpy", "torch", "ten-vad", "nemo_toolkit", "fairseq", "onnxruntime", "soundfile", "soxr")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _append(shard_dir, row: dict) -> None:
    try:
        with open(os.path.join(shard_dir, SHARD_ATTEMPTS), "ab", buffering=0) as fh:
            fh.write(dumps(row) + b"\n")  # one write: concurrent readers never see half a line
    except OSError as exc:  # a diagnostic record must never fail (or mask the error of) the shard itself
        logger.warning("could not record the shard attempt in %s: %s", shard_dir, exc)


def record_start(shard_dir, started_at: float) -> None:
    _append(shard_dir, {"event": "start", "t": started_at, "host": socket.gethostname(), "pid": os.getpid(),
                        "slurm_job": os.environ.get("SLURM_JOB_ID"),
                        "slurm_array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
                        "slurm_restart_count": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
                        "versions": versions()})


def record_end(shard_dir, outcome: str, detail: str = "") -> None:
    """outcome: done, interrupted (a signal: preemption, scancel, Ctrl-C) or error."""
    _append(shard_dir, {"event": "end", "t": time.time(), "pid": os.getpid(), "outcome": outcome, "detail": detail})


def read(shard_dir) -> list[dict]:
    """The rows of attempts.jsonl; a torn last line (a writer killed mid-write) is skipped."""
    from ..manifest import loads

    rows = []
    try:
        with open(os.path.join(shard_dir, SHARD_ATTEMPTS), "rb") as fh:
            for line in fh:
                try:
                    rows.append(loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return rows


def spans(shard_dir, now: float) -> list[tuple[float, float]]:
    """(start, end) of each attempt; an attempt without an end line ends at the next start, or `now`."""
    out: list[list[float]] = []
    for row in read(shard_dir):
        if row.get("event") == "start":
            if out and out[-1][1] is None:
                out[-1][1] = row["t"]
            out.append([row["t"], None])
        elif row.get("event") == "end" and out and out[-1][1] is None:
            out[-1][1] = row["t"]
    return [(s, e if e is not None else max(now, s)) for s, e in out]
