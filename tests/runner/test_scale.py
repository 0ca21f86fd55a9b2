"""Bounded memory at corpus scale: prepare streams its input (memory does not grow with the number of records),
duplicates are found on hashes and confirmed exactly, the duration split is the greedy one, merge groups many
shards, and status stays cheap and readable at many shards."""
import heapq
import importlib
import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

import amela.manifest_scan as manifest_scan
from amela.manifest import read_manifest
from amela.manifest_scan import ManifestScan
from amela.paths import RunPaths
from amela.runner import RunOptions, RunSpec, load_spec, merge, prepare
from amela.runner.plan import split
from tests.support.helpers import STAGE, amela, make_manifest, read_jsonl

PREPARE_RSS = textwrap.dedent("""
    import json, resource, sys
    from amela.runner import RunOptions, RunSpec, prepare
    from amela.paths import RunPaths
    from amela.runner.plan import load_stage
    manifest, run, strategy = sys.argv[1:4]
    with open(manifest, "w") as fh:
        for i in range(int(sys.argv[4])):
            fh.write(json.dumps({"audio_filepath": f"/corpus/spk{i % 97}/rec{i // 20:07d}.flac", "offset": i % 20 * 5.0,
                                 "duration": 1.0 + i % 13 * 0.5, "text": "some words of a transcript"}) + "\\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stage = load_stage("tests.support.stages:EchoStage")
    plan = prepare(RunPaths(run), RunSpec("tests.support.stages:EchoStage", manifest,
                                          RunOptions(shards=16, strategy=strategy), stage.config_cls()))
    print(json.dumps({"items": plan.items, "before_kb": before,
                      "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
""")


