"""The pilot: pick a duration-stratified sample of the input, run it as an ordinary run directory (locally, or as one
SLURM task), and measure throughput and start-up cost. Also reads the partition's limits from scontrol."""
from __future__ import annotations

import argparse
import logging
import math
import shutil
import socket
import time
from array import array
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from ..errors import AmelaError, ConfigError, ManifestError
from ..manifest import dumps, loads, scan_directory, validate_record, write_bytes_atomic
from ..paths import RunPaths
from ..runner import RunSpec, locked, merge, prepare
from ..runner.schema import ShardStats
from .sizing import Limits, Measured, stratified_sample

logger = logging.getLogger("amela.plan")
MARKER = "pilot.json"  # what makes a directory a pilot (and safe for `amela plan` to replace)


@dataclass
class Corpus:
    """The input, reduced to what sizing needs: one duration per valid record (8 bytes each, never the records)."""

    source: str
    durations: array  # valid records, input order
    lines: array | None  # their line numbers in a manifest (None for a directory)
    invalid: int
    records: list | None = None  # a directory's scanned records (small: one per file)

    @property
    def audio_s(self) -> float:
        return math.fsum(self.durations)


def read_corpus(spec: RunSpec) -> Corpus:
    """Durations of every valid record of spec.input (a manifest is streamed, a directory scanned)."""
    path = Path(spec.input)
    if path.is_dir():
        if not spec.stage_class().accepts_directory:
            raise ConfigError(f"{path}: stage {spec.stage_class().name} needs a manifest, not a directory")
        records, problems = scan_directory(path)
        return Corpus(str(path), array("d", (r["duration"] for r in records)), None, len(problems), records)
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest or directory")
    durations, lines, invalid = array("d"), array("q"), 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                record = loads(raw)
            except orjson.JSONDecodeError:
                invalid += 1
                continue
            if validate_record(record) is not None:
                invalid += 1
                continue
            durations.append(record["duration"])
            lines.append(lineno)
    if invalid:
        logger.warning("%s: %d invalid line(s) left out of the estimate; `amela validate %s` lists them", path,
                       invalid, path)
    if not durations:
        raise ManifestError(f"{path}: no valid records to plan for")
    return Corpus(str(path), durations, lines, invalid)


