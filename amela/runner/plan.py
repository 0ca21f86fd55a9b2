"""Preparing a run directory: read + validate the input once, split it into shards, save the resolved config.

The split is written down (one input file per shard), so rerunning single array tasks, even after the input manifest
changed on disk, keeps exactly the same split. Preparing is idempotent and safe to race (SLURM array tasks that all
call it): a lock serialises it, and the first one to finish wins; later callers only check they agree.
"""
from __future__ import annotations

import array
import heapq
import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import dump_yaml, from_dict, load_yaml, option, to_dict
from ..errors import ConfigError, ManifestError
from ..locks import Lock
from ..manifest import (
    ON_INVALID,
    _create_temp,
    atomic_open,
    dumps,
    is_audio_file,
    loads,
    record_key,
    scan_directory,
    scan_file,
    write_bytes_atomic,
)
from ..manifest_scan import ManifestScan, RecordList, RecordView, key_hash
from ..paths import RunPaths
from ..stage import Stage, load_stage
from . import fingerprint, shardio
from .schema import Plan

logger = logging.getLogger("amela.runner")
STRATEGIES = ("round_robin", "duration")
ITEM_TIMEOUT_FLOOR_S = 600.0  # model warm-up, a slow file system, a busy node: never kill for less
ITEM_TIMEOUT_SLACK = 20.0  # times the expected processing time of the audio
PROBLEMS_SHOWN = 1000  # invalid lines listed in the error when --on-invalid fail refuses the input
CHUNK = 1 << 16  # records handled per block when splitting (bounds the Python objects alive at once)
FLUSH_BYTES = 32 << 20  # shard lines buffered before they are appended to the shards' temporary files


@dataclass(frozen=True)
class RunOptions:
    shards: int = option(1, "number of shards (SLURM array tasks); the split is recorded in the run directory")
    workers: int | None = option(None, "worker processes per shard (0: in this process; default: from the stage's "
                                       "resources and the CPUs available)")
    strategy: str = option("round_robin", "how records are split into shards: round_robin by line (as the original "
                                          "AMELA scripts) or balanced by total duration", choices=STRATEGIES)
    on_invalid: str = option("fail", "invalid input lines: fail the run, or skip them into RUN_DIR/rejected.jsonl",
                             choices=ON_INVALID)
    out_dir: str | None = option(None, "where stages write produced files (default: RUN_DIR/files)")
    item_timeout_s: float | None = option(
        None, "kill a worker whose item runs longer than this (retried once, then recorded as timed out); default: "
              f"{ITEM_TIMEOUT_FLOOR_S:.0f} s + {ITEM_TIMEOUT_SLACK:.0f} x the item's duration / the stage's expected "
              "speed; 0: no watchdog")

    def check(self) -> None:
        if self.shards < 1:
            raise ConfigError(f"--shards must be >= 1, got {self.shards}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")
        if self.item_timeout_s is not None and not self.item_timeout_s >= 0:
            raise ConfigError(f"--item-timeout-s must be >= 0, got {self.item_timeout_s}")

    def timeout_s(self, stage_cls: type[Stage]):
        """records -> seconds a batch of them may run in a worker (None: no watchdog)."""
        if self.item_timeout_s == 0:
            return None
        fixed, speed = self.item_timeout_s, max(1e-6, stage_cls.expected_audio_s_per_s)

        def timeout_s(records: list[dict]) -> float:
            if fixed:
                return fixed * len(records)
            return ITEM_TIMEOUT_FLOOR_S + ITEM_TIMEOUT_SLACK * sum(r.get("duration") or 0 for r in records) / speed

        return timeout_s


# Options that may differ between the run that prepared a directory and a later one (they don't change results).
VOLATILE_RUN_OPTIONS = ("workers", "item_timeout_s")


@dataclass(frozen=True)
class RunSpec:
    """What config.yaml holds: enough to run any shard of the run from the directory alone."""

    stage: str
    input: str
    run: RunOptions
    options: object  # the stage's config dataclass

    def to_dict(self) -> dict:
        return {"stage": self.stage, "input": self.input, "run": to_dict(self.run), "options": to_dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict, source: str) -> RunSpec:
        unknown = set(data) - {"stage", "input", "run", "options"}
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; valid: stage, input, run, options")
        stage_cls = load_stage(data["stage"])
        return cls(data["stage"], data["input"], from_dict(RunOptions, data.get("run"), f"{source}: run"),
                   from_dict(stage_cls.config_cls, data.get("options"), f"{source}: options"))

    def stage_class(self) -> type[Stage]:
        return load_stage(self.stage)

    def sink_root(self, paths: RunPaths) -> str:
        return os.path.abspath(self.run.out_dir) if self.run.out_dir else str(paths.files)


