"""Merging shards: outputs back in input order, failures gathered, stats summed, the stage's reports written."""
from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import IncompleteRunError
from ..manifest import _create_temp, atomic_open, dumps, iter_jsonl, write_bytes_atomic
from ..paths import RunPaths
from ..stage import Stage
from . import shardio
from .plan import load_plan
from .schema import Plan, ShardStats
from .status import index_ranges

logger = logging.getLogger("amela.runner")
MAX_OPEN = 256  # shard files merged at once


def _sorted_lines(path: Path, done: bool) -> Iterator[tuple[int, bytes]]:
    if done:  # finished shards were sorted when they finished
        return shardio.iter_lines(path)
    return iter(sorted(shardio.iter_lines(path), key=lambda t: t[0]))


def _merge_file(target: Path, sources: list[tuple[Path, bool]], transform=None) -> int:
    """k-way merge of shard files by input index into a JSONL file (atomic); returns the line count. More than
    MAX_OPEN shards are merged in groups into temporary files first (open files and buffers stay bounded; a
    login node allows 1,024 open files)."""
    if len(sources) > MAX_OPEN:
        temps: list[tuple[Path, bool]] = []
        try:
            for k in range(0, len(sources), MAX_OPEN):
                fd, tmp = _create_temp(target)
                temps.append((Path(tmp), True))
                with os.fdopen(fd, "wb") as fh:
                    iters = [_sorted_lines(p, done) for p, done in sources[k:k + MAX_OPEN]]
                    for idx, body in heapq.merge(*iters, key=lambda t: t[0]):
                        fh.write(b"%d\t%s\n" % (idx, body))
            return _merge_file(target, temps, transform)
        finally:
            for tmp, _ in temps:
                tmp.unlink(missing_ok=True)
    n = 0
    iters = [_sorted_lines(p, done) for p, done in sources]
    with atomic_open(target, "wb") as fh:
        for _, body in heapq.merge(*iters, key=lambda t: t[0]):
            fh.write((transform(body) if transform else body) + b"\n")
            n += 1
    return n


def merge(paths: RunPaths, stage: Stage, allow_partial: bool = False) -> dict:
    """Write the run's merged files; returns the merged stats. The caller holds the run lock."""
    plan = load_plan(paths)
    shards = range(plan.num_shards)
    done = {i: paths.shard(i).done.exists() for i in shards}
    missing = [i for i in shards if not done[i]]
    if missing and not allow_partial:
        raise IncompleteRunError(f"{paths.root}: {len(missing)} shard(s) not finished: {index_ranges(missing)} "
                                 "(run them, or merge with --allow-partial)", missing)
    present = [i for i in shards if done[i] or paths.shard(i).output.exists()]
    n_out = _merge_file(paths.output(stage.name), [(paths.shard(i).output, done[i]) for i in present])
    for name in stage.output_streams():
        _merge_file(paths.stream(stage.name, name), [(paths.shard(i).stream(name), done[i]) for i in present])
    n_fail = _merge_file(paths.failures, [(paths.shard(i).failures, done[i]) for i in present])
    stats = _stats(paths, plan, stage.name, done, n_out, n_fail)
    stats["failure_reasons"] = _failure_reasons(paths) if n_fail else {}
    outputs = lambda: iter_jsonl(paths.output(stage.name))  # noqa: E731
    stats["summary"] = stage.summary(outputs)
    for name, data in stage.reports(outputs).items():
        write_bytes_atomic(paths.report(name), data)
    write_bytes_atomic(paths.stats, dumps(stats))
    return stats


def merge_locked(paths: RunPaths, allow_partial: bool = False) -> dict:
    """Merge a prepared run under its lock: the one merge of `amela merge` (so of the SLURM merge job), of submitit's
    merge job and of RunJobs.merge(). The stage and its options come from the run's config.yaml; another process
    holding the run directory makes it fail at once (RunLockedError)."""
    from .plan import load_spec
    from .shard import locked

    spec = load_spec(paths)
    with locked(paths.lock, f"run directory {paths.root}"):
        return merge(paths, spec.stage_class()(spec.options), allow_partial=allow_partial)


def _stats(paths: RunPaths, plan: Plan, name: str, done: dict, n_out: int, n_fail: int) -> dict:
    shard_stats = [ShardStats.read(paths.shard(i).stats) for i, d in done.items() if d]
    audio_s = sum(s.audio_seconds for s in shard_stats) if all(done.values()) else None
    if audio_s is None:  # partial: count what was written
        audio_s = sum(r.get("duration", 0) for r in iter_jsonl(paths.output(name))) if n_out else 0.0
    starts = [s.started_at for s in shard_stats]
    ends = [s.finished_at for s in shard_stats]
    wall_s = (max(ends) - min(starts)) if shard_stats else 0.0
    task_s = sum(s.wall_seconds for s in shard_stats)
    return {
        "stage": name, "items": plan.items, "ok": n_out, "failed": n_fail, "rejected": plan.rejected,
        "missing": plan.items - n_out - n_fail, "complete": all(done.values()),
        "audio_seconds": round(audio_s, 3), "audio_hours": round(audio_s / 3600, 4),
        "wall_seconds": round(wall_s, 3), "task_seconds": round(task_s, 3),
        "throughput_audio_s_per_s": round(audio_s / wall_s, 3) if wall_s else None,
        "throughput_items_per_s": round(n_out / wall_s, 3) if wall_s else None,
        "shards": plan.num_shards, "worker_crashes": sum(s.worker_crashes or 0 for s in shard_stats),
        "per_shard": [{"shard": s.shard, "items": s.items, "ok": s.ok, "failed": s.failed, "wall_seconds": s.wall_seconds,
                       **({"stage": s.stage} if s.stage is not None else {})} for s in shard_stats],
    }


def _failure_reasons(paths: RunPaths, top: int = 20) -> dict:
    """{reason: count}, most common first (the printed summary shows these, not one line per failure)."""
    from collections import Counter

    from .shard import failure_reason

    counts = Counter(f.get("reason") or failure_reason(f.get("error_type", "?"), f.get("message", ""),
                                                       f.get("audio_filepath"))
                     for f in iter_jsonl(paths.failures))
    out = dict(counts.most_common(top))
    if len(counts) > top:
        out["(other reasons)"] = sum(counts.values()) - sum(out.values())
    return out
