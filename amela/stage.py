"""The stage contract: what to do with one batch of records.

A stage never sees run-directory paths, shard ranks or SLURM. It declares its name, config dataclass and resources;
builds its models once per worker in `setup()`; and turns a batch of records into one outcome per record in
`process()`: an output record (dict), an `Output` (record plus extra-stream records), or an exception instance for an
item that failed. Most stages write only `process_one(record)`: the default `process()` calls it per record and turns
an `ItemError` into that item's failure; stages that batch (ASR, S2S) override `process()`. If `process()` raises, the
worker splits the batch to find the item responsible, so one bad item never costs the others. Worker figures go
through `stat_update()` (one counters API for every stage). Files a stage wants written go through `self.sink`, which
the runner roots.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import ConfigError, ItemError


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
    # Extra outputs, merged to RUN_DIR/<name>_<stream>.jsonl: each stream's name -> the config field that turns it on
    # (written when that field is truthy; None: always written). One declaration: output_streams() derives from it.
    streams: ClassVar[dict[str, str | None]] = {}
    # Binary side outputs, packed per shard (shards/NNNNN/<blob>.bin + .idx): name -> config field, as for streams.
    blobs: ClassVar[dict[str, str | None]] = {}
    # The module that fetches this stage's models (`fetch_models(names, cache_dir)`, `cache_report(names, cache_dir)`)
    # for `amela fetch-models <stage>`; None: the stage has no models to download.
    models_module: ClassVar[str | None] = None
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
        """The extra streams this config produces: those of `streams` whose config field is on."""
        return _active(self.streams, self.config)

    def output_blobs(self) -> tuple[str, ...]:
        """The blobs this config produces: those of `blobs` whose config field is on."""
        return _active(self.blobs, self.config)

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
        """One outcome per record: process_one() on each, an ItemError it raises becoming that item's failure (any
        other exception propagates: the worker then bisects the batch). Counts the worker's CPU time in `cpu_s`."""
        results: list = []
        with self.timer("cpu_s", time.process_time):
            for record in batch:
                try:
                    results.append(self.process_one(record))
                except ItemError as exc:
                    results.append(exc)
        return results

    def process_one(self, record: dict):
        """The outcome for one record: an output dict or an `Output`; raise ItemError for an item that failed."""
        raise NotImplementedError(f"{type(self).__name__}: define process_one(record) or process(batch)")

    def stat_update(self, label: str, value: float = 1) -> None:
        """Count a worker figure for the shard's stats. Name the unit in the label (`audio_s`, `frames`). A label
        ending in _max or _min keeps the extreme, _last the latest value; any other adds `value` (and the runner sums
        it over workers)."""
        counters = self.__dict__.setdefault("_counters", {})  # also for a subclass whose __init__ skips ours
        old = counters.get(label)
        if old is None or label.endswith("_last"):
            counters[label] = value
        elif label.endswith("_max"):
            counters[label] = max(old, value)
        elif label.endswith("_min"):
            counters[label] = min(old, value)
        else:
            counters[label] = old + value

    @contextmanager
    def timer(self, label: str, clock: Callable[[], float] = time.perf_counter):
        """`with self.timer("decode_s"):` adds the block's seconds (wall clock; time.process_time for CPU) to label."""
        start = clock()
        try:
            yield
        finally:
            self.stat_update(label, clock() - start)

    def stats(self) -> dict:
        """Worker-side figures for the shard's stats, cumulative since setup(): what stat_update() counted (seconds
        rounded to ms) and this worker's peak memory."""
        from .runtime import peak_rss_mb

        out = {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.get("_counters", {}).items()}
        out["peak_rss_mb_max"] = peak_rss_mb()
        return out

    def teardown(self) -> None:
        pass


# name -> "module:Class". Modules must import light (no torch/NeMo/fairseq at module level): --help loads them.
REGISTRY = {
    "vad": "amela.vad.stage:VadStage",
    "asr": "amela.asr.stage:AsrStage",
    "s2s": "amela.s2s.stage:S2SStage",
    "quality": "amela.quality.stage:QualityStage",
}


def _active(declared: dict[str, str | None], config) -> tuple[str, ...]:
    return tuple(name for name, flag in declared.items() if flag is None or getattr(config, flag))


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