def load_spec(paths: RunPaths) -> RunSpec:
    if not paths.plan.exists():
        raise ConfigError(f"{paths.root}: not a prepared run directory (no plan.json); start it with `amela run`")
    return RunSpec.from_dict(load_yaml(str(paths.config)), str(paths.config))


def load_plan(paths: RunPaths) -> Plan:
    if not paths.plan.exists():
        raise ConfigError(f"{paths.root}: not a prepared run directory (no plan.json); start it with `amela run`")
    return Plan.read(paths.plan)


def prepare(paths: RunPaths, spec: RunSpec, keep_plan: bool = False) -> Plan:
    """Create the run directory's plan (or check an existing one agrees with `spec`, and that the input did not change
    since, unless `keep_plan`); returns the plan."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with _waiting(Lock(paths.prepare_lock, f"preparing {paths.root}")):
        if paths.plan.exists():
            _check_same(load_spec(paths), spec, paths)
            plan = load_plan(paths)
            if not keep_plan:
                check_input_unchanged(paths, plan)
            return plan
        return _create(paths, spec)


def check_input_unchanged(paths: RunPaths, plan: Plan) -> None:
    """Refuse (ConfigError: exit 2) to go on with a plan made from an input that changed since."""
    what = input_change(paths, plan)
    if what:
        raise ConfigError(f"{plan.input} {what} since {paths.root} was prepared ({plan.items} item(s)). Either "
                          "run into a new run directory (-o NEW_DIR) to process the input as it is now, or add "
                          "--keep-plan to resume the recorded plan as it is (the changes are then ignored)")


def input_change(paths: RunPaths, plan: Plan) -> str | None:
    """How the input differs from the one the plan was made from, or None."""
    recorded = plan.input_fingerprint
    if not recorded or not fingerprint.changed(plan.input, recorded):
        return None
    planned, lost = _planned_keys(paths, plan)
    if not Path(plan.input).exists():
        what = "no longer exists"
    else:
        added, removed = fingerprint.difference(plan.input, recorded["kind"], planned)
        what = f"changed: {added} record(s) added, {removed} removed" + (
            f" (compared with the {len(planned)} planned records still on disk)" if lost else "")
        if not added and not removed:
            what = "changed (the same records, with different content)"
    return what


def _planned_keys(paths: RunPaths, plan: Plan):
    """The keys of the planned records still on disk, and whether some shard inputs are gone. For a manifest,
    the sorted unique 64-bit hashes of the keys (8 bytes a record: a changed 10 M-line input is compared in
    bounded memory); for a scanned directory or file, the keys themselves (one per file)."""
    import numpy as np

    manifest = (plan.input_fingerprint or {}).get("kind") == "manifest"
    keys, hashes, lost = set(), array.array("q"), False
    for i in range(plan.num_shards):
        f = paths.shard(i).input
        if not f.exists():
            lost = True
            continue
        for _, body in shardio.iter_lines(f):
            if manifest:
                hashes.append(key_hash(record_key(loads(body))))
            else:
                keys.add(record_key(loads(body)))
    if manifest:
        return np.unique(np.frombuffer(hashes, dtype=np.int64) if hashes else np.zeros(0, np.int64)), lost
    return keys, lost


def ensure_shard(paths: RunPaths, spec: RunSpec, index: int) -> None:
    """Recreate shard `index`'s input when its directory was deleted: the split is a deterministic function of the
    input, which the fingerprint proves unchanged. Otherwise say exactly why it cannot be rebuilt."""
    if paths.shard(index).input.exists():
        return
    with _waiting(Lock(paths.prepare_lock, f"preparing {paths.root}")):
        if paths.shard(index).input.exists():
            return
        plan = load_plan(paths)
        gone = f"{paths.root}: the directory of shard {index} ({paths.shard(index).dir}) was deleted"
        if not plan.input_fingerprint:
            raise ConfigError(f"{gone}, and this run directory predates input fingerprints: it cannot be rebuilt "
                              "safely; start a new run directory")
        if any(index in (s.shard, s.into) for s in plan.splits):
            raise ConfigError(f"{gone}, and it cannot be rebuilt: a resubmission split that shard (plan.json "
                              "`splits`), so the input alone no longer says which records it holds. Start a new run "
                              "directory, or merge the rest with `amela merge --allow-partial`")
        what = input_change(paths, plan)
        if what:
            raise ConfigError(f"{gone}, and it cannot be rebuilt: {plan.input} {what} since the run was prepared. "
                              "Start a new run directory (-o NEW_DIR)")
        scan = scan_input(spec, spec.stage_class())
        items, _ = _write_shards(paths, scan, plan.num_shards, plan.strategy, only=index,
                                 expected=plan.shard_items[index])
        logger.warning("shard %d: its directory was deleted; rebuilt its input (%d items) from %s", index, items[index],
                       plan.input)


class _waiting:
    """Many array tasks prepare at once: each waits for the lock (the first creates, the others check)."""

    def __init__(self, lock: Lock):
        self.lock = lock

    def __enter__(self):
        return self.lock.acquire(wait=True)

    def __exit__(self, *_):
        self.lock.release()


def _check_same(old: RunSpec, new: RunSpec, paths: RunPaths) -> None:
    a, b = old.to_dict(), new.to_dict()
    for key in VOLATILE_RUN_OPTIONS:
        a["run"].pop(key, None)
        b["run"].pop(key, None)
    diffs = [f"{k}: {a[k]!r} -> {b[k]!r}" for k in ("stage", "input") if a[k] != b[k]]
    for section in ("run", "options"):
        diffs += [f"{section}.{k}: {a[section].get(k)!r} -> {b[section].get(k)!r}"
                  for k in sorted(set(a[section]) | set(b[section])) if a[section].get(k) != b[section].get(k)]
    if diffs:
        raise ConfigError(f"{paths.root} was prepared with a different configuration ({'; '.join(diffs)}); "
                          "use a new run directory, or the same options to resume")


def input_kind(path: Path) -> str:
    """"directory", "audio" (a single audio file) or "manifest"."""
    if path.is_dir():
        return "directory"
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest or directory")
    return "audio" if is_audio_file(path) else "manifest"


def read_input(spec: RunSpec, stage_cls: type[Stage]) -> tuple[list[dict], list]:
    """(records, problems) of the input, held in memory (prepare streams it instead: scan_input)."""
    scan = scan_input(spec, stage_cls)
    return list(scan.records()), list(scan.problems())


def scan_input(spec: RunSpec, stage_cls: type[Stage]) -> ManifestScan | RecordList:
    """The input, validated and de-duplicated, in bounded memory (a manifest is streamed, never held)."""
    path = Path(spec.input)
    kind = input_kind(path)
    if kind != "manifest" and not stage_cls.accepts_directory:
        raise ConfigError(f"{path}: stage {stage_cls.name} needs a manifest, not a {kind}")
    if kind == "directory":
        return RecordList(*scan_directory(path))
    if kind == "audio":
        return RecordList(*scan_file(path))
    return ManifestScan(str(path))


def _create(paths: RunPaths, spec: RunSpec) -> Plan:
    stage_cls = spec.stage_class()
    scan = scan_input(spec, stage_cls)
    # A scanned path that cannot be an input (odd name, FIFO, unreadable directory) is reported, never fatal: the
    # user did not write it down, and every other file deserves to be processed. Manifest lines follow --on-invalid.
    scanned = input_kind(Path(spec.input)) != "manifest"
    if scan.n_problems and spec.run.on_invalid == "fail" and not scanned:
        shown: list = list(itertools.islice(scan.problems(), PROBLEMS_SHOWN))
        if scan.n_problems > len(shown):
            shown.append(f"... and {scan.n_problems - len(shown)} more invalid line(s)")
        raise ManifestError(f"{spec.input}: {scan.n_problems} invalid line(s); fix them or use --on-invalid skip",
                            shown)
    if scan.n_problems:
        first = []
        with atomic_open(paths.rejected, "wb") as fh:  # streamed: a million bad lines are not held either
            for p in scan.problems():
                fh.write(dumps(p.to_dict()) + b"\n")
                if len(first) < 5:
                    first.append(p)
        logger.warning("skipped %d invalid %s into %s", scan.n_problems, "path(s)" if scanned else "line(s)",
                       paths.rejected)
        for p in first:
            logger.warning("  %s", p)
    if not scan.n_records:
        raise ManifestError(f"{spec.input}: no valid records to process")
    stage = stage_cls(spec.options)
    if type(stage).check_input is not Stage.check_input:  # the records are streamed to it, only if it looks
        stage.check_input(RecordView(scan))
    shard_items, shard_seconds = _write_shards(paths, scan, spec.run.shards, spec.run.strategy)
    paths.logs.mkdir(exist_ok=True)
    write_bytes_atomic(paths.config, dump_yaml(spec.to_dict()).encode())
    plan = Plan(version=1, stage=spec.stage, input=spec.input, num_shards=spec.run.shards,
                input_fingerprint=fingerprint.fingerprint(spec.input, input_kind(Path(spec.input))),
                strategy=spec.run.strategy, items=scan.n_records, rejected=scan.n_problems,
                audio_seconds=round(sum(shard_seconds), 3), shard_items=shard_items, shard_seconds=shard_seconds,
                created_at=time.time())
    write_bytes_atomic(paths.plan, dumps(plan.to_dict()))  # last: its presence means "prepared"
    logger.info("prepared %s: %d items (%.1f h of audio) in %d shard(s)", paths.root, scan.n_records,
                plan.audio_seconds / 3600, spec.run.shards)
    return plan


def _write_shards(paths: RunPaths, scan, shards: int, strategy: str, only: int | None = None,
                  expected: int | None = None) -> tuple[list[int], list[float]]:
    """Write every shard's input file (or only shard `only`) from the scan, streaming: lines are buffered per
    shard and appended to temporary files, which replace the shard inputs once all are complete (each fsynced).
    Returns (items, seconds) per shard. With `only`, refuses (ConfigError) when it does not get `expected` items."""
    targets = assign_by_duration(scan.durations, shards) if strategy == "duration" else None
    counts, sums = [0] * shards, [0.0] * shards
    bufs: list[list[bytes]] = [[] for _ in range(shards)]
    temps: dict[int, str] = {}

    def temp(s: int) -> str:
        if s not in temps:
            target = paths.shard(s).input
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temps[s] = _create_temp(target)
            os.close(fd)
        return temps[s]

    def flush() -> None:
        for s, buf in enumerate(bufs):
            if buf:
                with open(temp(s), "ab") as fh:
                    fh.write(b"".join(buf))
                buf.clear()

    try:
        bodies, size, n = scan.bodies(), 0, scan.n_records
        for start in range(0, n, CHUNK):
            durations = scan.durations[start:start + CHUNK].tolist()
            where = (targets[start:start + CHUNK].tolist() if targets is not None
                     else [i % shards for i in range(start, start + len(durations))])
            for i, d, s, body in zip(range(start, n), durations, where, bodies):  # bodies last: none is skipped
                counts[s] += 1
                sums[s] += d
                if only is None or s == only:
                    line = b"%d\t%s\n" % (i, body)
                    bufs[s].append(line)
                    size += len(line)
            if size > FLUSH_BYTES:
                flush()
                size = 0
        flush()
        if only is not None and counts[only] != expected:
            raise ConfigError(f"{paths.root}: the directory of shard {only} ({paths.shard(only).dir}) was deleted; "
                              f"rebuilding it from the input gives {counts[only]} item(s), the plan says {expected}: "
                              "start a new run directory")
        for s in [only] if only is not None else range(shards):
            with open(temp(s), "ab") as fh:
                os.fsync(fh.fileno())
        for s, tmp in sorted(temps.items()):
            os.replace(tmp, paths.shard(s).input)
        temps.clear()
    finally:
        for tmp in temps.values():
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return counts, [round(x, 3) for x in sums]


def assign_by_duration(durations, shards: int):
    """Shard of each record (numpy array): longest first onto the least-loaded shard (ties: lowest shard index;
    equal durations: input order). Deterministic; 2-4 bytes per record beside the durations."""
    import numpy as np

    n = durations.size
    out = np.empty(n, dtype=np.int16 if shards < 2**15 else np.int32)
    # Descending duration, ties in input order, without negating a copy: a stable ascending sort of the reversed
    # array, read backwards.
    rev_order = np.argsort(durations[::-1], kind="stable")
    heap = [(0.0, s) for s in range(shards)]
    replace = heapq.heapreplace
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        order = (n - 1) - rev_order[n - b:n - a][::-1]
        chosen = []
        for d in durations[order].tolist():
            load, s = heap[0]
            replace(heap, (load + d, s))
            chosen.append(s)
        out[order] = chosen
    return out


def split(records: list[dict], shards: int, strategy: str) -> list[list[int]]:
    """Deterministic split into `shards` lists of input positions (each ascending): what prepare writes."""
    import numpy as np

    if strategy == "round_robin":
        return [list(range(s, len(records), shards)) for s in range(shards)]
    where = assign_by_duration(np.array([r["duration"] for r in records], dtype=np.float64), shards)
    return [np.flatnonzero(where == s).tolist() for s in range(shards)]
