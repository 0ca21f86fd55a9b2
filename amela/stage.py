"""The stage contract: what to do with one batch of records.

A stage never sees run-directory paths, shard ranks or SLURM. It declares its name, config dataclass and resources;
builds its models once per worker in `setup()`; and turns a batch of records into one outcome per record in
`process()`: an output record (dict), an `Output` (record plus extra-stream records), or an exception instance for an
item that failed. If `process()` raises, the worker splits the batch to find the item responsible, so one bad item
never costs the others. Files a stage wants written go through `self.sink`, which the runner roots.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import ConfigError


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs."""

    cpus_per_worker: int = 1
    gpus_per_worker: int = 0
    # None: as many workers as CPUs allow. GPU stages default to one worker per GPU.
    default_workers: int | None = None


@dataclass
class Blob:
    """Binary side output of one record (e.g. frame probabilities). The runner packs the blobs of a shard into one
    file with an index (never one small file per record), atomically and resumably; `meta` goes into the index."""

    data: bytes
    meta: dict = field(default_factory=dict)


@dataclass
class Output:
    """A stage's result for one record, with records for its extra streams (e.g. one per speech segment) and
    binary blobs (see Blob)."""

    record: dict
    streams: dict[str, list[dict]] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)


class FileSink:
    """Where a stage writes files it produces (e.g. audio); the runner decides the root, writes are atomic."""

    def __init__(self, root: str):
        self.root = root

    def path(self, relpath: str) -> str:
        import os

        relpath = relpath.lstrip("/")
        full = os.path.normpath(os.path.join(self.root, relpath))
        if not full.startswith(os.path.normpath(self.root) + os.sep):
            raise ValueError(f"{relpath!r} escapes the output directory {self.root}")
        return full

    def write_bytes(self, relpath: str, data: bytes) -> str:
        from .manifest import write_bytes_atomic

        full = self.path(relpath)
        write_bytes_atomic(full, data)
        return full


class Stage:
    name: ClassVar[str] = ""
    config_cls: ClassVar[type]
    resources: ClassVar[Resources] = Resources()
    accepts_directory: ClassVar[bool] = False  # may INPUT be a directory of audio?
    streams: ClassVar[tuple[str, ...]] = ()  # extra outputs, merged to RUN_DIR/<name>_<stream>.jsonl
    blobs: ClassVar[tuple[str, ...]] = ()  # binary side outputs, packed per shard (shards/NNNNN/<blob>.bin + .idx)
    presets: ClassVar[dict[str, dict]] = {}  # --preset NAME: named option sets (under --config and flags)
    description: ClassVar[str] = ""
    # Audio seconds one worker gets through per second on the slowest hardware the stage is meant for: sizes the
    # default per-item watchdog (RunOptions.item_timeout_s), which allows many times this, with a generous floor.
    expected_audio_s_per_s: ClassVar[float] = 1.0

    def __init__(self, config, sink: FileSink | None = None):
        self.config = config
        self.sink = sink

    # -- in the main process (no models) --------------------------------------------------------------------------
    def check_input(self, records: list[dict]) -> None:
        """Raise ConfigError when the input as a whole cannot work with this config (checked before any work)."""

    def batches(self, records: list[dict]) -> list[list[int]]:
        """Group positions of `records` into batches for process(). Default: `batch_size` consecutive records."""
        size = max(1, int(getattr(self.config, "batch_size", 1) or 1))
        return [list(range(i, min(i + size, len(records)))) for i in range(0, len(records), size)]

    def reports(self, outputs: Callable[[], Iterator[dict]]) -> dict[str, bytes]:
        """Summary files for the run directory, from the merged output records (e.g. a CSV, a plot)."""
        return {}

    def output_streams(self) -> tuple[str, ...]:
        """The extra streams this config produces (a subset of `streams`; e.g. segments only with --segments)."""
        return self.streams

    def output_blobs(self) -> tuple[str, ...]:
        """The blobs this config produces (a subset of `blobs`)."""
        return self.blobs

    @classmethod
    def doctor(cls) -> list[tuple[str, bool, str]]:
        """Environment checks for `amela doctor`: (what, ok, detail or the fix when not ok). Must not load models."""
        return []

    def summary(self, outputs: Callable[[], Iterator[dict]]) -> dict:
        """A few stage-specific figures for stats.json and the printed summary."""
        return {}

    # -- in a worker -----------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Build models (once per worker). Heavy imports belong here, not at module level."""

    def process(self, batch: list[dict]) -> list:
        raise NotImplementedError

    def stats(self) -> dict:
        """Worker-side figures for the shard's stats, cumulative since setup(). Numbers are counters (summed over
        workers) unless the key ends in _max, _min (extremes) or _last (e.g. `batch_seconds_last`)."""
        return {}

    def teardown(self) -> None:
        pass


# name -> "module:Class". Modules must import light (no torch/NeMo/fairseq at module level): --help loads them.
REGISTRY = {
    "vad": "amela.vad.stage:VadStage",
    "asr": "amela.asr.stage:AsrStage",
    "s2s": "amela.s2s.stage:S2SStage",
    "quality": "amela.quality.stage:QualityStage",
}


def load_stage(spec: str) -> type[Stage]:
    """A stage class from a registry name or an import path `package.module:Class` (tests use the latter)."""
    target = REGISTRY.get(spec, spec)
    if ":" not in target:
        raise ConfigError(f"unknown stage {spec!r}; known: {', '.join(sorted(REGISTRY))} (or module:Class)")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"stage {spec!r}: cannot import {module_name}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise ConfigError(f"stage {spec!r}: {target} is not a Stage class")
    return cls


def stage_spec(cls: type[Stage]) -> str:
    """The string that load_stage() turns back into `cls` (recorded in config.yaml)."""
    for name, target in REGISTRY.items():
        if target == f"{cls.__module__}:{cls.__qualname__}":
            return name
    return f"{cls.__module__}:{cls.__qualname__}"
