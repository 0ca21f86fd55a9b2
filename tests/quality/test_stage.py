"""`python -m amela.quality` / `amela run quality` end to end on audio built here: fields, spans, failures, reports."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from amela.quality.config import DNSMOS_FIELDS, SIGNAL_FIELDS

SAMPLES = Path(__file__).resolve().parents[2] / "amela" / "data" / "samples"
SR = 16000


def quality(*args, check=None):
    proc = subprocess.run([sys.executable, "-m", "amela.quality", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    clean, _ = soundfile.read(SAMPLES / "phrases_clean.flac", dtype="float32")
    soundfile.write(root / "clean.wav", clean, SR, subtype="PCM_16")
    phone = soxr.resample(soxr.resample(clean, SR, 8000), 8000, 44100)  # telephone band, stored at 44.1 kHz
    soundfile.write(root / "phone.flac", phone, 44100)
    loud = np.clip(clean * 8, -1, 1)
    soundfile.write(root / "clipped.wav", np.stack([loud, loud], axis=1), SR, subtype="PCM_16")
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    return root


def test_directory_run_adds_every_field_and_fails_only_the_broken_file(corpus, tmp_path):
    run = tmp_path / "run"
    proc = quality(corpus, "-o", run, check=1)  # 1: the run completed, one item failed
    out = {Path(r["audio_filepath"]).name: r for r in read_jsonl(run / "quality.jsonl")}
    assert sorted(out) == ["clean.wav", "clipped.wav", "phone.flac"]
    for record in out.values():
        for key in (*DNSMOS_FIELDS, *SIGNAL_FIELDS, "dnsmos_windows"):
            assert isinstance(record[key], (int, float)), key
    assert out["clean.wav"]["clipping_ratio"] == 0 and out["clipped.wav"]["clipping_ratio"] > 0.01
    assert out["clean.wav"]["bandwidth_hz"] > 7000 and 3500 < out["phone.flac"]["bandwidth_hz"] < 4100
    assert out["clipped.wav"]["peak_dbfs"] > -0.01
    assert out["clean.wav"]["dnsmos_ovrl"] > out["clipped.wav"]["dnsmos_ovrl"]
    failures = read_jsonl(run / "failures.jsonl")
    assert len(failures) == 1 and "broken.wav" in json.dumps(failures[0])
    rows = list(csv.DictReader((run / "quality_stats.csv").open()))
    assert len(rows) == 3 and float(rows[0]["dnsmos_ovrl"]) == pytest.approx(out[Path(rows[0]["audio_filepath"]).name]
                                                                                ["dnsmos_ovrl"])
    assert (run / "quality_report.png").read_bytes()[:4] == b"\x89PNG"
    assert "mean_dnsmos_ovrl" in proc.stdout
    worker = json.loads((run / "stats.json").read_text())["per_shard"][0]["stage"]
    assert worker["cpu_s"] > 0 and worker["decode_s"] > 0 and worker["dnsmos_s"] > 0 and worker["windows"] >= 3
    # the run directory is an input of `amela filter` as it stands (its merged quality.jsonl)
    kept = tmp_path / "wide.jsonl"
    subprocess.run([sys.executable, "-m", "amela", "filter", str(run), "-o", str(kept), "--where", "bandwidth_hz > 6000"],
                   check=True, capture_output=True)
    assert sorted(Path(r["audio_filepath"]).name for r in read_jsonl(kept)) == ["clean.wav", "clipped.wav"]
    assert [Path(r["record"]["audio_filepath"]).name for r in read_jsonl(tmp_path / "filtered.jsonl")] == ["phone.flac"]


def test_spans_are_scored_as_spans_and_signal_only_runs_skip_the_models(corpus, tmp_path):
    path = str(corpus / "clipped.wav")
    clean = str(corpus / "clean.wav")
    records = [{"audio_filepath": clean, "offset": 0.0, "duration": 9.0},
               {"audio_filepath": path, "offset": 1.0, "duration": 2.0},
               {"audio_filepath": clean, "offset": 50.0, "duration": 1.0}]  # past the end: fails alone
    manifest = tmp_path / "spans.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    quality(manifest, "-o", tmp_path / "run", "--no-dnsmos", check=1)
    out = read_jsonl(tmp_path / "run" / "quality.jsonl")
    assert [(r["offset"], r["duration"]) for r in out] == [(0.0, 9.0), (1.0, 2.0)]
    assert not any(k.startswith("dnsmos") for r in out for k in r)
    whole, _ = soundfile.read(path, dtype="float32")
    span = whole[SR:3 * SR]
    assert out[1]["peak_dbfs"] == pytest.approx(20 * np.log10(np.abs(span).max()), abs=1e-3)
    assert out[1]["dc_offset"] == pytest.approx(float(span.mean()), abs=1e-5)
    failures = read_jsonl(tmp_path / "run" / "failures.jsonl")
    assert "past the end" in json.dumps(failures)


def test_bad_options_are_usage_errors(corpus, tmp_path):
    proc = quality(corpus, "-o", tmp_path / "run", "--hop-s", "0", check=2)
    assert "hop_s must be > 0" in proc.stderr


def test_batches_hold_about_batch_s_of_audio():
    from amela.quality.config import QualityConfig
    from amela.quality.stage import QualityStage

    durations = [100, 150, 100, 900, 10, 10, 10]
    stage = QualityStage(QualityConfig(batch_s=300, batch_size=2))
    assert stage.batches([{"duration": d} for d in durations]) == [[0, 1], [2], [3], [4, 5], [6]]
