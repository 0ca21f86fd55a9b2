"""What runs inside a worker process: build the stage once, then process batches sent by the pool.

This module is imported by freshly spawned processes, so it imports nothing numeric at module level: thread limits
are set first, then the stage (and whatever it imports) is loaded.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import traceback
from dataclasses import dataclass

from ..errors import Failure


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its stage (picklable: plain strings and dicts)."""

    stage: str  # registry name or module:Class
    config: dict
    sink_root: str | None = None
    threads: int = 1


def build_stage(spec: WorkerSpec):
    from ..config import from_dict
    from ..stage import FileSink, load_stage

    cls = load_stage(spec.stage)
    config = from_dict(cls.config_cls, spec.config, f"stage {cls.name}")
    return cls(config, FileSink(spec.sink_root) if spec.sink_root else None)


def failure_from(exc: BaseException) -> Failure:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if exc.__traceback__ else None
    return Failure(type(exc).__name__, str(exc) or repr(exc), None, tb, getattr(exc, "errno", None)
                   if isinstance(exc, OSError) else None)


def normalise(outcome):
    """A stage outcome as sent to the runner: Output, or Failure."""
    from ..stage import Output

    if isinstance(outcome, Output):
        return outcome
    if isinstance(outcome, dict):
        return Output(outcome)
    if isinstance(outcome, BaseException):
        return failure_from(outcome)
    return Failure("TypeError", f"stage returned {type(outcome).__name__}, expected a dict, Output or exception")


def process_isolated(stage, records: list[dict]) -> list:
    """stage.process(records); if it raises, bisect so the item responsible fails alone and the rest succeed."""
    try:
        outcomes = stage.process(records)
        if len(outcomes) != len(records):
            raise RuntimeError(f"stage {stage.name} returned {len(outcomes)} outcomes for {len(records)} records")
    except Exception as exc:  # noqa: BLE001 - any item error is isolated, never fatal to the run
        if len(records) == 1:
            return [failure_from(exc)]
        mid = len(records) // 2
        return process_isolated(stage, records[:mid]) + process_isolated(stage, records[mid:])
    return [normalise(o) for o in outcomes]


def worker_main(spec: WorkerSpec, conn, tasks, faulthandler_path: str | None = None) -> None:
    """Entry point of a pool worker: tasks in are ("batch", id, records) or ("stop",); results go out on `conn`."""
    from .. import runtime

    runtime.limit_threads(spec.threads)
    runtime.die_with_parent()
    # The parent decides when to stop: Ctrl-C, and SLURM's preemption/time-limit signals sent to every process of the
    # step, must not kill a worker mid-item (that would count as a crash against an innocent item).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    log = open(faulthandler_path, "a") if faulthandler_path else sys.stderr
    faulthandler.enable(file=log)
    try:
        stage = build_stage(spec)
        stage.setup()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which stops the run with the message
        conn.send(("setup_failed", type(exc).__name__, str(exc), traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = tasks.get()
        except (EOFError, OSError):
            break
        if msg[0] == "stop":
            break
        _, batch_id, records = msg
        conn.send(("start", batch_id))  # the parent's watchdog counts from here, not from when it was queued
        conn.send(("done", batch_id, process_isolated(stage, records), stage.stats()))
    try:
        stage.teardown()
    finally:
        conn.close()