def _prepare_rss(tmp_path, n, strategy):
    out = subprocess.run([sys.executable, "-c", PREPARE_RSS, str(tmp_path / f"m{n}.jsonl"), str(tmp_path / f"r{n}"),
                          strategy, str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("strategy", ["round_robin", "duration"])
def test_prepare_memory_does_not_grow_with_records(tmp_path, strategy):
    # Holding the records costs ~650 bytes each: 380,000 more would be ~250 MB. Streaming keeps ~20 bytes each
    # plus bounded write buffers (32 MB of lines), so the margin below is generous and still fails the old way.
    small, large = _prepare_rss(tmp_path, 20_000, strategy), _prepare_rss(tmp_path, 400_000, strategy)
    assert (small["items"], large["items"]) == (20_000, 400_000)
    growth_mb = (large["peak_kb"] - large["before_kb"] - (small["peak_kb"] - small["before_kb"])) / 1024
    assert growth_mb < 100, (small, large)


def _write(path, lines):
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n\n")
    return path


def _hostile_manifest(tmp_path):
    rows = []
    for i in range(40):
        rows.append(json.dumps({"audio_filepath": f"/d/f{i % 7}.wav", "offset": float(i % 5), "duration": 2.0}))
    rows += [json.dumps({"audio_filepath": "/d//f1.wav", "offset": 1.0, "duration": 2.0}),  # same as f1 offset 1
             json.dumps({"audio_filepath": "/d/x/../f2.wav", "offset": 2, "duration": 2}),  # int == float
             json.dumps({"audio_filepath": "/d/f1.wav", "offset": 1.0, "duration": 2.5}),  # other duration: kept
             "", "not json", json.dumps({"audio_filepath": "rel.wav", "duration": 1}), "[1, 2]",
             json.dumps({"audio_filepath": "/d/.hidden/a.wav", "duration": 1.0, "text": "http://x//y"})]
    return _write(tmp_path / "m.jsonl", rows)


@pytest.mark.parametrize("forced_hash", [None, lambda key: len(key[0]) % 2, lambda key: 0])
def test_duplicates_match_exact_comparison_even_when_hashes_collide(tmp_path, monkeypatch, forced_hash):
    manifest = _hostile_manifest(tmp_path)
    if forced_hash:  # every line's hash collides with many others: the exact pass must sort them out
        monkeypatch.setattr(manifest_scan, "key_hash", forced_hash)
        monkeypatch.setattr(manifest_scan, "CONFIRM_BATCH", 1)  # one hash value per pass: several passes
    records, problems = read_manifest(manifest)  # the in-memory reference: a dict of exact keys
    scan = ManifestScan(str(manifest))
    assert list(scan.records()) == records
    assert [p.to_dict() for p in scan.problems()] == [p.to_dict() for p in problems]
    assert (scan.n_records, scan.n_problems) == (len(records), len(problems))
    assert scan.durations.tolist() == [r["duration"] for r in records]
    dups = [p for p in problems if p.message.startswith("duplicate of line")]
    assert len(dups) == 40 - 35 + 2  # 35 distinct (file, offset) pairs among the 40, and the two respelled ones
    assert [json.loads(b) for b in scan.bodies()] == records  # what the shards carry: normalised paths

    run = tmp_path / "run"
    plan = prepare(RunPaths(run), RunSpec(STAGE, str(manifest), RunOptions(shards=3, on_invalid="skip"),
                                          load_spec_cls()))
    assert (plan.items, plan.rejected) == (len(records), len(problems))
    assert read_jsonl(run / "rejected.jsonl") == [p.to_dict() for p in problems]
    shard_lines = sorted((int(line.split(b"\t")[0]), json.loads(line.split(b"\t", 1)[1]))
                         for i in range(3) for line in (run / "shards" / f"{i:05d}" / "input.jsonl").read_bytes()
                         .splitlines())
    assert shard_lines == list(enumerate(records))


def load_spec_cls():
    from tests.support.stages import EchoConfig

    return EchoConfig()


def _greedy_reference(durations, shards):
    heap = [(0.0, s) for s in range(shards)]
    out = [[] for _ in range(shards)]
    for i in sorted(range(len(durations)), key=lambda i: (-durations[i], i)):
        load, s = heapq.heappop(heap)
        out[s].append(i)
        heapq.heappush(heap, (load + durations[i], s))
    return [sorted(x) for x in out]


def test_duration_split_is_the_greedy_longest_first_split():
    rng = random.Random(3)
    durations = [rng.choice([0.5, 1.0, 2.0, 7.25]) if i % 3 else rng.uniform(0, 30) for i in range(5000)]
    for shards in (1, 3, 17):
        assert split([{"duration": d} for d in durations], shards, "duration") == _greedy_reference(durations, shards)


def test_merge_of_more_shards_than_files_open_at_once(tmp_path, monkeypatch):
    manifest = make_manifest(tmp_path / "m.jsonl", 60)
    run = tmp_path / "run"
    amela("run", STAGE, manifest, "-o", run, "--shards", 11, "--workers", 0, "--no-report", check=0)
    expected = (run / "echo.jsonl").read_bytes()
    monkeypatch.setattr(importlib.import_module("amela.runner.merge"), "MAX_OPEN", 3)  # 11 shards: groups of 3, merged again
    paths = RunPaths(run)
    spec = load_spec(paths)
    merge(paths, spec.stage_class()(spec.options))
    assert (run / "echo.jsonl").read_bytes() == expected
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]


def test_status_at_many_shards_is_grouped_and_cached(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 3000)
    run = tmp_path / "run"
    paths = RunPaths(run)
    prepare(paths, RunSpec(STAGE, str(manifest), RunOptions(shards=1500), load_spec_cls()))
    for i in range(1000):  # finished shards, as run_shard leaves them (output, stats, DONE)
        sp = paths.shard(i)
        sp.output.write_bytes(sp.input.read_bytes())
        sp.stats.write_text(json.dumps({"shard": i, "items": 2, "ok": 2, "failed": 0, "audio_seconds": 1.0,
                                        "started_at": 0.0, "finished_at": 1.0, "wall_seconds": 1.0}))
        sp.done.write_bytes(b"")
    for i in range(1200, 1205):
        for f in paths.shard(i).dir.iterdir():
            f.unlink()
        paths.shard(i).dir.rmdir()
    out = amela("status", run, check=1).stdout
    assert "done      1000" in out and "missing    500  [1000-1499]" in out
    assert "2000 ok, 0 failed, 1000 not yet processed" in out
    assert "495 shards [1000-1199,1205-1499]: never started" in out
    assert "5 shards [1200-1204]: their directories were deleted" in out
    assert len(out.splitlines()) < 15
    assert (run / ".status_cache.json").exists()
    assert amela("status", run, check=1).stdout == out  # from the cache: the same answer
    verbose = amela("status", run, "--verbose", check=1).stdout
    assert "shard 1499: never started" in verbose and f"amela run-shard {run} 1203` rebuilds it" in verbose
    # A shard run again gets a new DONE marker: its new figures are read, not the cached ones.
    sp = paths.shard(7)
    sp.stats.write_text(json.dumps({"shard": 7, "items": 2, "ok": 1, "failed": 1, "audio_seconds": 1.0,
                                    "started_at": 0.0, "finished_at": 1.0, "wall_seconds": 1.0}))
    os.utime(sp.done, ns=(1, 1))
    assert "1999 ok, 1 failed, 1000 not yet processed" in amela("status", run, check=1).stdout
