"""End to end through the CLI with the tests-only echo stage: order, shards, resume, merge, status, locks."""
import json
import os

import pytest

from amela.runner.plan import split
from tests.support.helpers import STAGE, amela, make_manifest, read_jsonl


def expected(manifest):
    return [{**r, "echo": os.path.basename(r["audio_filepath"]).upper()} for r in read_jsonl(manifest)]


@pytest.mark.parametrize("strategy", ["round_robin", "duration"])
def test_sharded_run_restores_input_order(tmp_path, strategy):
    manifest = make_manifest(tmp_path / "m.jsonl", 30)
    run = tmp_path / "run"
    proc = amela("run", STAGE, manifest, "-o", run, "--shards", 4, "--workers", 2, "--strategy", strategy, check=0)
    assert read_jsonl(run / "echo.jsonl") == expected(manifest)
    stats = json.loads((run / "stats.json").read_text())
    assert (stats["items"], stats["ok"], stats["failed"], stats["shards"]) == (30, 30, 0, 4)
    assert stats["audio_seconds"] == sum(r["duration"] for r in read_jsonl(manifest))
    assert (run / "config.yaml").exists() and (run / "echo_report.txt").exists()
    assert read_jsonl(run / "failures.jsonl") == []
    assert "30 ok, 0 failed" in proc.stdout
    assert f"output: {run / 'echo.jsonl'}" in proc.stdout  # named by the stage, not by its import path
    # rerun: every shard has its marker, nothing is redone, output unchanged
    before = (run / "echo.jsonl").read_bytes()
    amela("run", STAGE, manifest, "-o", run, "--shards", 4, "--strategy", strategy, check=0)
    assert (run / "echo.jsonl").read_bytes() == before


def test_split_strategies_are_deterministic_partitions():
    records = [{"duration": float(d)} for d in [5, 1, 1, 1, 1, 1, 4, 2, 3]]
    rr = split(records, 3, "round_robin")
    assert rr == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    bal = split(records, 2, "duration")
    assert sorted(i for s in bal for i in s) == list(range(9))
    loads = [sum(records[i]["duration"] for i in s) for s in bal]
    assert abs(loads[0] - loads[1]) <= 1
    assert bal == split(records, 2, "duration")


def test_crashing_workers_are_isolated(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 24)
    run = tmp_path / "run"
    proc = amela("run", STAGE, manifest, "-o", run, "--workers", 2, "--batch-size", 3,
                 "--segv-on", "a5.wav", "--kill-on", "a11.wav", "--exit-on", "a17.wav", "--fail-on", "a20.wav",
                 check=1)
    failures = {f["audio_filepath"]: f for f in read_jsonl(run / "failures.jsonl")}
    assert set(failures) == {"/data/a5.wav", "/data/a11.wav", "/data/a17.wav", "/data/a20.wav"}
    assert failures["/data/a5.wav"]["signal"] == "SIGSEGV"
    assert failures["/data/a11.wav"]["signal"] == "SIGKILL"
    assert failures["/data/a17.wav"]["error_type"] == "WorkerCrash" and "exit code 3" in failures["/data/a17.wav"]["message"]
    assert failures["/data/a20.wav"]["error_type"] == "ItemError" and failures["/data/a20.wav"]["signal"] is None
    assert failures["/data/a5.wav"]["record"]["text"] == "t5"  # the input record travels with the failure
    want = [r for r in expected(manifest) if r["audio_filepath"] not in failures]
    assert read_jsonl(run / "echo.jsonl") == want  # every other item, once, in order
    assert "20 ok, 4 failed" in proc.stdout


def test_an_item_that_crashes_once_is_retried_and_kept(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 10)
    run, marks = tmp_path / "run", tmp_path / "marks"
    marks.mkdir()
    amela("run", STAGE, manifest, "-o", run, "--workers", 1, "--segv-on", "a4.wav", "--crash-once-dir", marks,
          check=0)
    assert read_jsonl(run / "echo.jsonl") == expected(manifest)
    assert json.loads((run / "stats.json").read_text())["worker_crashes"] == 1


def test_bad_manifest_lines_are_reported_by_file_and_line(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 5)
    with open(manifest, "a") as fh:
        fh.write('{"audio_filepath": "relative.wav", "duration": 1}\n{broken\n')
    run = tmp_path / "run"
    proc = amela("run", STAGE, manifest, "-o", run, check=2)
    assert f"{manifest}:6: 'audio_filepath' must be absolute" in proc.stderr
    assert f"{manifest}:7: malformed JSON" in proc.stderr
    proc = amela("run", STAGE, manifest, "-o", run, "--on-invalid", "skip", check=1)  # some lines did not succeed
    rejected = read_jsonl(run / "rejected.jsonl")
    assert [r["line"] for r in rejected] == [6, 7] and rejected[1]["text"] == "{broken"
    assert len(read_jsonl(run / "echo.jsonl")) == 5
    assert "2 rejected" in proc.stdout


def test_changed_options_on_an_existing_run_dir_are_refused(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 4)
    run = tmp_path / "run"
    amela("run", STAGE, manifest, "-o", run, check=0)
    proc = amela("run", STAGE, manifest, "-o", run, "--batch-size", 2, check=2)
    assert "options.batch_size: 4 -> 2" in proc.stderr


def test_unknown_config_key_lists_valid_ones(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 2)
    (tmp_path / "c.yaml").write_text("batch_sise: 3\n")
    proc = amela("run", STAGE, manifest, "-o", tmp_path / "run", "--config", tmp_path / "c.yaml", check=2)
    assert "batch_sise" in proc.stderr and "batch_size" in proc.stderr


