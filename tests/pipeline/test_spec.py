"""pipeline.yaml is validated whole before anything runs: unknown keys, inputs, streams, filters, options."""
from __future__ import annotations

import pytest

from amela.errors import ConfigError
from amela.pipeline.spec import parse


def step(**kw):
    return {"name": "vad", "stage": "vad", "input": "/corpus", **kw}


@pytest.mark.parametrize("doc,fragment", [
    ({}, "`steps` must be a non-empty list"),
    ({"steps": [step()], "stpes": 1}, "unknown key(s) stpes; valid: steps, slurm"),
    ({"steps": [step(shard=3)]}, "unknown key(s) shard; valid: name, stage, input, where, options, slurm, shards"),
    ({"steps": [step(options={"treshold": 0.4})]}, "unknown option(s) treshold for VadConfig; valid:"),
    ({"steps": [step(shards=0)]}, "--shards must be >= 1"),
    ({"steps": [step(slurm={"partiton": "gpu"})]}, "unknown option(s) partiton for SlurmOptions"),
    ({"steps": [step(input="corpus")]}, "neither an absolute path nor a step above"),
    ({"steps": [step(), step(name="asr", input="vad.segments")]}, "does not write its 'segments' stream"),
    ({"steps": [step(), step(name="asr", input="vad.words")]}, "has no stream 'words'; its streams: segments"),
    ({"steps": [step(input="asr"), step(name="asr", input="/x")]}, "a step may only read steps above it"),
    ({"steps": [step(), step()]}, "two steps have this name"),
    ({"steps": [step(name="a/b")]}, "a step name is letters"),
    ({"steps": [step(where="duration >")]}, "where: filter 'duration >': syntax error"),
    ({"steps": [step(stage="nope")]}, "unknown stage 'nope'"),
])
def test_invalid(doc, fragment):
    with pytest.raises(ConfigError) as exc:
        parse(doc, "p.yaml")
    assert fragment in str(exc.value)


def test_valid_chain_resolves_inputs_and_slurm_defaults():
    spec = parse({"slurm": {"account": "lab", "setup_cmd": "module load cuda"}, "steps": [
        step(options={"segments": True}, shards=3),
        step(name="asr2", input="vad.segments", where="duration > 1", slurm={"partition": "gpu"}),
        step(name="after", input="asr2"),
    ]}, "p.yaml")
    vad, asr, after = spec.steps
    assert (vad.upstream, asr.upstream, asr.stream, after.upstream) == (None, "vad", "segments", "asr2")
    assert vad.run.shards == 3 and asr.slurm["partition"] == "gpu" and asr.slurm["account"] == "lab"
    assert asr.slurm["setup_cmd"] == ["module load cuda"]
    assert spec.downstream("vad") == ["asr2", "after"]
