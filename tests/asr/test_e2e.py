"""End to end through the CLI: `amela run asr` / `python -m amela.asr`, failures, resume after interruption."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from amela.audio import read_span
from amela.cli import main

from .conftest import RATE, direct, noise, write_wav


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_manifest(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_run_asr_keeps_order_isolates_bad_files_and_refuses_references(tmp_path, tiny_models, ctc_model, corpus):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), RATE)
    records = [dict(r, text=f"reference {i}") for i, r in enumerate(corpus)]
    records.insert(2, {"audio_filepath": str(tmp_path / "gone.wav"), "duration": 3.0})
    records.insert(7, {"audio_filepath": str(empty), "duration": 1.0})
    manifest = write_manifest(tmp_path / "m.jsonl", records)
    run = tmp_path / "run"
    base = ["run", "asr", manifest, "-o", str(run), "--model", tiny_models["ctc"], "--workers", "0",
            "--batch-s", "8", "--no-progress"]
    assert main(base) == 2  # the input has reference transcripts under 'text'
    assert not (run / "asr.jsonl").exists()
    assert main(base + ["--text-key", "pred_text"]) == 1  # done, with item failures
    out = read_jsonl(run / "asr.jsonl")
    good = [r for r in records if "gone" not in r["audio_filepath"] and "empty" not in r["audio_filepath"]]
    assert [r["audio_filepath"] for r in out] == [r["audio_filepath"] for r in good]
    assert [r["text"] for r in out] == [r["text"] for r in good]  # references kept
    assert [r["pred_text"] for r in out] == direct(ctc_model, [read_span(r, RATE) for r in good])
    failures = read_jsonl(run / "failures.jsonl")
    assert sorted(f["audio_filepath"] for f in failures) == sorted([str(empty), str(tmp_path / "gone.wav")])
    assert all(f["audio_filepath"] in f["message"] for f in failures)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["per_shard"][0]["stage"]["batch_s_budget_min"] == 8.0


@pytest.fixture(scope="module")
def big_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("asr_many")
    rng = np.random.default_rng(5)
    records = [{"audio_filepath": write_wav(root / f"{i:03d}.wav", noise(float(s), 1000 + i)), "duration": float(s)}
               for i, s in enumerate(rng.choice([0.5, 0.75, 1.0], size=200))]
    return write_manifest(root / "m.jsonl", records), records


def test_interrupted_run_resumes_to_every_record_once(tmp_path, tiny_models, ctc_model, big_manifest):
    manifest, records = big_manifest
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "amela.asr", manifest, "-o", str(run), "--model", tiny_models["ctc"],
           "--batch-s", "1", "--workers", "1", "--no-progress"]  # one record per batch: a long window to interrupt
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial, seen, deadline = run / "shards" / "00000" / "output.partial", 0, time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        seen = partial.read_bytes().count(b"\n") if partial.exists() else 0
        if seen >= 10:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    done_before = partial.read_bytes().count(b"\n")
    assert 10 <= done_before < len(records)  # really interrupted midway
    assert not (run / "asr.jsonl").exists()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming, {done_before} of {len(records)} items already done" in again.stderr
    out = read_jsonl(run / "asr.jsonl")
    assert [r["audio_filepath"] for r in out] == [r["audio_filepath"] for r in records]
    assert [r["text"] for r in out] == direct(ctc_model, [read_span(r, RATE) for r in records])
