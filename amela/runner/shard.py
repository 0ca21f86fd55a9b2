"""Running one shard: skip if done -> resume from what is written -> batches through the pool -> stats -> marker."""
from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import contextmanager

from filelock import FileLock, Timeout

from ..errors import RunLockedError
from ..executors.worker import Failure
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import RunPaths, ShardPaths
from ..progress import Progress
from ..stage import Output, Stage
from . import attempts, shardio
from . import blobs as blobio

logger = logging.getLogger("amela.runner")


@contextmanager
def locked(path, what: str):
    """Hold `path`'s lock or fail at once: two processes must never write the same files."""
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLockedError(f"{what} is in use by another process (lock {path}); wait for it or stop it") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def shard_log(paths: RunPaths, index: int):
    """Everything the `amela` logger says while the shard runs also goes to logs/shard_NNNNN.log."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(paths.shard_log(index))
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


def run_shard(paths: RunPaths, index: int, stage: Stage, pool, show_progress: bool = True) -> dict:
    """Process shard `index` with `pool` (a started WorkerPool/InProcessPool); returns the shard's stats."""
    sp = paths.shard(index)
    if not sp.input.exists():
        raise RunLockedError(f"{paths.root}: shard {index} does not exist in this run's plan")
    with locked(sp.lock, f"shard {index} of {paths.root}"), shard_log(paths, index):
        if sp.done.exists():
            return loads(sp.stats.read_bytes())
        attempts.record_start(sp.dir, time.time())
        try:
            stats = _run(paths, sp, index, stage, pool, show_progress)
        except BaseException as exc:  # recorded for the report's timeline, then re-raised untouched
            attempts.record_end(sp.dir, "error" if isinstance(exc, Exception) else "interrupted",
                                f"{type(exc).__name__}: {exc}")
            raise
        attempts.record_end(sp.dir, "done")
        return stats


def _run(paths: RunPaths, sp: ShardPaths, index: int, stage: Stage, pool, show_progress: bool) -> dict:
    t0 = time.time()
    baseline = ({pid: dict(st) for pid, st in pool.worker_stats.items()}, pool.crashes)
    write_bytes_atomic(sp.dir / "ATTEMPT", dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": t0,
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
    if done:
        logger.info("shard %d: resuming, %d of %d items already done", index, len(done), len(inputs))
    by_idx = dict(todo)
    positions = spread(stage.batches([r for _, r in todo]), pool.n_workers)
    work = [([todo[p][0] for p in batch], [todo[p][1] for p in batch]) for batch in positions]
    progress = Progress(len(todo), sum(r["duration"] for _, r in todo), f"{stage.name} shard {index}",
                        enabled=show_progress)
    out, fail = shardio.Appender(sp.output), shardio.Appender(sp.failures)
    extra = {s: shardio.Appender(sp.stream(s)) for s in streams}
    blob_out = {b: blobio.BlobWriter(sp.blob(b), sp.blob_index(b), done) for b in blob_names}
    try:
        for idx, outcome in pool.run(work):
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
                fail.write(idx, failure_record(idx, stage.name, record, outcome))
                logger.error("item %d failed (%s): %s: %s", idx, record.get("audio_filepath"), outcome.error_type,
                             outcome.message)
                if outcome.traceback:
                    logger.debug("item %d traceback:\n%s", idx, outcome.traceback)
            progress.update(record["duration"], not isinstance(outcome, Output))
    finally:
        for a in (out, fail, *extra.values(), *blob_out.values()):
            a.close()
        progress.close()
    return _finalize(sp, index, inputs, files, t0, pool, baseline)


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
            "signal": failure.signal, "audio_filepath": record.get("audio_filepath"), "record": record}


def _finalize(sp: ShardPaths, index: int, inputs: list, files: list, t0: float, pool, baseline) -> dict:
    for f in files:
        shardio.sort_file(f)
    ok_idx = {i for i, _ in shardio.iter_lines(sp.output)}
    failed = shardio.count_lines(sp.failures)
    missing = len(inputs) - len(ok_idx) - failed
    if missing:
        raise RuntimeError(f"shard {index}: {missing} item(s) have neither an output nor a failure; not marking done")
    stats = {
        "shard": index, "items": len(inputs), "ok": len(ok_idx), "failed": failed,
        "audio_seconds": round(sum(r["duration"] for i, r in inputs if i in ok_idx), 3),
        "started_at": t0, "finished_at": time.time(), "wall_seconds": round(time.time() - t0, 3),
        "worker_crashes": pool.crashes - baseline[1], "stage": merge_worker_stats(pool.worker_stats, baseline[0]),
        "host": socket.gethostname(),
    }
    write_bytes_atomic(sp.stats, dumps(stats))
    write_bytes_atomic(sp.done, b"")  # last: a marker means outputs and stats exist
    logger.info("shard %d done: %d ok, %d failed, %.1f audio s in %.1f s", index, stats["ok"], failed,
                stats["audio_seconds"], stats["wall_seconds"])
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
