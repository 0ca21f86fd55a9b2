"""End to end through the runner: `python -m amela.s2s MODE ...` in a fresh process, as users and SLURM tasks run it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from amela.s2s.__main__ import translate
from amela.s2s.kmeans import expand

from .conftest import LAYER, read, reference_units


def test_mode_argument_becomes_the_mode_flag():
    assert translate(["encode", "m.jsonl", "-o", "run"]) == ["m.jsonl", "-o", "run", "--mode", "encode"]
    assert translate(["m.jsonl", "-o", "run", "--mode", "synth"]) == ["m.jsonl", "-o", "run", "--mode", "synth"]
    assert translate(["--help"]) == ["--help"]


def _s2s(tiny, *args):
    cmd = [sys.executable, "-m", "amela.s2s", *args, "--dense", tiny.hubert, "--layer", str(LAYER),
           "--kmeans", tiny.km_pickle, "--trust-pickle", "--vocoder", tiny.vocoder,
           "--vocoder-config", tiny.vocoder_config, "--device", "cpu", "--workers", "1", "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def manifest_with_bad_file(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    bad = tiny.audio / "a" / "zz_unreadable.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    records = tiny.records[:2] + [{"audio_filepath": str(bad), "duration": 1.0}] + tiny.records[2:]
    manifest = root / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    yield root, manifest, records
    bad.unlink()


def test_encode_then_synth_and_rerun_skips(tiny, manifest_with_bad_file):
    root, manifest, records = manifest_with_bad_file
    run = root / "encode"
    res = _s2s(tiny, "encode", str(manifest), "-o", str(run))
    assert res.returncode == 1, res.stderr  # 1: finished, some items failed
    out = _jsonl(run / "s2s.jsonl")
    failures = _jsonl(run / "failures.jsonl")
    assert [f["audio_filepath"] for f in failures] == [records[2]["audio_filepath"]]
    assert "not a readable audio file" in failures[0]["message"]
    good = [r for r in records if "zz_unreadable" not in r["audio_filepath"]]
    assert [r["audio_filepath"] for r in out] == [r["audio_filepath"] for r in good]
    for r in out:
        assert expand(r["units"], r["unit_durations"]) == reference_units(tiny, read(r["audio_filepath"]))

    synth = root / "synth"
    res = _s2s(tiny, "synth", str(run / "s2s.jsonl"), "-o", str(synth), "--input-root", str(tiny.audio))
    assert res.returncode == 0, res.stderr
    wavs = _jsonl(synth / "s2s.jsonl")
    assert len(wavs) == len(out)
    for enc, w in zip(out, wavs):
        assert w["audio_filepath"].startswith(str(synth / "files") + "/")
        assert len(sf.read(w["audio_filepath"])[0]) == sum(enc["unit_durations"]) * 320

    mtimes = {w["audio_filepath"]: __import__("os").stat(w["audio_filepath"]).st_mtime_ns for w in wavs}
    before = (synth / "s2s.jsonl").read_bytes()
    res = _s2s(tiny, "synth", str(run / "s2s.jsonl"), "-o", str(synth), "--input-root", str(tiny.audio))
    assert res.returncode == 0, res.stderr
    assert (synth / "s2s.jsonl").read_bytes() == before
    assert {p: __import__("os").stat(p).st_mtime_ns for p in mtimes} == mtimes  # nothing re-synthesised


def test_resynth_mirrors_tree_under_out_dir(tiny, manifest_with_bad_file):
    root, manifest, records = manifest_with_bad_file
    out_dir = root / "resynth_audio"
    res = _s2s(tiny, "resynth", str(manifest), "-o", str(root / "resynth"), "--input-root", str(tiny.audio),
               "--out-dir", str(out_dir))
    assert res.returncode == 1, res.stderr
    rel = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.wav"))
    assert rel == ["a/f0.wav", "a/f1.wav", "a/f2.wav", "b/c/f3.wav"]
    for r in _jsonl(root / "resynth" / "s2s.jsonl"):
        assert r["audio_filepath"].startswith(str(out_dir))
        assert sf.info(r["audio_filepath"]).samplerate == 16000
        assert r["source_audio_filepath"].startswith(str(tiny.audio))


def test_missing_model_is_a_usage_error(tiny, tmp_path):
    res = subprocess.run([sys.executable, "-m", "amela.s2s", "encode", str(tiny.manifest), "-o", str(tmp_path / "r"),
                          "--dense", "hubert-base-ls960", "--kmeans", "hubert-base-ls960-kmeans-100",
                          "--cache-dir", str(tmp_path / "empty"), "--workers", "1", "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert "amela fetch-models s2s hubert-base-ls960" in res.stderr
    assert not (tmp_path / "empty").exists()
