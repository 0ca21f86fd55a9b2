"""Running one shard: skip if done -> resume from what is written -> batches through the pool -> stats -> marker."""
from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections import Counter
from contextlib import contextmanager

from ..errors import Failure, UnknownShardError
from ..locks import Lock
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import RunPaths, ShardPaths
from ..progress import Progress
from ..stage import Output, Stage
from . import attempts, shardio
from . import blobs as blobio
from .schema import ShardStats

logger = logging.getLogger("amela.runner")
# Failed items shown on the terminal per shard; the rest go to the shard log only (100,000 missing files once printed
# 14 MB of ERROR lines). failures.jsonl and the shard log keep every one; the summary counts them by reason.
SHOWN_FAILURES = 5
# An item failing with these would make every later item fail the same way: the run stops instead (exit 3).
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


@contextmanager
def locked(path, what: str):
    """Hold `path`'s lock or fail at once: two processes must never write the same files (flock, or a lease on
    file systems without flock: amela/locks.py)."""
    lock = Lock(path, what).acquire()
    try:
        yield
    finally:
        lock.release()


class _QuietFileHandler(logging.FileHandler):
    """A shard log that cannot be written (disk full) must not print logging's own traceback for every line: the
    write that matters fails in the runner, which says why once."""

    failed = False

    def emit(self, record) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record) -> None:
        self.failed = True


@contextmanager
def shard_log(paths: RunPaths, index: int):
    """Everything the `amela` logger says while the shard runs also goes to logs/shard_NNNNN.log."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    handler = _QuietFileHandler(paths.shard_log(index))
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("amela")
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def is_done(paths: RunPaths, index: int) -> bool:
    return paths.shard(index).done.exists()


def reopen_failed(paths: RunPaths, num_shards: int) -> None:
    """Finished shards with failures lose their marker and failures, so those items are attempted again."""
    for i in range(num_shards):
        sp = paths.shard(i)
        if sp.done.exists() and sp.failures.exists() and sp.failures.stat().st_size:
            sp.done.unlink()
            sp.failures.unlink()
            logger.info("shard %d: retrying its failed items", i)


def run_shard(paths: RunPaths, index: int, stage: Stage, pool, show_progress: bool = True) -> ShardStats:
    """Process shard `index` with `pool` (a started WorkerPool/InProcessPool); returns the shard's stats."""
    sp = paths.shard(index)
    if not sp.input.exists():
        raise UnknownShardError(f"{paths.root}: the directory of shard {index} is missing; `amela run-shard "
                             f"{paths.root} {index}` rebuilds it from plan.json and the input")
    with locked(sp.lock, f"shard {index} of {paths.root}"), shard_log(paths, index):
        if sp.done.exists():
            return ShardStats.read(sp.stats)
        attempts.record_start(sp.dir, time.time())
        try:
            stats = _run(paths, sp, index, stage, pool, show_progress)
        except BaseException as exc:  # recorded for the report's timeline, then re-raised untouched
            attempts.record_end(sp.dir, "error" if isinstance(exc, Exception) else "interrupted",
                                f"{type(exc).__name__}: {exc}")
            raise
        attempts.record_end(sp.dir, "done")
        return stats


