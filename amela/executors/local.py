"""Local execution: the pending shards of a run, one after another, through one crash-isolated pool of workers."""
from __future__ import annotations

import logging

from ..paths import RunPaths
from ..runner import RunSpec, ensure_shard, is_done, load_plan, run_shard
from ..runner.schema import ShardStats
from ..runtime import available_cpus, threads_per_worker
from .pool import make_pool
from .worker import WorkerSpec

logger = logging.getLogger("amela.local")


def default_workers(spec: RunSpec, cpus: int | None = None) -> int:
    """The stage's default, else as many workers as the CPUs allow for its per-worker needs."""
    res = spec.stage_class().resources
    if spec.run.workers is not None:
        return spec.run.workers
    if res.default_workers is not None:
        return res.default_workers
    return max(1, (cpus or available_cpus()) // max(1, res.cpus_per_worker))


def worker_spec(paths: RunPaths, spec: RunSpec, workers: int) -> WorkerSpec:
    from ..config import to_dict

    return WorkerSpec(spec.stage, to_dict(spec.options), spec.sink_root(paths), threads_per_worker(max(1, workers)))


def run_shards(paths: RunPaths, spec: RunSpec, indices: list[int], workers: int | None = None,
               show_progress: bool = True) -> list[ShardStats]:
    """Run the given shards (skipping finished ones) with one pool; returns their stats."""
    todo = [i for i in indices if not is_done(paths, i)]
    if not todo:
        return []
    for i in todo:
        ensure_shard(paths, spec, i)  # a deleted shard directory is rebuilt (or the reason it cannot be, named)
    n = default_workers(spec) if workers is None else workers
    stage = spec.stage_class()(spec.options)
    logger.info("running %d shard(s) of %s with %d worker(s)", len(todo), paths.root, n)
    paths.logs.mkdir(parents=True, exist_ok=True)
    timeout_s = spec.run.timeout_s(spec.stage_class())
    with make_pool(worker_spec(paths, spec, n), n, faulthandler_path=str(paths.faulthandler_log),
                   timeout_s=timeout_s) as pool:
        return [run_shard(paths, i, stage, pool, show_progress) for i in todo]


def run_local(paths: RunPaths, spec: RunSpec, workers: int | None = None,
              show_progress: bool = True) -> list[ShardStats]:
    return run_shards(paths, spec, list(range(load_plan(paths).num_shards)), workers, show_progress)


__all__ = ["default_workers", "run_local", "run_shards", "worker_spec"]
