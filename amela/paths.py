"""RunPaths: the one object that names every file of a run directory.

    RUN_DIR/
      config.yaml            resolved config (stage, stage options, run options)
      plan.json              the split: input, shard count, strategy, item counts per shard
      rejected.jsonl         input lines skipped by --on-invalid skip, with their reasons
      <stage>.jsonl          merged output manifest, input order
      <stage>_<stream>.jsonl merged extra streams a stage declares (e.g. vad_segments.jsonl)
      failures.jsonl         merged failures
      resubmissions.jsonl    `amela status --resubmit`: one line per shard per repair attempt (cause, action, job)
      stats.json             merged statistics
      logs/                  one log per shard (and per SLURM task)
      shards/NNNNN/          input.jsonl, output.partial, failures.partial, <stream>.partial, stats.json, DONE,
                             <blob>.bin + <blob>.idx (binary side outputs, e.g. VAD probabilities)
      files/                 files a stage asks the runner to write (e.g. resynthesised audio)
      step.json              in a pipeline step: its fingerprint (what its result depends on)
      filter_kept.jsonl      in a pipeline step with `where:`: the records it kept (the run's input)
      filtered.jsonl         ... and those it dropped, each with the reason

    PIPELINE_ROOT/
      pipeline.yaml          the pipeline as submitted (what `amela pipeline status` and reruns read)
      pipeline_jobs.json     SLURM jobs submitted per step (prepare, arrays, merge)
      .hashes.json           sha256 of inputs and models, cached by (path, size, mtime)
      <step>/                each step's ordinary run directory
      <step>.old-<time>/     a step's previous run, kept while its rerun is not complete
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
    pending_config = property(lambda self: self.root / "config.pending.yaml")  # `amela run --after`: not prepared yet
    step_record = property(lambda self: self.root / "step.json")
    filter_kept = property(lambda self: self.root / "filter_kept.jsonl")
    filtered = property(lambda self: self.root / "filtered.jsonl")
    resubmissions = property(lambda self: self.root / "resubmissions.jsonl")  # `amela status --resubmit`: attempts
    resubmit_lock = property(lambda self: self.root / ".resubmit.lock")  # one `status --resubmit` at a time
    pending_split = property(lambda self: self.root / "split.pending.json")  # journal of a shard split in progress

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

    def prepare_log_pattern(self) -> str:
        """A pipeline step's preparation job (filter + split) on SLURM: logs/prepare_<jobid>.out."""
        return str(self.logs / "prepare_%j.out")

    def slurm_log_pattern(self, stage: str) -> str:
        """sbatch's --output pattern: logs/<stage>_<jobid>_<taskid>.out (%A array job id, %a task id)."""
        return str(self.logs / f"{stage}_%A_%a.out")


@dataclass(frozen=True)
class PipelinePaths:
    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root).absolute())

    spec = property(lambda self: self.root / "pipeline.yaml")
    jobs = property(lambda self: self.root / "pipeline_jobs.json")
    hashes = property(lambda self: self.root / ".hashes.json")
    lock = property(lambda self: self.root / ".pipeline.lock")

    def step(self, name: str) -> RunPaths:
        return RunPaths(self.root / name)

    def old_step(self, name: str, stamp: str) -> Path:
        return self.root / f"{name}.old-{stamp}"

    def old_steps(self, name: str) -> list[Path]:
        return sorted(self.root.glob(f"{name}.old-*"))
