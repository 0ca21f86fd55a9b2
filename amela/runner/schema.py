"""plan.json and a shard's stats.json, typed: every reader goes through these, not through string keys.

The files on disk keep their keys and order (runs made before still load, and `from_dict(d).to_dict() == d`). A key
this version does not know (a newer AMELA wrote the file, or a user annotated it) is kept in `extra`, ignored, and
written back unchanged. A missing key that readers need (every AMELA has written it) means the file is not one a run
made: a ConfigError naming the file and the key; keys added later (plan `input_fingerprint`, `splits`) or never read by
merge and status (shard `worker_crashes`, `stage`, `host`) may be absent, and stay absent when written back.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from ..errors import ConfigError
from ..manifest import loads


def _split_keys(cls, data, source: str, optional: tuple[str, ...]) -> tuple[dict, dict]:
    """(known, extra) of a JSON object; a ConfigError for anything that is not a complete one."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, found {type(data).__name__}")
    names = [f.name for f in fields(cls) if f.name != "extra"]
    missing = [k for k in names if k not in data and k not in optional]
    if missing:
        raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}: not a file an AMELA run wrote (damaged or "
                          "edited?); start a new run directory")
    return {k: data[k] for k in names if k in data}, {k: v for k, v in data.items() if k not in names}


def _read(path: str | os.PathLike) -> object:
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); the file is damaged: start a new run directory") from None


@dataclass(frozen=True)
class ShardSplit:
    """One entry of plan.json `splits`: `moved` records of shard `shard` went to the new shard `into` at `at`."""

    shard: int
    into: int
    moved: int
    at: float

    def to_dict(self) -> dict:
        return {"shard": self.shard, "into": self.into, "moved": self.moved, "at": self.at}

    @classmethod
    def from_dict(cls, data: dict, source: str = "a shard split") -> ShardSplit:
        known, _ = _split_keys(cls, data, source, ())
        return cls(**known)


@dataclass(frozen=True)
class Plan:
    """What plan.json holds: the split of the input into shards, made once by `prepare` (runner/plan.py)."""

    version: int
    stage: str  # as given: a registered name or an import path (module:Class)
    input: str
    num_shards: int
    strategy: str
    items: int  # valid input records
    rejected: int  # invalid input lines skipped (--on-invalid skip)
    audio_seconds: float
    shard_items: list[int]
    shard_seconds: list[float]
    created_at: float
    input_fingerprint: dict | None = None  # None: a run from before input fingerprints
    splits: tuple[ShardSplit, ...] = ()  # resubmissions that split a shard (runner/split.py)
    extra: dict = field(default_factory=dict)  # keys this version does not know, written back as they were

    def to_dict(self) -> dict:
        out: dict = {"version": self.version, "stage": self.stage, "input": self.input, "num_shards": self.num_shards}
        if self.input_fingerprint is not None:
            out["input_fingerprint"] = self.input_fingerprint
        out.update({"strategy": self.strategy, "items": self.items, "rejected": self.rejected,
                    "audio_seconds": self.audio_seconds, "shard_items": self.shard_items,
                    "shard_seconds": self.shard_seconds, "created_at": self.created_at})
        if self.splits:
            out["splits"] = [s.to_dict() for s in self.splits]
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "a plan") -> Plan:
        known, extra = _split_keys(cls, data, source, ("input_fingerprint", "splits"))
        splits = tuple(ShardSplit.from_dict(s, f"{source}: splits") for s in known.pop("splits", ()))
        return cls(**known, splits=splits, extra=extra)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Plan:
        return cls.from_dict(_read(path), str(path))


OPTIONAL_STATS = ("worker_crashes", "stage", "host")


@dataclass(frozen=True)
class ShardStats:
    """What shards/NNNNN/stats.json holds: written once when the shard is done (runner/shard.py), read by merge,
    status, the report and the planner."""

    shard: int
    items: int
    ok: int
    failed: int
    audio_seconds: float  # of the items that succeeded, as the stage found them
    started_at: float
    finished_at: float
    wall_seconds: float
    # Always written by a run; None only in a file without them (merge and status have never needed them).
    worker_crashes: int | None = None
    stage: dict | None = None  # the stage's own counters, merged over its workers (merge_worker_stats)
    host: str | None = None
    extra: dict = field(default_factory=dict)  # keys this version does not know, written back as they were

    def to_dict(self) -> dict:
        out = {"shard": self.shard, "items": self.items, "ok": self.ok, "failed": self.failed,
               "audio_seconds": self.audio_seconds, "started_at": self.started_at,
               "finished_at": self.finished_at, "wall_seconds": self.wall_seconds}
        out.update({k: getattr(self, k) for k in OPTIONAL_STATS if getattr(self, k) is not None})
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str = "shard stats") -> ShardStats:
        known, extra = _split_keys(cls, data, source, OPTIONAL_STATS)
        return cls(**known, extra=extra)

    @classmethod
    def read(cls, path: str | os.PathLike) -> ShardStats:
        return cls.from_dict(_read(path), str(path))
