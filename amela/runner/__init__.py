"""The runner: the only code that reads manifests and writes a run's outputs, partial files, stats and markers."""
from .merge import IncompleteRunError, array_list, merge
from .plan import RunOptions, RunSpec, ensure_shard, load_plan, load_spec, prepare
from .shard import is_done, locked, run_shard
from .status import run_status

__all__ = ["IncompleteRunError", "RunOptions", "RunSpec", "array_list", "ensure_shard", "is_done", "load_plan",
           "load_spec", "locked", "merge", "prepare", "run_shard", "run_status"]
