"""What each step of a pipeline must do now (skip, resume, run, rerun) and how a step is prepared.

A step is prepared by resolving its input (a path, or an upstream step's merged output or stream), applying its
filter through the runner's filter step, and preparing an ordinary run in ROOT/<step>/. Its fingerprint goes to
ROOT/<step>/step.json before anything else, so a later run can tell "the same step, unfinished" (resume) from "a
changed step" (rerun into a fresh directory; the old one is kept, renamed, until the new one completes).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass

from ..errors import ConfigError, ManifestError
from ..manifest import dumps, loads, write_bytes_atomic
from ..paths import PipelinePaths, RunPaths
from ..runner.schema import Plan
from .fingerprint import HashCache, input_fingerprint, step_fingerprint
from .spec import PipelineSpec, StepSpec

logger = logging.getLogger("amela.pipeline")
SKIP, RESUME, RUN, RERUN = "skip", "resume", "run", "rerun"


@dataclass
class Decision:
    step: StepSpec
    action: str  # skip | resume | run | rerun
    why: str
    fingerprint: str
    parts: dict


def stage_name(step: StepSpec) -> str:
    return step.stage_class().name


def input_path(pp: PipelinePaths, spec: PipelineSpec, step: StepSpec) -> str:
    """Where the step's records come from: its absolute path, or the upstream step's merged manifest or stream."""
    if step.upstream is None:
        return step.input
    up = spec.step(step.upstream)
    paths = pp.step(up.name)
    name = stage_name(up)
    return str(paths.stream(name, step.stream) if step.stream else paths.output(name))


def step_complete(paths: RunPaths) -> bool:
    """Every shard done and merged: the step's outputs are final."""
    from ..runner import run_status

    if not paths.plan.exists():
        return False
    st = run_status(paths)
    return st.complete and st.merged and paths.stats.exists()


def read_record(paths: RunPaths) -> dict | None:
    if not paths.step_record.exists():
        return None
    return loads(paths.step_record.read_bytes())


def decide(pp: PipelinePaths, spec: PipelineSpec, save_cache: bool = True) -> list[Decision]:
    """The plan for every step, top to bottom; reads the run directories, writes nothing but the hash cache
    (and not even that with save_cache=False, for --dry-run)."""
    cache = HashCache(str(pp.hashes) if pp.root.exists() else None)
    out: list[Decision] = []
    fps: dict[str, str] = {}
    actions: dict[str, str] = {}
    for step in spec.steps:
        if step.upstream:
            input_fp: dict | str = {"step": step.upstream, "stream": step.stream, "fingerprint": fps[step.upstream]}
        else:
            input_fp = input_fingerprint(step.input)
            if input_fp["kind"] == "missing":
                raise ManifestError(f"{spec.source}: step {step.name!r}: input {step.input} does not exist")
        fp, parts = step_fingerprint(step, input_fp, cache)
        fps[step.name] = fp
        paths = pp.step(step.name)
        old = read_record(paths)
        if old is None and not paths.root.exists():
            d = Decision(step, RUN, "new step", fp, parts)
        elif old is None:
            d = Decision(step, RERUN, f"{paths.root} exists but was not made by this pipeline (no step.json)", fp,
                         parts)
        elif old["fingerprint"] != fp:
            d = Decision(step, RERUN, "changed: " + _changes(old.get("parts", {}), parts, actions), fp, parts)
        elif step_complete(paths):
            d = Decision(step, SKIP, "unchanged and complete", fp, parts)
        else:
            d = Decision(step, RESUME, "unchanged, not finished: " + _progress(paths), fp, parts)
        actions[step.name] = d.action
        out.append(d)
    if save_cache and pp.root.exists():
        cache.save()
    return out


