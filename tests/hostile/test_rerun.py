"""Points 4 and 11: a rerun never silently ignores a changed input; a deleted shard directory can be rebuilt."""
import json
import os
import shutil

from tests.support.helpers import STAGE, make_manifest, read_jsonl

from .helpers import FILE_STAGE, amela, write_wav


def test_a_changed_manifest_is_refused_with_counts_and_the_ways_forward(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 10)
    run = tmp_path / "run"
    amela("run", STAGE, manifest, "-o", run, "--shards", 2, "--workers", 0, "--sleep-s", 0, check=0)
    os.utime(manifest)  # touched, same content: not a change
    amela("run", STAGE, manifest, "-o", run, "--shards", 2, "--workers", 0, check=0)
    lines = manifest.read_text().splitlines()
    lines = lines[3:] + [json.dumps({"audio_filepath": f"/data/new{i}.wav", "duration": 1.0}) for i in range(2)]
    manifest.write_text("\n".join(lines) + "\n")
    proc = amela("run", STAGE, manifest, "-o", run, "--shards", 2, "--workers", 0, check=2)
    assert "changed: 2 record(s) added, 3 removed" in proc.stderr
    assert "new run directory" in proc.stderr and "--keep-plan" in proc.stderr
    assert "Traceback" not in proc.stderr
    amela("prepare", STAGE, manifest, "-o", run, "--shards", 2, check=2)  # what each hand-written array task runs
    amela("run", STAGE, manifest, "-o", run, "--shards", 2, "--workers", 0, "--keep-plan", check=0)
    assert len(read_jsonl(run / "echo.jsonl")) == 10  # the recorded plan, as it was


def test_a_changed_directory_is_refused(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        write_wav(audio / f"f{i}.wav")
    run = tmp_path / "run"
    amela("run", FILE_STAGE, audio, "-o", run, "--workers", 0, check=0)
    write_wav(audio / "late.wav")
    proc = amela("run", FILE_STAGE, audio, "-o", run, "--workers", 0, check=2)
    assert "changed: 1 record(s) added, 0 removed" in proc.stderr


def test_a_deleted_shard_directory_is_rebuilt(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 9)
    run = tmp_path / "run"
    amela("prepare", STAGE, manifest, "-o", run, "--shards", 3, check=0)
    amela("run-shard", run, 0, "--workers", 0, check=0)
    planned = (run / "shards" / "00001" / "input.jsonl").read_bytes()
    shutil.rmtree(run / "shards" / "00001")
    status = amela("status", run, check=1)
    assert f"amela run-shard {run} 1` rebuilds it" in status.stdout
    amela("run-shard", run, 1, "--workers", 0, check=0)
    assert (run / "shards" / "00001" / "input.jsonl").read_bytes() == planned
    amela("run-shard", run, 2, "--workers", 0, check=0)
    amela("merge", run, check=0)
    assert [r["audio_filepath"] for r in read_jsonl(run / "echo.jsonl")] == [f"/data/a{i}.wav" for i in range(9)]


def test_a_deleted_shard_of_a_changed_input_says_why_it_cannot_be_rebuilt(tmp_path):
    manifest = make_manifest(tmp_path / "m.jsonl", 6)
    run = tmp_path / "run"
    amela("prepare", STAGE, manifest, "-o", run, "--shards", 2, check=0)
    shutil.rmtree(run / "shards" / "00000")
    make_manifest(manifest, 7)
    proc = amela("run-shard", run, 0, "--workers", 0, check=2)
    assert "was deleted, and it cannot be rebuilt" in proc.stderr and "record(s) added" in proc.stderr