def _run(paths: RunPaths, sp: ShardPaths, index: int, stage: Stage, pool, show_progress: bool) -> ShardStats:
    t0 = time.time()
    baseline = ({pid: dict(st) for pid, st in pool.worker_stats.items()}, pool.crashes)
    write_bytes_atomic(sp.attempt, dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": t0,
                                                  "slurm_job": os.environ.get("SLURM_JOB_ID")}))
    streams = stage.output_streams()
    blob_names = stage.output_blobs()
    files = [sp.output, sp.failures] + [sp.stream(s) for s in streams] + [sp.blob_index(b) for b in blob_names]
    for f in files:
        dropped = shardio.recover(f)
        if dropped:
            logger.warning("shard %d: dropped a torn last line (%d bytes) from %s", index, dropped, f.name)
    done = {i for f in (sp.output, sp.failures) for i, _ in shardio.iter_lines(f)}
    for name in streams:  # stream rows of an item whose output line never got written: it is redone
        dropped = shardio.keep_only(sp.stream(name), done)
        if dropped:
            logger.warning("shard %d: dropped %d uncommitted %s row(s)", index, dropped, name)
    inputs = [(i, loads(body)) for i, body in shardio.iter_lines(sp.input)]
    todo = [(i, r) for i, r in inputs if i not in done]
    todo = _fail_stopped_twice(sp, index, stage.name, todo)
    if done:
        logger.info("shard %d: resuming, %d of %d items already done", index, len(done), len(inputs))
    by_idx = dict(todo)
    positions = spread(stage.batches([r for _, r in todo]), pool.n_workers)
    work = [([todo[p][0] for p in batch], [todo[p][1] for p in batch]) for batch in positions]
    progress = Progress(len(todo), sum(r["duration"] for _, r in todo), f"{stage.name} shard {index}",
                        enabled=show_progress)
    out, fail = shardio.Appender(sp.output), shardio.Appender(sp.failures)
    reasons: Counter = Counter()
    extra = {s: shardio.Appender(sp.stream(s)) for s in streams}
    blob_out = {b: blobio.BlobWriter(sp.blob(b), sp.blob_index(b), done) for b in blob_names}
    try:
        for idx, outcome in _noting_inflight(sp, pool, pool.run(work)):
            record = by_idx[idx]
            if isinstance(outcome, Output):
                for name, blob in outcome.blobs.items():
                    if name in blob_out:
                        blob_out[name].write(idx, record, blob)
                for name, rows in outcome.streams.items():
                    if name in extra:
                        for row in rows:
                            extra[name].write(idx, row)
                out.write(idx, outcome.record)  # last: the output line commits the item, streams included
            else:
                if outcome.errno in ENVIRONMENT_ERRNOS:  # not the item's fault: stop, the item is redone on rerun
                    raise OSError(outcome.errno, f"{os.strerror(outcome.errno)} (while item {idx} was processed: "
                                                 f"{outcome.message})")
                row = failure_record(idx, stage.name, record, outcome)
                fail.write(idx, row)
                reasons[row["reason"]] += 1
                level = logging.ERROR if sum(reasons.values()) <= SHOWN_FAILURES else logging.DEBUG
                logger.log(level, "item %d failed (%s): %s: %s", idx, record.get("audio_filepath"),
                           outcome.error_type, outcome.message)
                if outcome.traceback:
                    logger.debug("item %d traceback:\n%s", idx, outcome.traceback)
            progress.update(record["duration"], not isinstance(outcome, Output))
    finally:
        for a in (out, fail, *extra.values(), *blob_out.values()):
            a.close()
        progress.close()
    if sum(reasons.values()) > SHOWN_FAILURES:
        logger.error("shard %d: %d item(s) failed (the first %d shown; all in %s and %s): %s", index,
                     sum(reasons.values()), SHOWN_FAILURES, sp.failures, paths.shard_log(index),
                     "; ".join(f"{n} x {r}" for r, n in reasons.most_common(5)))
    return _finalize(sp, index, inputs, files, t0, pool, baseline)


def _noting_inflight(sp: ShardPaths, pool, outcomes):
    """Yield from `outcomes`; if the task is stopped meanwhile inside a SLURM job (time limit, preemption), note which
    items were being processed: an item whose task keeps being stopped on it would requeue forever."""
    try:
        yield from outcomes
    except BaseException:
        running = getattr(pool, "running_indices", lambda: [])()
        if running and os.environ.get("SLURM_JOB_ID"):
            counts = _stopped_counts(sp)
            for i in running:
                counts[str(i)] = counts.get(str(i), 0) + 1
            write_bytes_atomic(sp.stopped, dumps(counts))
        raise


def _stopped_counts(sp: ShardPaths) -> dict:
    try:
        return loads(sp.stopped.read_bytes())
    except (OSError, ValueError):
        return {}