def test_saved_config_reproduces_the_run(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 6)
    amela("run", STAGE, manifest, "-o", tmp_path / "a", "--batch-size", 2, "--shards", 2, check=0)
    amela("run", STAGE, manifest, "-o", tmp_path / "b", "--config", tmp_path / "a" / "config.yaml", check=0)
    assert (tmp_path / "a" / "echo.jsonl").read_bytes() == (tmp_path / "b" / "echo.jsonl").read_bytes()
    assert (tmp_path / "a" / "config.yaml").read_text() == (tmp_path / "b" / "config.yaml").read_text()


def test_streams_and_sink_files(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 5)
    run = tmp_path / "run"
    amela("run", STAGE, manifest, "-o", run, "--pieces", 2, "--write-files", "--shards", 2, check=0)
    pieces = read_jsonl(run / "echo_pieces.jsonl")
    assert [(p["audio_filepath"], p["piece"]) for p in pieces] == [
        (f"/data/a{i}.wav", k) for i in range(5) for k in range(2)]
    for r in read_jsonl(run / "echo.jsonl"):
        assert r["file"] == str(run / "files" / (os.path.basename(r["audio_filepath"]) + ".txt"))
        assert open(r["file"]).read() == os.path.basename(r["audio_filepath"])


def test_run_shard_per_index_then_merge_equals_local_run(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 13)
    amela("run", STAGE, manifest, "-o", tmp_path / "local", "--shards", 3, check=0)
    # a second run dir prepared by a run whose shards are then run one by one, as array tasks would
    run = tmp_path / "tasks"
    amela("run", STAGE, manifest, "-o", run, "--shards", 3, check=0)
    for i in range(3):
        (run / "shards" / f"{i:05d}" / "DONE").unlink()
        for f in (run / "shards" / f"{i:05d}").glob("*.partial"):
            f.unlink()
    proc = amela("status", run, check=1)
    assert "resubmit: --array=0-2" in proc.stdout
    proc = amela("merge", run, check=1)
    assert "3 shard(s) not finished: 0-2" in proc.stderr
    amela("run-shard", run, 1, check=0)
    proc = amela("status", run, check=1)
    assert "--array=0,2" in proc.stdout
    proc = amela("merge", run, "--allow-partial", check=1)
    assert len(read_jsonl(run / "echo.jsonl")) == 4
    amela("run-shard", run, 0, check=0)
    amela("run-shard", run, 2, check=0)
    amela("run-shard", run, 2, check=0)  # idempotent
    amela("status", run, check=0)
    amela("merge", run, check=0)
    assert (run / "echo.jsonl").read_bytes() == (tmp_path / "local" / "echo.jsonl").read_bytes()


def test_run_shard_index_out_of_range(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 3)
    amela("run", STAGE, manifest, "-o", tmp_path / "run", check=0)
    assert "out of range" in amela("run-shard", tmp_path / "run", 5, check=2).stderr


def test_a_shard_without_its_directory_is_an_unknown_shard_not_a_locked_run(tmp_path):
    import shutil

    from amela.errors import ConfigError, RunLockedError, UnknownShardError
    from amela.paths import RunPaths
    from amela.runner import run_shard

    amela("run", STAGE, make_manifest(tmp_path / "m.jsonl", 4), "-o", tmp_path / "run", "--shards", 2, check=0)
    shutil.rmtree(tmp_path / "run" / "shards" / "00001")
    with pytest.raises(UnknownShardError, match="the directory of shard 1 is missing; `amela run-shard") as exc:
        run_shard(RunPaths(tmp_path / "run"), 1, stage=None, pool=None)
    assert isinstance(exc.value, ConfigError) and not isinstance(exc.value, RunLockedError)  # exit 2, as before


def test_validate_command(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 3)
    amela("validate", manifest, check=0)
    with open(manifest, "a") as fh:
        fh.write('{"audio_filepath": "/x.wav", "duration": -2}\n')
    proc = amela("validate", manifest, check=1)
    assert proc.stdout.strip() == f"{manifest}:4: 'duration' must be >= 0, got -2"


def test_help_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = ("import sys; from amela.cli import build_parser; build_parser('tests.support.stages:EchoStage'); "
            "heavy = [m for m in ('torch', 'nemo', 'fairseq', 'ten_vad', 'soundfile') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_failed_items_are_final_until_retry_failed(tmp_path):
    files = [tmp_path / f"a{i}.wav" for i in range(6)]
    for f in files[:2] + files[3:]:
        f.write_bytes(b"x")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(f), "duration": 1.0}) + "\n" for f in files))
    run = tmp_path / "run"
    amela("run", STAGE, manifest, "-o", run, "--shards", 2, "--require-file", check=1)
    assert [f["audio_filepath"] for f in read_jsonl(run / "failures.jsonl")] == [str(files[2])]
    assert "a2.wav" in (run / "logs" / "shard_00000.log").read_text()
    files[2].write_bytes(b"x")  # the cause is fixed
    amela("run", STAGE, manifest, "-o", run, "--shards", 2, "--require-file", check=1)  # finished: no-op
    proc = amela("run", STAGE, manifest, "-o", run, "--shards", 2, "--require-file", "--retry-failed", check=0)
    assert "retrying its failed items" in proc.stderr
    assert read_jsonl(run / "failures.jsonl") == []
    assert [r["audio_filepath"] for r in read_jsonl(run / "echo.jsonl")] == [str(f) for f in files]
