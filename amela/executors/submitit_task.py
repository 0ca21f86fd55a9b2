"""What a submitit job runs: one shard, in the job's process; checkpointable, so a preempted or timed-out job is
requeued and resumes its shard from the records already written. Imports submitit: load only when submitting."""
from __future__ import annotations

import logging

from submitit.helpers import Checkpointable, DelayedSubmission

logger = logging.getLogger("amela.submitit")


class ShardTask(Checkpointable):
    """`ShardTask(run_dir)(index)` runs shard `index` of a prepared run and returns its stats (as `amela run-shard`)."""

    def __init__(self, run_dir: str, workers: int | None = None):
        self.run_dir = str(run_dir)
        self.workers = workers

    def __call__(self, index: int) -> dict:
        from ..paths import RunPaths
        from ..runner import load_spec
        from ..runner.schema import ShardStats
        from ..runtime import setup_logging
        from .local import run_shards

        setup_logging()
        paths = RunPaths(self.run_dir)
        stats = run_shards(paths, load_spec(paths), [index], self.workers, show_progress=False)
        # Item failures are recorded in the run directory, not raised: the job succeeded if the shard is done.
        # A plain dict, as `amela.submit(...).results()` documents.
        return (stats[0] if stats else ShardStats.read(paths.shard(index).stats)).to_dict()

    def checkpoint(self, index: int) -> DelayedSubmission:
        # Nothing to save: the shard's partial files are the checkpoint, and run_shard resumes from them.
        logger.warning("shard %d of %s: preempted or near its time limit; requeueing to resume", index, self.run_dir)
        return DelayedSubmission(self, index)


def merge_run(run_dir: str) -> dict:
    """The merge job: merge every shard of the run; returns the merged stats."""
    from ..paths import RunPaths
    from ..runner import merge_locked
    from ..runtime import setup_logging

    setup_logging()
    return merge_locked(RunPaths(run_dir))
