"""DNSMOS with the ONNX files the installed `speechmos` ships: windows, features, and equality with
`speechmos.dnsmos.run` at its own hop, through the whole stage on real speech (../shared/data/ten-vad-dev)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from amela.quality import dnsmos as d

# ../shared beside the checkout, as on the developers' machines and in CI (AMELA_DEV_DATA elsewhere)
DEV = Path(os.environ.get("AMELA_DEV_DATA", Path(__file__).resolve().parents[3] / "shared" / "data" / "ten-vad-dev"))
needs_dev = pytest.mark.skipif(not DEV.is_dir(), reason=f"{DEV} (real labelled speech) not on this machine")
SR = d.SAMPLE_RATE


def test_models_come_from_the_installed_package():
    import speechmos

    for kind in d.MODEL_FILES:
        path = d.model_path(kind)
        assert os.path.isfile(path) and path.startswith(os.path.dirname(speechmos.__file__))


@pytest.mark.parametrize("seconds", [9.01, 9.5, 10.0, 15.99, 16.0, 17.3, 25.0, 61.7, 3600.4])
def test_windows_at_the_default_hop_cover_the_audio(seconds):
    n = int(seconds * SR)
    starts = d.window_starts(n, 9.01)
    assert starts and all(0 <= s and s + d.WINDOW <= n for s in starts)
    assert starts == sorted(starts)
    assert n - (starts[-1] + d.WINDOW) <= d.MAX_TAIL_S * SR  # at most 2 s left unscored at the end
    gaps = np.diff(starts)
    assert (gaps <= d.WINDOW).all()  # nothing unscored between windows either


@pytest.mark.parametrize("seconds", [9.01, 10.0, 12.5, 17.0, 25.0, 61.7, 300.2])
def test_windows_at_the_reference_hop_never_add_a_tail(seconds):
    n = int(seconds * SR)
    count = int(math.floor(n / SR) - d.WINDOW_S) + 1  # the reference's window count
    starts = d.window_starts(n, 1.0)
    assert starts == [i * SR for i in range(count) if int((i + d.WINDOW_S) * SR) - i * SR == d.WINDOW]


def test_short_clips_are_doubled_until_they_fill_a_window():
    clip = np.arange(40000, dtype=np.float32)
    filled = d.fill(clip)
    assert len(filled) == 160000 and (filled[40000:80000] == clip).all()


def test_batched_mel_features_equal_the_references_per_window():
    from speechmos.dnsmos import DNSMOS

    rng = np.random.default_rng(3)
    batch = (rng.standard_normal((3, d.WINDOW)) * np.array([[0.01], [0.1], [0.5]])).astype(np.float32)
    feats = d.mel_features(batch[:, :-160])
    for i in range(3):
        # audio_melspec does not use the instance: no sessions are built for this comparison
        ref = DNSMOS.audio_melspec(None, audio=batch[i, :-160]).astype(np.float32)
        np.testing.assert_allclose(feats[i], ref, rtol=0, atol=1e-6)


def test_clean_speech_scores_above_the_same_speech_in_noise():
    root = Path(__file__).resolve().parents[2] / "amela" / "data" / "samples"
    clean, sr = soundfile.read(root / "phrases_clean.flac", dtype="float32")
    noisy = np.clip(clean + np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 0.1, -1, 1)
    scorer = d.Dnsmos(threads=1, window_batch=2)
    good, bad = scorer.score([clean, noisy], 9.01)
    assert good.bak > bad.bak + 1.0 and good.ovrl > bad.ovrl + 0.5
    assert all(1.0 < s < 5.0 for s in (good.sig, good.bak, good.ovrl, good.p808))


@needs_dev
@pytest.mark.slow
def test_the_stage_equals_speechmos_at_its_hop(tmp_path):
    """Whole files (one needing the doubling) and a span of a longer file, whose windows speechmos partly skips."""
    from speechmos import dnsmos

    long_audio = np.concatenate([soundfile.read(DEV / f"testset-audio-{n:02d}.wav", dtype="int16")[0] for n in (3, 5)])
    long_path = tmp_path / "long.wav"
    soundfile.write(long_path, long_audio, SR, subtype="PCM_16")
    whole = DEV / "testset-audio-03.wav"
    records = [{"audio_filepath": str(whole), "duration": soundfile.info(whole).duration},
               {"audio_filepath": str(DEV / "testset-audio-07.wav"), "offset": 1.0, "duration": 5.0},  # doubled
               {"audio_filepath": str(long_path), "offset": 2.0, "duration": 17.0}]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = subprocess.run([sys.executable, "-m", "amela.quality", str(manifest), "-o", str(tmp_path / "run"),
                           "--hop-s", "1", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = [json.loads(line) for line in (tmp_path / "run" / "quality.jsonl").read_text().splitlines()]
    assert [o["audio_filepath"] for o in outputs] == [r["audio_filepath"] for r in records]
    for record, out in zip(records, outputs):
        audio, _ = soundfile.read(record["audio_filepath"], dtype="float32")
        if "offset" in record:
            audio = audio[int(record["offset"] * SR):int((record["offset"] + record["duration"]) * SR)]
        ref = dnsmos.run(audio, SR)
        for ours, theirs in (("dnsmos_sig", "sig_mos"), ("dnsmos_bak", "bak_mos"), ("dnsmos_ovrl", "ovrl_mos"),
                             ("dnsmos_p808", "p808_mos")):
            assert out[ours] == pytest.approx(float(ref[theirs]), abs=1e-4), (record, ours)
    assert [o["dnsmos_windows"] for o in outputs] == [1, 1, 7]  # 8 on the grid, 1 skipped as speechmos skips them


def test_a_short_clip_gets_one_window_off_the_reference_hop():
    clip = (np.random.default_rng(1).standard_normal(3 * SR) * 0.1).astype(np.float32)
    scorer = d.Dnsmos(threads=1)
    assert scorer.score([clip], 9.01)[0].windows == 1
    assert scorer.score([clip], 1.0)[0].windows == int(math.floor(len(d.fill(clip)) / SR) - d.WINDOW_S) + 1


@pytest.mark.parametrize("personalized", [False, True])
def test_one_window_equals_speechmos_with_either_p835_model(personalized):
    from speechmos import dnsmos

    root = Path(__file__).resolve().parents[2] / "amela" / "data" / "samples"
    clip, _ = soundfile.read(root / "phrases_clean.flac", dtype="float32")  # 9.9 s: one window at the 1 s hop
    ours = d.Dnsmos(personalized=personalized).score([clip], 1.0)[0]
    ref = dnsmos.run(clip, SR, model_type="dnsmos_personalized" if personalized else "dnsmos")
    for key in ("sig", "bak", "ovrl", "p808"):
        assert getattr(ours, key) == pytest.approx(float(ref[f"{key}_mos"]), abs=1e-4)


@pytest.mark.parametrize("hop_s", [1.0, 9.01])
def test_block_by_block_equals_the_whole_clip_and_holds_one_window(hop_s, monkeypatch, tmp_path):
    """Through the stage, decoded in 0.7 s blocks: the same windows and scores as the whole clip at once, and the
    buffer never holds much more than one window plus one block."""
    import amela.quality.audio as audio_mod
    from amela.quality.config import QualityConfig
    from amela.quality.stage import QualityStage

    rng = np.random.default_rng(5)
    clip = (rng.standard_normal(int(12.5 * SR)) * 0.05).astype(np.float32)
    path = tmp_path / "clip.wav"
    soundfile.write(path, clip, SR, subtype="FLOAT")
    monkeypatch.setattr(audio_mod, "BLOCK_S", 0.7)
    sizes = []
    real_add = d.RecordWindows.add

    def add(self, block):
        real_add(self, block)
        sizes.append(len(self.buf))
    monkeypatch.setattr(d.RecordWindows, "add", add)
    stage = QualityStage(QualityConfig(hop_s=hop_s, window_batch=2))
    stage.setup()
    (out,) = stage.process([{"audio_filepath": str(path), "duration": 12.5}])
    assert len(sizes) == 18 and max(sizes) <= d.WINDOW + int(0.7 * SR)  # 18 blocks of 0.7 s
    whole = stage.dnsmos.score([clip], hop_s)[0]
    assert out["dnsmos_windows"] == whole.windows == (3 if hop_s == 1.0 else 2)
    for key in ("sig", "bak", "ovrl", "p808"):
        assert out[f"dnsmos_{key}"] == pytest.approx(getattr(whole, key), abs=1e-5)
