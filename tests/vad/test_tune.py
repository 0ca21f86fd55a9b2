"""`amela vad tune`: label formats, 10 ms scoring, grid search with a known best threshold, cross-validation."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from amela.config import from_dict
from amela.errors import ConfigError
from amela.vad import labels as lb
from amela.vad import scoring as sc
from amela.vad.config import VadConfig
from amela.vad.segments import decide, raw_segments

from .conftest import SR, write

F = 0.016
TRUE_THRESHOLD = 0.7


def amela(*args, check=0):
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def test_rttm_any_speaker_is_speech_and_bad_lines_name_the_line(tmp_path):
    rttm = tmp_path / "a.rttm"
    rttm.write_text("SPKR-INFO a 1 <NA> <NA> <NA> unknown s1 <NA> <NA>\n"
                    "SPEAKER a 1 1.00 2.00 <NA> <NA> s1 <NA> <NA>\n"
                    "SPEAKER a 1 2.50 1.00 <NA> <NA> s2 <NA> <NA>\n"  # overlaps s1: one stretch of speech
                    "SPEAKER a 1 5.00 0.50 <NA> <NA> s1 <NA> <NA>\n")
    assert lb.read_rttm(str(rttm)) == [[1.0, 3.5], [5.0, 5.5]]
    rttm.write_text("SPEAKER a 1 1.00 2.00 <NA> <NA> s1 <NA> <NA>\nSPEAKER a 1 x\n")
    with pytest.raises(ConfigError, match=r"a\.rttm:2: not an RTTM SPEAKER line"):
        lb.read_rttm(str(rttm))


def test_scv_label_one_is_speech(tmp_path):
    scv = tmp_path / "a.scv"
    scv.write_text("a,0,1.2,0,1.2,3.4,1,3.4,4,0,4,5,1\n")
    assert lb.read_scv(str(scv)) == [[1.2, 3.4], [4.0, 5.0]]
    scv.write_text("a,0,1.2\n")
    with pytest.raises(ConfigError, match="groups of three"):
        lb.read_scv(str(scv))


def test_scoring_on_the_10ms_grid():
    item = sc.scored("x", np.zeros(100, np.float32), 1.0, 0.0, [[0.2, 0.5]])
    assert len(item.times) == 100 and item.truth.sum() == 30
    pred = sc.inside([[0.3, 0.6]], item.times)
    assert sc.counts(pred, item.truth).tolist() == [20, 10, 10, 60]
    assert sc.prf([20, 10, 10, 60]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert sc.objective([20, 10, 10, 60], "accuracy") == pytest.approx(0.8)
    assert sc.objective([20, 10, 10, 60], "f1") == pytest.approx(2 / 3)
    # a span: labels in file seconds, scoring from the span's start
    span = sc.scored("y", np.zeros(50, np.float32), 0.5, 10.0, [[10.1, 10.2], [11.0, 12.0]])
    assert span.truth.sum() == 10


def test_cross_validation_scores_each_fold_with_options_chosen_elsewhere():
    # 4 files, 2 option sets: set 0 is perfect on files 0-1 only, set 1 is decent everywhere
    m = np.zeros((4, 2, 4), np.int64)
    m[:, 0] = [[10, 0, 0, 90], [10, 0, 0, 90], [0, 10, 10, 80], [0, 10, 10, 80]]
    m[:, 1] = [[8, 2, 2, 88]] * 4
    held, chosen = sc.cross_validate(m, "f1", 2)  # folds {0, 2} and {1, 3}
    assert chosen == [1, 1]
    assert held.tolist() == [32, 8, 8, 352]
    assert sc.best_index(m.sum(axis=0), "f1") == 1


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, speech16):
    """6 files whose labels are the model's own decisions at threshold 0.7: the best threshold is known."""
    from amela.vad.native import NativeVad, load_library

    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(9)
    vad = NativeVad(load_library(), 256, 0.5)
    for i in range(6):
        start = int(rng.integers(0, len(speech16) - 6 * SR))
        piece = speech16[start: start + int(rng.uniform(4, 6) * SR)].astype(np.float32)
        piece = np.clip(piece + rng.standard_normal(len(piece)).astype(np.float32) * 150, -32768, 32767)
        piece = piece.astype(np.int16)
        write(root / f"c{i}.wav", piece, subtype="PCM_16")
        probs, _ = vad.run(piece)
        speech = raw_segments(decide(probs, TRUE_THRESHOLD), F)
        if i % 2:
            (root / f"c{i}.rttm").write_text("".join(f"SPEAKER c{i} 1 {s:.3f} {e - s:.3f} <NA> <NA> spk <NA> <NA>\n"
                                                     for s, e in speech))
        else:
            cells = [f"{s:.3f},{e:.3f},1" for s, e in speech]
            (root / f"c{i}.scv").write_text(",".join([f"c{i}", *cells]) + "\n")
    write(root / "unlabelled.wav", speech16[: SR], subtype="PCM_16")
    grid = root.parent / "grid.yaml"
    grid.write_text(yaml.safe_dump({"threshold": [0.3, 0.5, 0.7, 0.9], "min_silence_s": [0.0, 0.3]}))
    return root, grid


