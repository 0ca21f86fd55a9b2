"""The shard writer on its own (no CLI, no subprocess): resuming a shard whose output file ends in a torn line, as a
crash mid-write leaves it. The CLI-level versions (a real signal, `amela run` twice) are in test_interrupt.py."""
import json

import pytest

from amela.executors.pool import make_pool
from amela.executors.worker import WorkerSpec
from amela.paths import RunPaths
from amela.runner import RunOptions, RunSpec, prepare, run_shard, shardio
from tests.support.helpers import STAGE, make_manifest
from tests.support.stages import EchoConfig, EchoStage

N = 10
WRITTEN = 4  # items 0-3 have complete output lines; item 4's line is torn


@pytest.mark.parametrize("torn", ["no newline", "cut JSON before a newline"])
def test_resume_keeps_every_complete_record_once_and_redoes_only_the_torn_one(tmp_path, torn):
    manifest = make_manifest(tmp_path / "m.jsonl", N)
    paths = RunPaths(tmp_path / "run")
    config = EchoConfig()
    prepare(paths, RunSpec(STAGE, str(manifest), RunOptions(shards=1, workers=0), config))
    sp = paths.shard(0)
    inputs = [json.loads(body) for _, body in shardio.iter_lines(sp.input)]
    assert len(inputs) == N
    # The complete lines carry a mark the stage never writes: a line that is kept (not redone) still has it.
    kept = b"".join(shardio.encode(i, {**inputs[i], "echo": "BEFORE THE CRASH"}) for i in range(WRITTEN))
    line = shardio.encode(WRITTEN, {**inputs[WRITTEN], "echo": "BEFORE THE CRASH"})
    tail = line[:len(line) // 2] + (b"" if torn == "no newline" else b"\n")
    sp.output.parent.mkdir(parents=True, exist_ok=True)
    sp.output.write_bytes(kept + tail)

    with make_pool(WorkerSpec(STAGE, {}), 0) as pool:
        run_shard(paths, 0, EchoStage(config), pool, show_progress=False)

    assert f"dropped a torn last line ({len(tail)} bytes)" in paths.shard_log(0).read_text()
    rows = [(i, json.loads(body)) for i, body in shardio.iter_lines(sp.output)]
    assert [i for i, _ in rows] == list(range(N))  # every item exactly once, in input order
    assert sp.output.read_bytes().startswith(kept)  # the complete lines byte for byte
    assert [i for i, r in rows if r["echo"] == "BEFORE THE CRASH"] == list(range(WRITTEN))  # kept, not redone
    assert rows[WRITTEN][1] == {**inputs[WRITTEN], "echo": f"A{WRITTEN}.WAV"}  # the torn item was redone
    assert sp.done.exists() and json.loads(sp.stats.read_bytes())["ok"] == N
