"""plan.json and a shard's stats.json read through Plan / ShardStats: the files keep their keys and order, runs made
before still load, unknown keys are kept, damaged files are named."""
import json

import pytest

from amela.errors import ConfigError
from amela.executors.local import run_local
from amela.paths import RunPaths
from amela.runner import RunOptions, RunSpec, load_plan, merge, prepare, run_status
from amela.runner.schema import Plan, ShardSplit, ShardStats
from amela.runner.split import split_shard
from amela.stage import load_stage
from tests.support.helpers import STAGE, make_manifest


def _run(tmp_path, n=7, shards=2):
    manifest = make_manifest(tmp_path / "in.jsonl", n)
    paths = RunPaths(tmp_path / "run")
    spec = RunSpec(STAGE, str(manifest), RunOptions(shards=shards, workers=0), load_stage(STAGE).config_cls())
    return paths, spec


def test_a_new_plan_and_shard_stats_round_trip_exactly(tmp_path):
    paths, spec = _run(tmp_path)

    plan = prepare(paths, spec)
    on_disk = json.loads(paths.plan.read_text())
    assert list(on_disk) == ["version", "stage", "input", "num_shards", "input_fingerprint", "strategy", "items",
                             "rejected", "audio_seconds", "shard_items", "shard_seconds", "created_at"]
    assert plan == load_plan(paths) and plan.to_dict() == on_disk and list(plan.to_dict()) == list(on_disk)
    assert (plan.num_shards, plan.items, sum(plan.shard_items), plan.splits) == (2, 7, 7, ())

    returned = run_local(paths, spec, 0, show_progress=False)
    for stats in returned:
        raw = json.loads(paths.shard(stats.shard).stats.read_text())
        assert list(raw) == ["shard", "items", "ok", "failed", "audio_seconds", "started_at", "finished_at",
                             "wall_seconds", "worker_crashes", "stage", "host"]
        assert ShardStats.read(paths.shard(stats.shard).stats) == stats and stats.to_dict() == raw
    merged = merge(paths, spec.stage_class()(spec.options))
    assert [list(s) for s in merged["per_shard"]] == [["shard", "items", "ok", "failed", "wall_seconds", "stage"]] * 2
    assert (merged["items"], merged["ok"], merged["shards"]) == (7, 7, 2)


def test_a_plan_from_before_fingerprints_and_splits_loads_and_is_written_back_as_it_was(tmp_path):
    old = {"version": 1, "stage": STAGE, "input": "/gone.jsonl", "num_shards": 2, "strategy": "round_robin",
           "items": 3, "rejected": 0, "audio_seconds": 6.0, "shard_items": [2, 1], "shard_seconds": [4.0, 2.0],
           "created_at": 1.5}
    plan = Plan.from_dict(old)
    assert plan.input_fingerprint is None and plan.splits == () and plan.extra == {}
    assert plan.to_dict() == old and list(plan.to_dict()) == list(old)


def test_unknown_keys_are_kept_and_do_not_stop_status_or_a_split(tmp_path):
    paths, spec = _run(tmp_path, n=6, shards=1)

    prepare(paths, spec)
    raw = json.loads(paths.plan.read_text())
    raw["note"] = {"by": "a newer AMELA"}
    paths.plan.write_text(json.dumps(raw))
    assert load_plan(paths).extra == {"note": {"by": "a newer AMELA"}}
    assert run_status(paths).items == 6
    assert split_shard(paths, 0) == 1  # plan.json rewritten through Plan.to_dict
    after = json.loads(paths.plan.read_text())
    assert after["note"] == {"by": "a newer AMELA"} and after["num_shards"] == 2
    assert after["splits"] == [{"shard": 0, "into": 1, "moved": 3, "at": after["splits"][0]["at"]}]
    assert load_plan(paths).splits == (ShardSplit(0, 1, 3, after["splits"][0]["at"]),)
    stats = {"shard": 0, "items": 1, "ok": 1, "failed": 0, "audio_seconds": 1.0, "started_at": 1.0,
             "finished_at": 2.0, "wall_seconds": 1.0, "worker_crashes": 0, "stage": {}, "host": "h", "gpu": "x"}
    assert ShardStats.from_dict(stats).extra == {"gpu": "x"} and ShardStats.from_dict(stats).to_dict() == stats
    bare = {k: stats[k] for k in ("shard", "items", "ok", "failed", "audio_seconds", "started_at", "finished_at",
                                  "wall_seconds")}  # a hand-made file (tests/runner/test_scale.py writes these)
    assert ShardStats.from_dict(bare).stage is None and ShardStats.from_dict(bare).to_dict() == bare


def test_a_damaged_plan_or_stats_file_is_named_with_what_is_wrong(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"version": 1, "stage": STAGE, "input": "x", "num_shards": 1}))
    with pytest.raises(ConfigError, match=r"plan\.json: missing key\(s\) strategy, items, rejected"):
        Plan.read(path)
    path.write_text('{"version": 1, "sta')
    with pytest.raises(ConfigError, match=r"plan\.json: not valid JSON"):
        Plan.read(path)
    stats = tmp_path / "stats.json"
    stats.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"stats\.json: expected a JSON object, found list"):
        ShardStats.read(stats)