def write_sample(corpus: Corpus, k: int, target: Path) -> list[int]:
    """The pilot manifest: a duration-stratified sample of `k` records (positions among the valid records)."""
    picks = stratified_sample(list(corpus.durations), k)
    if corpus.records is not None:
        chosen = [corpus.records[i] for i in picks]
    else:
        wanted = {corpus.lines[i] for i in picks}
        chosen = []
        with open(corpus.source, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if lineno in wanted:
                    chosen.append(loads(raw))
    write_bytes_atomic(target, b"".join(dumps(r) + b"\n" for r in chosen))
    return picks


def new_pilot_dir(root: Path) -> RunPaths:
    """A fresh pilot run directory; an earlier pilot there is replaced, anything else is refused."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise ConfigError(f"{root} exists and is not an `amela plan` pilot; choose another --pilot-dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    write_bytes_atomic(root / MARKER, dumps({"created_at": time.time()}))
    return RunPaths(root)


def pilot_spec(spec: RunSpec, manifest: Path) -> RunSpec:
    """The user's stage and run options over the sample, as one shard."""
    return replace(spec, input=str(manifest), run=replace(spec.run, shards=1, on_invalid="fail"))


def run_local(paths: RunPaths, spec: RunSpec) -> tuple[Measured, dict]:
    """Run the pilot here; start-up = the pool's start (spawn, imports, setup()) before the shard begins."""
    from ..executors.local import default_workers, run_shards

    with locked(paths.lock, f"pilot directory {paths.root}"):
        prepare(paths, spec)
        workers = default_workers(spec)
        t = time.monotonic()
        shard = run_shards(paths, spec, [0], workers, show_progress=False)[0]
        total_s = time.monotonic() - t
        stats = merge(paths, spec.stage_class()(spec.options))
    return _measured(shard, total_s, workers, f"this machine ({socket.gethostname()})"), stats


def run_sbatch(paths: RunPaths, spec: RunSpec, args: argparse.Namespace, timeout_s: float) -> tuple[Measured, dict]:
    """Run the pilot as one SLURM task (the array script of `amela run --backend sbatch`, one task, no merge job) and
    wait for it; start-up = the task's elapsed time (sacct, whole seconds) minus the shard's own wall time."""
    from ..executors import sbatch, slurm

    prepare(paths, spec)
    ns = argparse.Namespace(**vars(args))
    ns.merge_job, ns.dry_run, ns.array_parallelism, ns.max_array_size = False, False, None, None
    ns.time = args.pilot_time
    opts = sbatch.slurm_options(ns)
    job = sbatch.batch_job(paths, spec, opts)
    sbatch.launch(paths, spec, ns)
    job_id = slurm.load_submissions(paths)[-1].job_id
    logger.info("pilot submitted as SLURM job %s; waiting for it (logs: %s)", job_id, paths.logs)
    try:
        states = _wait(job_id, timeout_s)
    except BaseException:  # interrupted (or gave up): the pilot job must not run on unattended
        slurm.run_command(["scancel", job_id])
        logger.warning("pilot job %s cancelled", job_id)
        raise
    state = next(iter(states.values()))
    done = paths.shard(0).done.exists()
    if state != "COMPLETED" or not done:
        raise AmelaError(f"the pilot job {job_id} ended {state} without finishing its shard; read its log in "
                         f"{paths.logs}")
    elapsed_s, node = _sacct_elapsed(job_id)
    shard = ShardStats.read(paths.shard(0).stats)
    res = spec.stage_class().resources
    workers = spec.run.workers if spec.run.workers is not None else (
        res.default_workers or max(1, job.cpus_per_task // max(1, res.cpus_per_worker)))
    with locked(paths.lock, f"pilot directory {paths.root}"):
        stats = merge(paths, spec.stage_class()(spec.options))
    return _measured(shard, elapsed_s, max(1, workers), f"SLURM job {job_id} on {node}"), stats


def _wait(job_id: str, timeout_s: float) -> dict[str, str]:
    """The job's final state(s), polled from slurmctld/sacct every second."""
    from ..executors import slurm

    deadline, last_log = time.monotonic() + timeout_s, time.monotonic()
    while True:
        states = {k: s.state for k, s in slurm.query_states([job_id]).items() if k.startswith(job_id)}
        if states and all(s in slurm.FINAL_STATES for s in states.values()) and "[" not in "".join(states):
            return states
        if time.monotonic() > deadline:
            raise AmelaError(f"the pilot job {job_id} did not finish within {timeout_s:.0f} s ({states}); "
                             "raise --pilot-timeout-s, or ask for a partition with a shorter queue")
        if time.monotonic() - last_log > 60:
            logger.info("pilot job %s: %s", job_id, ", ".join(sorted(set(states.values()))) or "submitted")
            last_log = time.monotonic()
        time.sleep(1)


def _sacct_elapsed(job_id: str) -> tuple[float, str]:
    """(elapsed seconds, node) of a finished job; sacct lags slurmctld by a few seconds, so it is polled."""
    from ..executors import slurm

    for _ in range(60):
        proc = slurm.run_command(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State,ElapsedRaw,NodeList"])
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) == 4 and parts[1].startswith("COMPLETED") and parts[2].isdigit():
                return float(parts[2]), parts[3]
        time.sleep(1)
    raise AmelaError(f"sacct has no elapsed time for the pilot job {job_id}; is accounting (slurmdbd) running?")


def _measured(shard: ShardStats, total_s: float, workers: int, where: str) -> Measured:
    work_s = max(shard.wall_seconds, 1e-3)
    if not shard.audio_seconds:
        raise AmelaError("every pilot item failed, so there is no throughput to measure; see the pilot's "
                         "failures.jsonl")
    return Measured(audio_s=shard.audio_seconds, work_s=work_s, startup_s=max(0.0, total_s - work_s),
                    workers=workers, where=where)


# -- the cluster's limits -----------------------------------------------------------------------------------------------
def partition_limits(partition: str | None) -> Limits:
    """MaxTime of the partition (the default one when None) and MaxArraySize; no scontrol: no limits known."""
    from ..executors import slurm
    from ..executors.sbatch import time_seconds

    if not slurm.have("scontrol"):
        return Limits(partition)
    proc = slurm.run_command(["scontrol", "show", "partition", "-o"], timeout_s=30)
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[0]
        if partition:
            raise ConfigError(f"--partition {partition}: scontrol could not read the partitions ({why}); "
                              "plan on the cluster's login node")
        # SLURM's clients are installed but no controller answers (a workstation, a container): plan without limits
        return Limits(None, unchecked=f"scontrol could not reach a SLURM controller ({why})")
    parts = {}
    for line in proc.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "PartitionName" in fields:
            parts[fields["PartitionName"]] = fields
    name = partition or next((n for n, f in parts.items() if f.get("Default") == "YES"), None)
    if partition and name not in parts:
        raise ConfigError(f"partition {partition!r} not found; this cluster has: {', '.join(sorted(parts)) or 'none'}")
    if name not in parts:
        return Limits(None, unchecked="this cluster has no default partition; give --partition "
                                      f"({', '.join(sorted(parts)) or 'none'})")
    max_time = parts[name].get("MaxTime", "UNLIMITED")
    max_time_s = None if max_time in ("UNLIMITED", "INFINITE", "NONE") else time_seconds(max_time)
    return Limits(name, max_time_s, slurm.max_array_size())