def test_tune_finds_the_known_best_threshold(labelled, tmp_path):
    root, grid = labelled
    out = tmp_path / "tune"
    proc = amela("vad", "tune", root, "-o", out, "--grid", grid, "--folds", 3, "--workers", 1, "--no-progress")
    assert "unlabelled.wav" in proc.stderr  # left out, and said so
    summary = json.loads((out / "tune_summary.json").read_text())
    assert summary["files"] == 6 and summary["option_sets"] == 8
    assert summary["best_options"] == {"threshold": TRUE_THRESHOLD, "min_silence_s": 0.0}
    assert summary["best"]["f1"] == 1.0 and summary["default"]["f1"] < 1.0
    assert summary["cv"]["folds"] == 3 and summary["cv"]["f1"] == 1.0
    assert all(c["threshold"] == TRUE_THRESHOLD for c in summary["cv"]["chosen"])
    assert summary["importance"][0][0] == "threshold"
    best = from_dict(VadConfig, yaml.safe_load((out / "best.yaml").read_text()))  # usable as --config
    assert best.threshold == TRUE_THRESHOLD
    import csv

    rows = list(csv.DictReader((out / "tune_results.csv").open()))
    assert len(rows) == 8 and (rows[0]["threshold"], rows[0]["min_silence_s"], rows[0]["f1"]) == ("0.7", "0", "1.0000")
    assert [float(r["f1"]) for r in rows] == sorted((float(r["f1"]) for r in rows), reverse=True)
    assert (out / "tune_report.png").read_bytes()[:4] == b"\x89PNG"
    # the same labels as a manifest with ref_segments, scored from the stored probabilities (no model run)
    manifest = tmp_path / "ref.jsonl"
    with open(manifest, "w") as fh:
        for it in lb.from_directory(str(root))[0]:
            fh.write(json.dumps({**it.record, "ref_segments": it.speech}) + "\n")
    amela("vad", "tune", manifest, "-o", tmp_path / "tune2", "--grid", grid, "--folds", 0,
          "--probs-from", out / "vad_run")
    again = json.loads((tmp_path / "tune2" / "tune_summary.json").read_text())
    assert again["best"] == summary["best"] and "cv" not in again
    # best.yaml drives a resegment of the stored probabilities: its segments are the labels
    amela("vad", "resegment", out / "vad_run", "-o", tmp_path / "reseg", "--config", out / "best.yaml", "--workers", 0,
          "--no-progress")
    for rec in map(json.loads, (tmp_path / "reseg" / "vad.jsonl").read_text().splitlines()):
        stem = rec["audio_filepath"][:-4]
        ref = lb.read_rttm(stem + ".rttm") if rec["audio_filepath"].endswith(("1.wav", "3.wav", "5.wav")) \
            else lb.read_scv(stem + ".scv")
        assert np.allclose(rec["speech_segments"], ref, atol=1e-3)


def test_grid_with_an_unknown_option_is_refused(labelled, tmp_path):
    root, _ = labelled
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresold: [0.5]\n")
    err = amela("vad", "tune", root, "-o", tmp_path / "t", "--grid", bad, "--probs-from", tmp_path, check=2).stderr
    assert "'thresold' cannot be tuned" in err and "threshold" in err
