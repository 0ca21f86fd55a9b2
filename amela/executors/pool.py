"""A crash-isolated process pool for one stage.

Why not concurrent.futures: when a worker dies there, every pending future fails and nobody knows which item killed
it. Here each worker has its own task queue and result pipe, the pool knows which batch each worker holds, and:
- a worker that dies (SIGSEGV, SIGBUS, SIGKILL, os._exit) is replaced; the batch it was processing is retried one item
  at a time; the batches it had queued but not started are requeued untouched;
- an item that kills a worker twice is reported as a Failure carrying the signal name; nothing is lost or duplicated;
- a watchdog: a batch that runs past its deadline (`timeout_s(records)`, from the time the worker started it) gets
  its worker killed and is retried like a crash, one item at a time; an item that times out twice fails as
  `timed out after N s`. A stopped worker (SIGSTOP), a FIFO opened by mistake, a network mount that never answers:
  none of them hangs a run.
Workers are started with `spawn` (never fork a process that loaded torch or a native library), set their thread
limits before importing numeric libraries, and die with the parent (PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from ..errors import Failure, StageUnavailableError
from ..runtime import signal_name, thread_env
from .worker import WorkerSpec, build_stage, process_isolated, worker_main

logger = logging.getLogger("amela.pool")
MAX_SETUP_DEATHS = 3


class StageSetupError(StageUnavailableError):
    """A worker could not build the stage (missing native library, bad model path, ...)."""


@dataclass
class _Batch:
    id: int
    idxs: list[int]
    records: list[dict]
    started_at: float | None = None  # monotonic, when the worker said it began


@dataclass
class _Worker:
    proc: mp.Process
    tasks: object  # mp.Queue
    results: object  # Connection (receive end)
    ready: bool = False
    inflight: deque = field(default_factory=deque)


class WorkerPool:
    """`run(work)` yields (index, Output | Failure) for every index of every batch, in completion order."""

    def __init__(self, spec: WorkerSpec, workers: int, prefetch: int = 2, faulthandler_path: str | None = None,
                 start_method: str = "spawn", timeout_s=None):
        self.spec = spec
        self.timeout_s = timeout_s  # records -> seconds a batch may run; None: no watchdog
        self.n_workers = max(1, workers)
        self.prefetch = max(1, prefetch)
        self.faulthandler_path = faulthandler_path
        self.ctx = mp.get_context(start_method)
        self.workers: list[_Worker] = []
        self.worker_stats: dict[int, dict] = {}
        self.crashes = 0
        self._setup_deaths = 0
        self._ids = itertools.count()

    # -- life cycle ------------------------------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, *_):
        self.close(kill=exc_type is not None)

    def start(self) -> None:
        # Children inherit the environment at spawn: thread limits are in place before anything numeric loads there.
        saved = {k: os.environ.get(k) for k in thread_env(1)}
        os.environ.update(thread_env(self.spec.threads))
        try:
            while len(self.workers) < self.n_workers:
                self.workers.append(self._spawn())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        while not all(w.ready for w in self.workers):
            self._poll(None)

    def _spawn(self) -> _Worker:
        tasks = self.ctx.Queue()
        tasks.cancel_join_thread()  # a dead worker's queue must never block our exit
        recv, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=worker_main, args=(self.spec, send, tasks, self.faulthandler_path),
                                name="amela-worker", daemon=True)
        proc.start()
        send.close()
        return _Worker(proc, tasks, recv)

    def close(self, kill: bool = False) -> None:
        for w in self.workers:
            if kill:
                w.proc.kill()
            else:
                try:
                    w.tasks.put(("stop",))
                except (OSError, ValueError):
                    pass
        for w in self.workers:
            w.proc.join(timeout=None if kill else 10)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.results.close()
            w.tasks.close()
        self.workers = []

    # -- work ------------------------------------------------------------------------------------------------------
    def run(self, work: Iterable[tuple[list[int], list[dict]]]) -> Iterator[tuple[int, object]]:
        pending = deque(_Batch(next(self._ids), list(i), list(r)) for i, r in work)
        crash_counts: dict = {}  # idx (crashes) or (idx, "timeout") -> times
        finished: list[tuple[int, object]] = []
        while pending or any(w.inflight for w in self.workers):
            self._dispatch(pending)
            finished.clear()
            self._poll(pending, crash_counts, finished, self._next_deadline())
            self._kill_overdue(pending, crash_counts, finished)
            yield from finished

    def running_indices(self) -> list[int]:
        """Items of the batches workers have started and not finished."""
        return [i for w in self.workers if w.inflight and w.inflight[0].started_at is not None
                for i in w.inflight[0].idxs]

    # -- watchdog --------------------------------------------------------------------------------------------------
    def _deadline(self, batch: _Batch) -> float | None:
        if self.timeout_s is None or batch.started_at is None:
            return None
        return batch.started_at + self.timeout_s(batch.records)

    def _next_deadline(self) -> float | None:
        """Seconds until the earliest running batch is overdue (None: wait for the workers without a limit)."""
        deadlines = [d for w in self.workers if w.inflight for d in [self._deadline(w.inflight[0])] if d is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _kill_overdue(self, pending, crash_counts, finished) -> None:
        now = time.monotonic()
        for w in list(self.workers):
            if not w.inflight:
                continue
            batch = w.inflight[0]
            deadline = self._deadline(batch)
            if deadline is None or now < deadline:
                continue
            limit_s = self.timeout_s(batch.records)
            self._drain(w, finished)  # it may have answered just now
            if not w.inflight or w.inflight[0] is not batch:
                continue
            logger.warning("worker %d: %d item(s) still running after %.0f s (first: %s); killing it", w.proc.pid,
                           len(batch.idxs), limit_s, batch.records[0].get("audio_filepath"))
            w.proc.kill()  # SIGKILL also ends a stopped (SIGSTOP) process
            w.proc.join()
            self._replace(w, pending, crash_counts, finished, timed_out_s=limit_s)

    def _dispatch(self, pending: deque) -> None:
        # Breadth first: every idle worker gets a batch before any worker gets a second (prefetched) one.
        for depth in range(self.prefetch):
            for w in self.workers:
                if w.ready and pending and len(w.inflight) <= depth:
                    batch = pending.popleft()
                    w.inflight.append(batch)
                    w.tasks.put(("batch", batch.id, batch.records))

    def _poll(self, pending, crash_counts=None, finished=None, timeout_s: float | None = None) -> None:
        by_conn = {w.results: w for w in self.workers}
        by_sentinel = {w.proc.sentinel: w for w in self.workers}
        ready = wait(list(by_conn) + list(by_sentinel), timeout_s)
        dead = []
        for obj in ready:
            if obj in by_conn:
                self._drain(by_conn[obj], finished)
            else:
                dead.append(by_sentinel[obj])
        for w in dead:
            self._drain(w, finished)  # results it sent before dying still count
            self._replace(w, pending, crash_counts, finished)

    def _drain(self, w: _Worker, finished) -> None:
        try:
            while w.results.poll():
                self._handle(w, w.results.recv(), finished)
        except (EOFError, OSError):
            pass

    def _handle(self, w: _Worker, msg, finished) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            self._setup_deaths = 0
        elif kind == "setup_failed":
            self.close(kill=True)
            _, etype, message, tb = msg
            logger.debug("worker setup traceback:\n%s", tb)
            raise StageSetupError(f"stage setup failed in a worker: {etype}: {message}")
        elif kind == "start":
            if w.inflight and w.inflight[0].id == msg[1]:
                w.inflight[0].started_at = time.monotonic()
        elif kind == "done":
            _, batch_id, outcomes, stats = msg
            batch = w.inflight.popleft()
            if batch.id != batch_id:  # workers answer in the order they were sent; anything else is a bug here
                raise RuntimeError(f"worker {w.proc.pid} answered batch {batch_id}, expected {batch.id}")
            self.worker_stats[w.proc.pid] = stats
            finished.extend(zip(batch.idxs, outcomes))

    def _replace(self, w: _Worker, pending, crash_counts, finished, timed_out_s: float | None = None) -> None:
        w.proc.join()
        sig = signal_name(w.proc.exitcode) or f"exit code {w.proc.exitcode}"
        if timed_out_s is None:
            self.crashes += 1
        index = self.workers.index(w)
        w.results.close()
        if not w.ready:
            self._setup_deaths += 1
            if self._setup_deaths >= MAX_SETUP_DEATHS:
                self.close(kill=True)
                raise StageSetupError(f"workers keep dying while setting up the stage ({sig})")
        if w.inflight:
            active, queued = w.inflight[0], list(w.inflight)[1:]
            # queued batches never started: requeue them as they were, in order
            for batch in reversed(queued):
                pending.appendleft(batch)
            self._retry_alone(active, sig, pending, crash_counts, finished, timed_out_s)
        if timed_out_s is None:
            logger.warning("worker %d died (%s); replacing it", w.proc.pid, sig)
        self.workers[index] = self._spawn()

    def _retry_alone(self, batch: _Batch, sig: str, pending, crash_counts, finished,
                     timed_out_s: float | None = None) -> None:
        for idx, record in reversed(list(zip(batch.idxs, batch.records))):
            key = (idx, "timeout") if timed_out_s is not None else idx
            crash_counts[key] = crash_counts.get(key, 0) + 1
            if crash_counts[key] >= 2 and timed_out_s is not None:
                limit_s = self.timeout_s([record])
                finished.append((idx, Failure("Timeout", f"timed out after {limit_s:.0f} s (twice; the worker was "
                                                         "killed each time)")))
            elif crash_counts[key] >= 2:
                finished.append((idx, Failure("WorkerCrash", f"worker died twice on this item ({sig})", sig)))
            else:
                pending.appendleft(_Batch(next(self._ids), [idx], [record]))


class InProcessPool:
    """workers=0: the stage runs in this process (debugging, notebooks). No crash isolation."""

    n_workers = 1

    def __init__(self, spec: WorkerSpec, **_):
        self.spec = spec
        self.worker_stats: dict[int, dict] = {}
        self.crashes = 0
        self.stage = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *_):
        self.close()

    def start(self) -> None:
        self.stage = build_stage(self.spec)
        try:
            self.stage.setup()
        except Exception as exc:
            raise StageSetupError(f"stage setup failed: {type(exc).__name__}: {exc}") from exc

    def run(self, work):
        for idxs, records in work:
            self._running = list(idxs)
            outcomes = process_isolated(self.stage, list(records))
            self._running = []
            self.worker_stats[os.getpid()] = self.stage.stats()
            yield from zip(idxs, outcomes)

    def running_indices(self) -> list[int]:
        return list(getattr(self, "_running", []))

    def close(self, kill: bool = False) -> None:
        if self.stage is not None:
            self.stage.teardown()
            self.stage = None


def make_pool(spec: WorkerSpec, workers: int, **kw):
    return InProcessPool(spec) if workers == 0 else WorkerPool(spec, workers, **kw)


__all__ = ["WorkerPool", "InProcessPool", "StageSetupError", "make_pool", "Failure"]
