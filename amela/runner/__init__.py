"""The runner: the only code that reads manifests and writes a run's outputs, partial files, stats and markers."""
from .merge import merge, merge_locked
from .plan import RunOptions, RunSpec, ensure_shard, load_plan, load_spec, prepare
from .shard import is_done, locked, reopen_failed, run_shard
from .status import index_ranges, run_status

__all__ = ["RunOptions", "RunSpec", "ensure_shard", "index_ranges", "is_done", "load_plan", "load_spec", "locked",
           "merge", "merge_locked", "prepare", "reopen_failed", "run_shard", "run_status"]
