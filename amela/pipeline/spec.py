"""pipeline.yaml: steps, each an ordinary run, validated whole before anything runs.

    steps:
      - name: vad                 # run directory ROOT/vad
        stage: vad
        input: /abs/corpus        # a directory or manifest (absolute), or `STEP` / `STEP.STREAM` of a step above
        where: "duration >= 0.5"  # optional record filter (amela.filters)
        options: {segments: true} # the stage's options, as `amela run` takes them
        shards: 4                 # any run option: shards, workers, strategy, on_invalid, out_dir
        slurm: {partition: gpu}   # SLURM options of this step (plus setup_cmd, sbatch_arg lists)
    slurm: {account: lab}         # optional: SLURM defaults for every step

A step may read only steps above it, so the graph has no cycles by construction.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

from .. import config as cfg
from ..errors import ConfigError
from ..stage import Stage, load_stage

STEP_KEYS = ("name", "stage", "input", "where", "options", "slurm")
SLURM_LIST_KEYS = ("setup_cmd", "sbatch_arg")
TOP_KEYS = ("steps", "slurm")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class StepSpec:
    name: str
    stage: str
    input: str  # absolute path, or "STEP" / "STEP.STREAM"
    options: object  # the stage's config dataclass
    run: object  # RunOptions
    slurm: dict = field(default_factory=dict)  # SlurmOptions fields + setup_cmd/sbatch_arg, validated
    where: str | None = None
    upstream: str | None = None  # the step this one reads, if any
    stream: str | None = None  # which of its streams (None: its main manifest)

    def stage_class(self) -> type[Stage]:
        return load_stage(self.stage)


@dataclass(frozen=True)
class PipelineSpec:
    steps: tuple[StepSpec, ...]
    source: str

    def step(self, name: str) -> StepSpec:
        for s in self.steps:
            if s.name == name:
                return s
        raise ConfigError(f"{self.source}: no step named {name!r}; steps: {', '.join(s.name for s in self.steps)}")

    def downstream(self, name: str) -> list[str]:
        """Steps that read `name`, directly or not, in pipeline order."""
        out, reach = [], {name}
        for s in self.steps:
            if s.upstream in reach:
                reach.add(s.name)
                out.append(s.name)
        return out


def load(path: str) -> PipelineSpec:
    return parse(cfg.load_yaml(path), path)


def parse(data: dict, source: str) -> PipelineSpec:
    from ..runner import RunOptions

    _unknown(data, TOP_KEYS, source)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"{source}: `steps` must be a non-empty list of steps")
    defaults = data.get("slurm") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: `slurm` must be a mapping of SLURM options")
    steps: list[StepSpec] = []
    run_keys = tuple(f.name for f in dataclasses.fields(RunOptions))
    for n, raw in enumerate(raw_steps, 1):
        where = f"{source}: step {n}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping with name, stage, input, ...")
        _unknown(raw, STEP_KEYS + run_keys, where)
        for key in ("name", "stage", "input"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ConfigError(f"{where}: `{key}` is required (a string)")
        name = raw["name"]
        where = f"{source}: step {name!r}"
        if not NAME_RE.match(name):
            raise ConfigError(f"{where}: a step name is letters, digits, _ and - (it names a directory)")
        if any(s.name == name for s in steps):
            raise ConfigError(f"{where}: two steps have this name")
        stage_cls = load_stage(raw["stage"])
        options = cfg.from_dict(stage_cls.config_cls, raw.get("options"), f"{where}: options")
        run = cfg.from_dict(RunOptions, {k: raw[k] for k in run_keys if k in raw}, f"{where}: run options")
        slurm = _slurm(defaults, raw.get("slurm") or {}, where)
        upstream, stream = _resolve_input(raw["input"], steps, where)
        if raw.get("where") is not None:
            _check_filter(raw["where"], where)
        steps.append(StepSpec(name, raw["stage"], raw["input"], options, run, slurm, raw.get("where"), upstream,
                              stream))
    return PipelineSpec(tuple(steps), source)


def _unknown(data: dict, valid: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def _slurm(defaults: dict, own: dict, where: str) -> dict:
    from ..executors.sbatch import SlurmOptions

    if not isinstance(own, dict):
        raise ConfigError(f"{where}: `slurm` must be a mapping of SLURM options")
    merged = {**defaults, **own}
    lists = {}
    for key in SLURM_LIST_KEYS:
        value = merged.pop(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: slurm.{key} must be a list of strings")
        lists[key] = value
    if "dry_run" in merged:
        raise ConfigError(f"{where}: slurm.dry_run is not a step option; use `amela pipeline run --dry-run`")
    try:
        opts = cfg.from_dict(SlurmOptions, merged, f"{where}: slurm")
    except ConfigError as exc:  # name the list keys too, since they are valid here
        raise ConfigError(f"{exc} (also: {', '.join(SLURM_LIST_KEYS)})") from None
    return {**cfg.to_dict(opts), **lists}


def _resolve_input(text: str, above: list[StepSpec], where: str) -> tuple[str | None, str | None]:
    if os.path.isabs(text):
        return None, None
    name, _, stream = text.partition(".")
    up = next((s for s in above if s.name == name), None)
    if up is None:
        later = "" if not NAME_RE.match(name) else " (a step may only read steps above it)"
        raise ConfigError(f"{where}: input {text!r} is neither an absolute path nor a step above this one{later}; "
                          f"steps above: {', '.join(s.name for s in above) or 'none'}")
    if not stream:
        return name, None
    stage = up.stage_class()(up.options)
    if stream not in stage.streams:
        raise ConfigError(f"{where}: step {name!r} ({up.stage}) has no stream {stream!r}; "
                          f"its streams: {', '.join(stage.streams) or 'none'}")
    if stream not in stage.output_streams():
        raise ConfigError(f"{where}: step {name!r} does not write its {stream!r} stream with its options "
                          f"(for vad segments: options: {{segments: true}})")
    return name, stream


def _check_filter(text, where: str) -> None:
    from ..filters import compile_filter

    if not isinstance(text, str):
        raise ConfigError(f"{where}: `where` must be a string expression")
    try:
        compile_filter(text)
    except ConfigError as exc:
        raise ConfigError(f"{where}: where: {exc}") from None
