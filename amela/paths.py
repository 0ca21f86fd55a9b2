"""RunPaths: the one object that names every file of a run directory.

    RUN_DIR/
      config.yaml            resolved config (stage, stage options, run options)
      plan.json              the split: input, shard count, strategy, item counts per shard
      rejected.jsonl         input lines skipped by --on-invalid skip, with their reasons
      <stage>.jsonl          merged output manifest, input order
      <stage>_<stream>.jsonl merged extra streams a stage declares (e.g. vad_segments.jsonl)
      failures.jsonl         merged failures
      stats.json             merged statistics
      logs/                  one log per shard (and per SLURM task)
      shards/NNNNN/          input.jsonl, output.partial, failures.partial, <stream>.partial, stats.json, DONE,
                             <blob>.bin + <blob>.idx (binary side outputs, e.g. VAD probabilities)
      files/                 files a stage asks the runner to write (e.g. resynthesised audio)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ShardPaths:
    dir: Path

    @property
    def input(self) -> Path:
        return self.dir / "input.jsonl"

    @property
    def output(self) -> Path:
        return self.dir / "output.partial"

    @property
    def failures(self) -> Path:
        return self.dir / "failures.partial"

    def stream(self, name: str) -> Path:
        return self.dir / f"{name}.partial"

    def blob(self, name: str) -> Path:
        """A stage's binary side output, every item's bytes back to back (see runner/blobs.py)."""
        return self.dir / f"{name}.bin"

    def blob_index(self, name: str) -> Path:
        return self.dir / f"{name}.idx"

    @property
    def stats(self) -> Path:
        return self.dir / "stats.json"

    @property
    def done(self) -> Path:
        return self.dir / "DONE"

    @property
    def lock(self) -> Path:
        return self.dir / ".lock"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root).absolute())

    config = property(lambda self: self.root / "config.yaml")
    plan = property(lambda self: self.root / "plan.json")
    rejected = property(lambda self: self.root / "rejected.jsonl")
    failures = property(lambda self: self.root / "failures.jsonl")
    stats = property(lambda self: self.root / "stats.json")
    logs = property(lambda self: self.root / "logs")
    shards_dir = property(lambda self: self.root / "shards")
    files = property(lambda self: self.root / "files")
    lock = property(lambda self: self.root / ".lock")
    slurm_jobs = property(lambda self: self.root / "slurm_jobs.json")  # submissions, for `amela status`
    slurm_scripts = property(lambda self: self.root / "slurm")  # rendered sbatch scripts
    prepare_lock = property(lambda self: self.root / ".prepare.lock")

    def output(self, stage: str) -> Path:
        return self.root / f"{stage}.jsonl"

    def stream(self, stage: str, name: str) -> Path:
        return self.root / f"{stage}_{name}.jsonl"

    def report(self, name: str) -> Path:
        return self.root / name

    def shard(self, index: int) -> ShardPaths:
        return ShardPaths(self.shards_dir / f"{index:05d}")

    def shard_log(self, index: int) -> Path:
        return self.logs / f"shard_{index:05d}.log"

    def slurm_log_pattern(self, stage: str) -> str:
        """sbatch's --output pattern: logs/<stage>_<jobid>_<taskid>.out (%A array job id, %a task id)."""
        return str(self.logs / f"{stage}_%A_%a.out")
