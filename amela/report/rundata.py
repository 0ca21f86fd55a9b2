"""Everything the report needs from a run directory except the output records: plan, config, stats, shards and their
attempts, failures grouped by reason. Reads files only (works on a copy of a run directory, on any machine)."""
from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..manifest import iter_jsonl, loads
from ..paths import RunPaths
from ..runner import attempts, shardio
from ..runner.schema import Plan, ShardStats

EXAMPLES_PER_REASON = 3
MAX_REASONS = 40  # beyond this, reasons are folded into one "other reasons" row (counts stay exact)
STRAGGLER_FACTOR = 2.0  # a finished shard slower than this many times the median is flagged


@dataclass
class Attempt:
    start: float
    end: float | None  # None: still running
    outcome: str  # done | interrupted | error | killed (no end line) | running
    detail: str = ""
    host: str = ""
    slurm_job: str | None = None
    requeue: int = 0  # SLURM_RESTART_COUNT: > 0 means SLURM requeued the task (preemption, node failure)


@dataclass
class Shard:
    index: int
    items: int
    state: str  # done | running | failed | missing
    ok: int = 0
    failed: int = 0
    wall_s: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    straggler: bool = False

    @property
    def requeues(self) -> int:
        return max((a.requeue for a in self.attempts), default=0)


@dataclass
class Reason:
    error_type: str
    message: str  # normalised: paths, numbers and quoted names replaced
    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (file, original message)


@dataclass
class RunData:
    paths: RunPaths
    stage: str
    plan: Plan
    config_text: str
    config: dict
    stats: dict | None  # merged stats.json (None before the merge)
    shards: list[Shard]
    reasons: list[Reason]
    failed: int
    versions: dict
    version_mismatch: list[str]

    @property
    def options(self) -> dict:
        return self.config.get("options") or {}

    def outputs(self) -> Iterator[dict]:
        """The output records: the merged manifest when it is complete, else what the shards have written so far."""
        merged = self.paths.output(self.stage)
        if self.stats is not None and merged.exists():
            yield from iter_jsonl(merged)
            return
        for shard in self.shards:
            for _, body in shardio.iter_lines(self.paths.shard(shard.index).output):
                yield loads(body)


def load(run_dir) -> RunData:
    from ..runner.status import run_status

    paths = RunPaths(run_dir)
    if not paths.plan.exists():
        from ..errors import ConfigError

        raise ConfigError(f"{paths.root} is not a run directory (no plan.json): give the -o RUN_DIR of `amela run`")
    plan = Plan.read(paths.plan)
    config_text = paths.config.read_text() if paths.config.exists() else ""
    config = yaml.safe_load(config_text) or {} if config_text else {}
    status = run_status(paths)
    stats = loads(paths.stats.read_bytes()) if status.merged else None
    shards = [_shard(paths, s) for s in status.shards]
    _flag_stragglers(shards)
    reasons, failed = group_failures(_failures(paths, stats is not None, shards))
    versions, mismatch = _versions(paths, shards)
    return RunData(paths, status.stage, plan, config_text, config, stats, shards, reasons, failed, versions, mismatch)


# -- shards --------------------------------------------------------------------------------------------------------
def _shard(paths: RunPaths, st) -> Shard:
    sp = paths.shard(st.index)
    shard = Shard(st.index, st.items, st.state, st.ok, st.failed)
    if sp.done.exists() and sp.stats.exists():
        shard.wall_s = ShardStats.read(sp.stats).wall_seconds
    shard.attempts = _attempts(sp, st.state, paths.shard_log(st.index))
    return shard


def _attempts(sp, state: str, log: Path) -> list[Attempt]:
    rows = attempts.read(sp.dir)
    out: list[Attempt] = []
    for row in rows:
        if row.get("event") == "start":
            out.append(Attempt(row["t"], None, "killed", host=row.get("host", ""), slurm_job=row.get("slurm_job"),
                               requeue=int(row.get("slurm_restart_count") or 0)))
        elif row.get("event") == "end" and out and out[-1].end is None:
            out[-1].end, out[-1].outcome, out[-1].detail = row["t"], row["outcome"], row.get("detail", "")
    if not out and sp.attempt.exists():  # a run from before attempts.jsonl: the last attempt only
        a = loads(sp.attempt.read_bytes())
        out.append(Attempt(a["started_at"], None, "killed", host=a.get("host", ""), slurm_job=a.get("slurm_job")))
        if sp.done.exists() and sp.stats.exists():
            out[-1].end, out[-1].outcome = ShardStats.read(sp.stats).finished_at, "done"
    for i, a in enumerate(out):
        if a.end is not None:
            continue
        if i == len(out) - 1 and state == "running":
            a.end, a.outcome = time.time(), "running"
        elif i + 1 < len(out):  # killed: it ended at the latest when the next attempt started
            a.end = out[i + 1].start
        else:
            a.end = log.stat().st_mtime if log.exists() else a.start
            a.end = max(a.end, a.start)
    return out


def _flag_stragglers(shards: list[Shard]) -> None:
    walls = [s.wall_s for s in shards if s.wall_s]
    if len(walls) < 3:
        return
    median = statistics.median(walls)
    for s in shards:
        s.straggler = bool(s.wall_s and s.wall_s > STRAGGLER_FACTOR * median)


def _versions(paths: RunPaths, shards: list[Shard]) -> tuple[dict, list[str]]:
    """Software versions of the first attempt, and the names whose version differed between attempts."""
    seen: dict[str, set] = {}
    first: dict = {}
    for s in shards:
        for row in attempts.read(paths.shard(s.index).dir):
            v = row.get("versions")
            if v:
                first = first or v
                for k, x in v.items():
                    seen.setdefault(k, set()).add(x)
    return first, sorted(k for k, xs in seen.items() if len(xs) > 1)


# -- failures --------------------------------------------------------------------------------------------------------
def _failures(paths: RunPaths, merged: bool, shards: list[Shard]) -> Iterator[dict]:
    if merged and paths.failures.exists():
        yield from iter_jsonl(paths.failures)
        return
    for s in shards:
        for _, body in shardio.iter_lines(paths.shard(s.index).failures):
            yield loads(body)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[^\s:'\",()]+)+")
_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def normalise(message: str, path: str | None) -> str:
    """One reason for messages that differ only by file, number or quoted name."""
    if path:
        message = message.replace(path, "<file>")
    message = _PATH.sub("<path>", message)
    message = _QUOTED.sub("<name>", message)
    return _NUMBER.sub("<n>", message).strip()


def group_failures(failures) -> tuple[list[Reason], int]:
    groups: dict[tuple[str, str], Reason] = {}
    total = 0
    for f in failures:
        total += 1
        etype = f.get("error_type") or "Error"
        if f.get("signal"):
            etype = f"{etype} (signal {f['signal']})"
        key = (etype, normalise(str(f.get("message") or ""), f.get("audio_filepath")))
        reason = groups.get(key)
        if reason is None:
            reason = groups[key] = Reason(*key)
        reason.count += 1
        if len(reason.examples) < EXAMPLES_PER_REASON:
            reason.examples.append((str(f.get("audio_filepath") or ""), str(f.get("message") or "")))
    ranked = sorted(groups.values(), key=lambda r: -r.count)
    if len(ranked) > MAX_REASONS:
        rest = ranked[MAX_REASONS - 1:]
        other = Reason("(other reasons)", f"{len(rest)} further distinct reasons", sum(r.count for r in rest))
        other.examples = [e for r in rest[:EXAMPLES_PER_REASON] for e in r.examples[:1]]
        ranked = ranked[:MAX_REASONS - 1] + [other]
    return ranked, total