def _fail_stopped_twice(sp: ShardPaths, index: int, stage: str, todo: list) -> list:
    counts = _stopped_counts(sp)
    if not counts:
        return todo
    keep = []
    with shardio.Appender(sp.failures) as fail:
        for i, r in todo:
            if counts.get(str(i), 0) >= 2:
                failure = Failure("Timeout", "never finished: its SLURM task was stopped twice while processing it "
                                             "(time limit or preemption); not tried again, to avoid a requeue loop")
                fail.write(i, failure_record(i, stage, r, failure))
                logger.error("shard %d: item %d (%s) %s", index, i, r.get("audio_filepath"), failure.message)
            else:
                keep.append((i, r))
    return keep


def spread(batches: list[list[int]], workers: int, per_worker: int = 4) -> list[list[int]]:
    """Split the largest batches in half until every worker can have `per_worker` of them: a stage's batch size is
    chosen for efficiency, but 2 batches for 2 workers would leave a worker idle for the tail of every shard."""
    out = [list(b) for b in batches]
    while len(out) < workers * per_worker:
        largest = max(range(len(out)), key=lambda i: len(out[i]), default=None)
        if largest is None or len(out[largest]) < 2:
            break
        batch = out[largest]
        out[largest:largest + 1] = [batch[:len(batch) // 2], batch[len(batch) // 2:]]
    return out


def failure_record(idx: int, stage: str, record: dict, failure: Failure) -> dict:
    return {"index": idx, "stage": stage, "error_type": failure.error_type, "message": failure.message,
            "reason": failure_reason(failure.error_type, failure.message, record.get("audio_filepath")),
            "signal": failure.signal, "audio_filepath": record.get("audio_filepath"), "record": record}


def failure_reason(error_type: str, message: str, path: str | None) -> str:
    """What failures have in common: the message without the item's own file name (counted in the summary)."""
    if path:
        message = message.replace(path, "FILE")
    message = message.strip()
    return f"{error_type}: {message[:120]}" if message else error_type


def _finalize(sp: ShardPaths, index: int, inputs: list, files: list, t0: float, pool, baseline) -> ShardStats:
    for f in files:
        shardio.sort_file(f)
    # Seconds of audio as the stage found it (a stage corrects `duration` when the file is shorter than the manifest
    # said), not as the manifest claimed.
    ok_seconds = {i: float(loads(body).get("duration") or 0.0) for i, body in shardio.iter_lines(sp.output)}
    ok_idx = set(ok_seconds)
    failed = shardio.count_lines(sp.failures)
    missing = len(inputs) - len(ok_idx) - failed
    if missing:
        raise RuntimeError(f"shard {index}: {missing} item(s) have neither an output nor a failure; not marking done")
    stats = ShardStats(
        shard=index, items=len(inputs), ok=len(ok_idx), failed=failed, audio_seconds=round(sum(ok_seconds.values()), 3),
        started_at=t0, finished_at=time.time(), wall_seconds=round(time.time() - t0, 3),
        worker_crashes=pool.crashes - baseline[1], stage=merge_worker_stats(pool.worker_stats, baseline[0]),
        host=socket.gethostname())
    write_bytes_atomic(sp.stats, dumps(stats.to_dict()))
    write_bytes_atomic(sp.done, b"")  # last: a marker means outputs and stats exist
    logger.info("shard %d done: %d ok, %d failed, %.1f audio s in %.1f s", index, stats.ok, failed,
                stats.audio_seconds, stats.wall_seconds)
    return stats


def merge_worker_stats(per_worker: dict, baseline: dict | None = None) -> dict:
    """Combine Stage.stats() of all workers: keys ending in _max/_min take the max/min, _last the last value; other
    numbers are counters, summed, minus what they were at `baseline` (a pool shared by several shards)."""
    merged: dict = {}
    for pid, stats in per_worker.items():
        before = (baseline or {}).get(pid, {})
        for k, v in (stats or {}).items():
            if k.endswith("_max"):
                merged[k] = max(merged.get(k, v), v)
            elif k.endswith("_min"):
                merged[k] = min(merged.get(k, v), v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith("_last"):
                merged[k] = merged.get(k, 0) + v - before.get(k, 0)
            else:
                merged[k] = v
    return merged
