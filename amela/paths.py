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
      report.html            `amela report` (.report_sha256.json: its cached model checksums)
      logs/                  one log per shard (and per SLURM task: <stage>_<job>_<task>.out, merge_<job>.out),
                             faulthandler.log (local workers' hard crashes), submitit/ (a pipeline step's submitit files)
      shards/NNNNN/          input.jsonl, output.partial, failures.partial, <stream>.partial, stats.json, DONE,
                             <blob>.bin + <blob>.idx (binary side outputs, e.g. VAD probabilities),
                             ATTEMPT (latest start), attempts.jsonl (every start and end), STOPPED_ITEMS.json, .lock
      files/                 files a stage asks the runner to write (e.g. resynthesised audio)
      slurm/                 rendered batch scripts (<stage>.sbatch, merge.sbatch, prepare.sbatch)
      slurm_jobs.json        SLURM jobs submitted for this run (.slurm_jobs.lock: its writers' lock)
      submitit/              submitit's job files (amela.submit, --backend submitit)
      .status_cache.json     finished shards' figures, so `amela status` reads each shard once
      .lock, .prepare.lock, .resubmit.lock, config.pending.yaml, split.pending.json: locks and journals
      sample.jsonl, sizing.json  in an `amela plan` pilot directory: its records and the sizing it measured
      step.json              in a pipeline step: its fingerprint (what its result depends on)
      filter_kept.jsonl      in a pipeline step with `where:`: the records it kept (the run's input)
      filtered.jsonl         ... and those it dropped, each with the reason

    PIPELINE_ROOT/
      pipeline.yaml          the pipeline as submitted (what `amela pipeline status` and reruns read)
      pipeline_jobs.json     SLURM jobs submitted per step (prepare, arrays, merge)
      .hashes.json           sha256 of inputs and models, cached by (path, size, mtime)
      <step>/                each step's ordinary run directory
      <step>.old-<time>/     a step's previous run, kept while its rerun is not complete
      report.html            the pipeline's report (funnel and every step)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Names inside a shard directory that the hot paths (`amela status` over ten thousand shards, attempts.py) join to
# plain strings, without pathlib's cost; ShardPaths below names the same files.
SHARD_DONE = "DONE"
SHARD_STATS = "stats.json"
SHARD_ATTEMPTS = "attempts.jsonl"


def shard_dir_name(index: int) -> str:
    return f"{index:05d}"


@dataclass(frozen=True)
class ShardPaths:
    dir: Path

    input = property(lambda self: self.dir / "input.jsonl")
    output = property(lambda self: self.dir / "output.partial")
    failures = property(lambda self: self.dir / "failures.partial")
    stats = property(lambda self: self.dir / SHARD_STATS)
    done = property(lambda self: self.dir / SHARD_DONE)  # written last: outputs and stats exist
    lock = property(lambda self: self.dir / ".lock")
    attempt = property(lambda self: self.dir / "ATTEMPT")  # the latest start only (pid, host, SLURM job)
    attempts = property(lambda self: self.dir / SHARD_ATTEMPTS)  # every start and end (runner/attempts.py)
    stopped = property(lambda self: self.dir / "STOPPED_ITEMS.json")  # {item: times its SLURM task was stopped}

    def stream(self, name: str) -> Path:
        return self.dir / f"{name}.partial"

    def blob(self, name: str) -> Path:
        """A stage's binary side output, every item's bytes back to back (see runner/blobs.py)."""
        return self.dir / f"{name}.bin"

    def blob_index(self, name: str) -> Path:
        return self.dir / f"{name}.idx"


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
    jobs_lock = property(lambda self: self.root / ".slurm_jobs.lock")  # serialises writers of slurm_jobs.json
    status_cache = property(lambda self: self.root / ".status_cache.json")  # finished shards' figures (status)
    model_hashes = property(lambda self: self.root / ".report_sha256.json")  # the report's model checksums
    html_report = property(lambda self: self.root / "report.html")  # `amela report`
    submitit_dir = property(lambda self: self.root / "submitit")  # submitit's job files (amela run/amela.submit)
    submitit_step_dir = property(lambda self: self.logs / "submitit")  # ... of a pipeline step, with its other logs
    faulthandler_log = property(lambda self: self.logs / "faulthandler.log")  # local workers' hard-crash tracebacks
    merge_script = property(lambda self: self.slurm_scripts / "merge.sbatch")
    prepare_script = property(lambda self: self.slurm_scripts / "prepare.sbatch")
    # sbatch --output patterns (%j job id, %A array job id, %a task id)
    merge_log_pattern = property(lambda self: str(self.logs / "merge_%j.out"))
    prepare_log_pattern = property(lambda self: str(self.logs / "prepare_%j.out"))  # a pipeline step's filter+split
    pilot_sample = property(lambda self: self.root / "sample.jsonl")  # `amela plan`: the pilot's records
    pilot_sizing = property(lambda self: self.root / "sizing.json")  # `amela plan`: what it measured and advises

    def output(self, stage: str) -> Path:
        return self.root / f"{stage}.jsonl"

    def stream(self, stage: str, name: str) -> Path:
        return self.root / f"{stage}_{name}.jsonl"

    def report(self, name: str) -> Path:
        return self.root / name

    def shard(self, index: int) -> ShardPaths:
        return ShardPaths(self.shards_dir / shard_dir_name(index))

    def shard_log(self, index: int) -> Path:
        return self.logs / f"shard_{index:05d}.log"

    def array_script(self, stage: str) -> Path:
        return self.slurm_scripts / f"{stage}.sbatch"

    def slurm_log_pattern(self, stage: str) -> str:
        """sbatch's --output pattern: logs/<stage>_<jobid>_<taskid>.out (%A array job id, %a task id)."""
        return str(self.logs / f"{stage}_%A_%a.out")

    def slurm_log(self, stage: str, task: str) -> Path:
        """One array task's log, as slurm_log_pattern names it; `task`: "<jobid>_<taskid>"."""
        return self.logs / f"{stage}_{task}.out"


@dataclass(frozen=True)
class PipelinePaths:
    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root).absolute())

    spec = property(lambda self: self.root / "pipeline.yaml")
    jobs = property(lambda self: self.root / "pipeline_jobs.json")
    hashes = property(lambda self: self.root / ".hashes.json")
    lock = property(lambda self: self.root / ".pipeline.lock")
    html_report = property(lambda self: self.root / "report.html")  # the funnel and every step

    def step(self, name: str) -> RunPaths:
        return RunPaths(self.root / name)

    def old_step(self, name: str, stamp: str) -> Path:
        return self.root / f"{name}.old-{stamp}"

    def old_steps(self, name: str) -> list[Path]:
        return sorted(self.root.glob(f"{name}.old-*"))