def _changes(old: dict, new: dict, actions: dict[str, str]) -> str:
    what = []
    if old.get("stage") != new["stage"]:
        what.append(f"stage {old.get('stage')} -> {new['stage']}")
    for section in ("options", "run"):
        a, b = old.get(section, {}), new[section]
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        what += [f"{section}.{k}: {json.dumps(a.get(k))} -> {json.dumps(b.get(k))}" for k in keys]
    if old.get("where") != new["where"]:
        what.append(f"where: {old.get('where')!r} -> {new['where']!r}")
    if old.get("models") != new["models"]:
        what.append("model file content (sha256) " + ", ".join(sorted(new["models"])))
    if old.get("input") != new["input"]:
        src = new["input"]
        if isinstance(src, dict) and "step" in src:
            what.append(f"its input step {src['step']!r} " + ("reruns" if actions.get(src["step"]) == RERUN
                                                              else "changed"))
        else:
            what.append(f"input {src.get('path')} changed on disk")
    return "; ".join(what) or "fingerprint differs"


def _progress(paths: RunPaths) -> str:
    if not paths.plan.exists():
        return "not prepared yet"
    from ..runner import run_status

    st = run_status(paths)
    done = len(st.indices("done"))
    return f"{done}/{len(st.shards)} shard(s) done" + ("" if not st.complete else ", not merged")


def set_aside(pp: PipelinePaths, name: str) -> str | None:
    """Rename a changed step's directory out of the way (kept until its rerun completes); returns the new name."""
    paths = pp.step(name)
    if not paths.root.exists():
        return None
    target = pp.old_step(name, time.strftime("%Y%m%d-%H%M%S"))
    paths.root.rename(target)
    logger.info("step %s changed: its previous run is kept as %s until the new one completes", name, target.name)
    return str(target)


def drop_old(pp: PipelinePaths, name: str) -> None:
    """The step's rerun completed: the previous runs go."""
    for old in pp.old_steps(name):
        shutil.rmtree(old, ignore_errors=True)
        logger.info("removed %s (superseded by the completed rerun of %s)", old.name, name)


def begin(pp: PipelinePaths, d: Decision) -> RunPaths:
    """Make the step's directory and record its fingerprint (before any work, so a crash resumes, not reruns)."""
    paths = pp.step(d.step.name)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(exist_ok=True)
    if read_record(paths) is None:
        write_bytes_atomic(paths.step_record, dumps({"step": d.step.name, "fingerprint": d.fingerprint,
                                                     "parts": d.parts, "created_at": time.time()}))
    return paths


def run_spec(pp: PipelinePaths, spec: PipelineSpec, step: StepSpec):
    """The ordinary run this step is: its input is the filter's kept records when it has a `where:`."""
    from ..runner import RunSpec

    paths = pp.step(step.name)
    source = str(paths.filter_kept) if step.where else input_path(pp, spec, step)
    return RunSpec(step.stage, source, step.run, step.options)


def prepare_step(pp: PipelinePaths, spec: PipelineSpec, step: StepSpec) -> Plan:
    """Filter (once) and prepare the step's run directory; returns its plan. Idempotent."""
    from ..filters import compile_filter
    from ..runner import load_plan, prepare
    from ..runner.filter import filter_manifest

    paths = pp.step(step.name)
    if paths.plan.exists():
        return load_plan(paths)
    source = input_path(pp, spec, step)
    if step.upstream and not _exists(source):
        raise ConfigError(f"step {step.name!r}: its input {source} does not exist: step {step.upstream!r} has not "
                          f"completed (amela pipeline status {pp.root})")
    if step.where:
        counts = filter_manifest(source, paths.filter_kept, paths.filtered, compile_filter(step.where).reason,
                                 step.where)
        rec = read_record(paths) or {}
        write_bytes_atomic(paths.step_record, dumps({**rec, "filter": {"where": step.where, **counts.to_dict()}}))
        logger.info("step %s: filter kept %d record(s), dropped %d (reasons in %s)", step.name, counts.kept,
                    counts.dropped, paths.filtered)
        if not counts.kept:
            raise ManifestError(f"step {step.name!r}: the filter {step.where!r} kept no record of {source} "
                                f"({counts.dropped} dropped, reasons in {paths.filtered})")
    return prepare(paths, run_spec(pp, spec, step))


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)
