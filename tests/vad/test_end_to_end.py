"""`python -m amela.vad` / `amela run vad` end to end: outputs, failures, segments, independence, resume, crashes."""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soxr

from amela.manifest import read_manifest

from .conftest import SAMPLES, SR, write

RESULT_KEYS = ("speech_ratio", "speech_segments", "split_points", "max_speech_s", "flagged_ns", "duration")


def vad(*args, env=None, check=None):
    proc = subprocess.run([sys.executable, "-m", "amela.vad", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def by_path(records):
    return {r["audio_filepath"]: {k: r[k] for k in RESULT_KEYS} for r in records}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech16):
    """16 files of 2-8 s cut from the speech fixture at different places, some noisy, one 16-bit stereo 48 kHz."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(11)
    paths = []
    for i in range(16):
        start = int(rng.integers(0, len(speech16) - 8 * SR))
        piece = speech16[start: start + int(rng.uniform(2, 8) * SR)].astype(np.float32)
        piece += rng.standard_normal(len(piece)).astype(np.float32) * (300 if i % 3 == 0 else 10)
        piece = np.clip(piece, -32768, 32767).astype(np.int16)
        paths.append(write(root / f"part_{i:02d}.wav", piece, subtype="PCM_16"))
    (root / "sub").mkdir()
    y = soxr.resample(speech16[: 5 * SR].astype(np.float32) / 32768, SR, 48000)
    paths.append(write(root / "sub" / "stereo48k.flac", np.stack([y, 0.5 * y], axis=1), 48000, subtype="PCM_16"))
    return root, paths


def manifest_of(path, files, shuffle_seed=None):
    files = list(files)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(files)
    import soundfile

    with open(path, "w") as fh:
        for f in files:
            fh.write(json.dumps({"audio_filepath": f, "duration": soundfile.info(f).duration, "lang": "en"}) + "\n")
    return path


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus):
    root, _ = corpus
    run = tmp_path_factory.mktemp("ref") / "run"
    proc = vad(root, "-o", run, "--workers", 1, "--batch-size", 4, check=0)
    return run, proc


def test_directory_run_writes_every_output(reference_run, corpus):
    run, proc = reference_run
    _, paths = corpus
    records = read_jsonl(run / "vad.jsonl")
    assert [r["audio_filepath"] for r in records] == sorted(paths)  # the scan's order: sorted, recursive
    for r in records:
        assert 0 <= r["speech_ratio"] <= 1 and "header_error" not in r
        assert all(0 <= s < e <= r["duration"] + 1e-6 for s, e in r["speech_segments"])
    good, problems = read_manifest(run / "vad.jsonl")
    assert not problems and len(good) == len(paths)  # a valid input manifest for ASR and S2S
    with open(run / "vad_stats.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["audio_filepath"] for row in rows] == [r["audio_filepath"] for r in records]
    assert float(rows[0]["speech_ratio"]) == records[0]["speech_ratio"]
    assert (run / "vad_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "stats.json").read_text())["summary"]
    speech_s = sum(r["speech_s"] for r in records)
    assert summary["speech_ratio"] == pytest.approx(speech_s / sum(r["duration"] for r in records), abs=1e-4)
    assert "speech_ratio" in proc.stdout and str(run / "vad.jsonl") in proc.stdout
    assert not (run / "vad_segments.jsonl").exists()  # only with --segments


def test_results_independent_of_order_and_workers(tmp_path, reference_run, corpus):
    run, _ = reference_run
    _, paths = corpus
    want = by_path(read_jsonl(run / "vad.jsonl"))
    manifest = manifest_of(tmp_path / "shuffled.jsonl", paths, shuffle_seed=5)
    vad(manifest, "-o", tmp_path / "run2", "--workers", 2, "--shards", 3, "--batch-size", 2, check=0)
    assert by_path(read_jsonl(tmp_path / "run2" / "vad.jsonl")) == want
    records = read_jsonl(tmp_path / "run2" / "vad.jsonl")
    assert [r["audio_filepath"] for r in records] == [json.loads(x)["audio_filepath"] for x in open(manifest)]
    assert all(r["lang"] == "en" for r in records)  # input fields are kept


def test_bad_files_fail_and_the_rest_completes(tmp_path, corpus, speech16):
    d = tmp_path / "mixed"
    d.mkdir()
    good = [write(d / "good1.wav", speech16[: 4 * SR], subtype="PCM_16"),
            write(d / "good2.flac", speech16[4 * SR: 9 * SR], subtype="PCM_16")]
    (d / "empty.wav").write_bytes(b"")
    (d / "junk.wav").write_bytes(os.urandom(4000))
    (d / "truncated.wav").write_bytes(open(good[0], "rb").read()[:40])
    write(d / "tiny.wav", speech16[:200], subtype="PCM_16")
    nan = speech16[: 2 * SR].astype(np.float32) / 32768
    nan[100] = np.nan
    write(d / "nan.wav", nan, subtype="FLOAT")
    proc = vad(d, "-o", tmp_path / "run", check=1)
    failures = {os.path.basename(f["audio_filepath"]): f for f in read_jsonl(tmp_path / "run" / "failures.jsonl")}
    assert set(failures) == {"empty.wav", "junk.wav", "truncated.wav", "tiny.wav", "nan.wav"}
    assert "empty file" in failures["empty.wav"]["message"]
    assert "not a readable audio file" in failures["junk.wav"]["message"]
    assert "not a readable audio file" in failures["truncated.wav"]["message"]
    assert "too short" in failures["tiny.wav"]["message"]
    assert "NaN" in failures["nan.wav"]["message"]
    assert [r["audio_filepath"] for r in read_jsonl(tmp_path / "run" / "vad.jsonl")] == good
    assert "2 ok, 5 failed" in proc.stdout


def test_directory_without_audio_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    proc = vad(tmp_path / "empty", "-o", tmp_path / "run", check=2)
    assert "no audio files found" in proc.stderr


def test_segments_stream_is_an_asr_manifest(tmp_path, corpus):
    root, _ = corpus
    run = tmp_path / "run"
    vad(root, "-o", run, "--segments", "--pad-s", "0.1", "--min-silence-s", "0.2", "--max-segment-s", "2",
        check=0)
    records = read_jsonl(run / "vad.jsonl")
    segs, problems = read_manifest(run / "vad_segments.jsonl")
    assert not problems
    want = [(r["audio_filepath"], s, round(e - s, 4)) for r in records for s, e in r["speech_segments"]]
    assert [(s["audio_filepath"], s["offset"], s["duration"]) for s in segs] == want
    assert all(0 < s["duration"] <= 2.0 + 1e-9 for s in segs)
    assert any(s["segment_index"] > 0 for s in segs)


def test_worker_crash_in_native_path_is_isolated(tmp_path, corpus):
    root, paths = corpus
    run = tmp_path / "run"
    cmd = ["run", "tests.vad.stages:CrashingVadStage", root, "-o", run, "--workers", 2, "--batch-size", 4,
           "--crash-on", "part_05.wav"]
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, cmd)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = read_jsonl(run / "failures.jsonl")
    assert [os.path.basename(f["audio_filepath"]) for f in failures] == ["part_05.wav"]
    assert failures[0]["signal"] == "SIGSEGV"
    done = [r["audio_filepath"] for r in read_jsonl(run / "vad.jsonl")]
    assert done == sorted(p for p in paths if not p.endswith("part_05.wav"))
    assert f"{len(paths) - 1} ok, 1 failed" in proc.stdout


def test_interrupted_run_resumes_to_the_same_output(tmp_path, corpus, reference_run):
    ref_run, _ = reference_run
    root, paths = corpus
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "amela.vad", str(root), "-o", str(run), "--workers", "1", "--batch-size", "1",
           "--shards", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if sum(p.read_bytes().count(b"\n") for p in run.glob("shards/*/output.partial")) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not (run / "vad.jsonl").exists()
    vad(root, "-o", run, "--workers", "1", "--batch-size", "1", "--shards", "4", check=0)
    assert by_path(read_jsonl(run / "vad.jsonl")) == by_path(read_jsonl(ref_run / "vad.jsonl"))
    assert (run / "vad_stats.csv").read_bytes() == (ref_run / "vad_stats.csv").read_bytes()


def test_main_job_on_bundled_samples(tmp_path):
    proc = vad(SAMPLES, "-o", tmp_path / "demo", check=0)
    assert "4 ok, 0 failed" in proc.stdout
    for word in ("speech_ratio", "speech_hours", "flagged_ns", "output:"):
        assert word in proc.stdout
    records = {os.path.basename(r["audio_filepath"]): r for r in read_jsonl(tmp_path / "demo" / "vad.jsonl")}
    assert records["no_speech.flac"]["flagged_ns"] and records["no_speech.flac"]["speech_segments"] == []
    assert records["long_talk.ogg"]["flagged_1m"] and len(records["long_talk.ogg"]["split_points"]) >= 1
    assert records["phrases_clean.flac"]["speech_ratio"] > 0.4


def test_missing_libcxx_stops_the_run_with_one_message(tmp_path):
    """A library whose libc++ cannot be found (a patched copy, see test_native): exit 2, the fix, no traceback."""
    from amela.vad import native

    data = open(native.library_path(), "rb").read().replace(b"libc++.so.1", b"libc++.so.7")
    lib = tmp_path / "libten_vad.so"
    lib.write_bytes(data)
    proc = vad(SAMPLES, "-o", tmp_path / "run", env={native.LIBRARY_ENV: str(lib)}, check=2)
    assert "apt-get install libc++1" in proc.stderr and native.LIBCXX_DIR_ENV in proc.stderr
    assert "vad_library" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "vad.jsonl").exists()
