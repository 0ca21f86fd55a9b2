"""Segmentation options for building datasets: hysteresis, asymmetric padding, length range, confidence, packing."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from amela.config import add_arguments, from_dict, pick
from amela.errors import ConfigError
from amela.vad import segments as sg
from amela.vad.config import VadConfig
from amela.vad.stage import VadStage

from .conftest import run_stage

F = 0.016


def hysteresis_loop(probs, threshold, neg):
    """The plain state machine the vectorised decide() must equal."""
    out, on = [], False
    for p in probs:
        on = p > neg if on else p > threshold
        out.append(on)
    return np.array(out)


def test_hysteresis_starts_above_threshold_and_ends_at_neg_threshold():
    probs = np.array([0.1, 0.6, 0.45, 0.3, 0.45, 0.7, 0.41, 0.4, 0.9])
    assert sg.decide(probs, 0.5, 0.4).astype(int).tolist() == [0, 1, 1, 0, 0, 1, 1, 0, 1]
    assert sg.decide(probs, 0.5).astype(int).tolist() == [0, 1, 0, 0, 0, 1, 0, 0, 1]
    assert np.array_equal(sg.decide(probs, 0.5, 0.5), sg.decide(probs, 0.5))  # neg == threshold: no hysteresis


@pytest.mark.parametrize("seed", range(5))
def test_hysteresis_equals_the_state_machine_on_random_probabilities(seed):
    rng = np.random.default_rng(seed)
    probs = np.clip(np.cumsum(rng.normal(0, 0.08, 3000)) % 1.0, 0, 1).astype(np.float32)
    probs[0] = -1  # an unscored frame (hop 160) is never speech
    for t, neg in ((0.5, 0.35), (0.7, 0.1), (0.3, 0.0), (0.5, 0.499)):
        assert np.array_equal(sg.decide(probs, t, neg), hysteresis_loop(probs, t, neg))


def test_decisions_from_probabilities_equal_the_library_flags(speech16):
    from amela.vad.native import NativeVad, load_library

    for t in (0.3, 0.5, 0.8):
        probs, flags = NativeVad(load_library(), 256, t).run(speech16)
        assert flags.any() and not flags.all()
        assert np.array_equal(sg.decide(probs, t), flags == 1)


def test_asymmetric_padding_pads_merged_neighbours_once():
    cfg = VadConfig(pad_onset_s=0.2, pad_offset_s=0.3)
    out = sg.postprocess([[1.0, 2.0], [2.3, 3.0], [5.0, 6.0]], np.zeros(500), F, 6.1, cfg)
    assert np.allclose(out, [[0.8, 3.3], [4.8, 6.1]])  # 2.0 + 0.3 overlaps 2.3 - 0.2: one segment, padded at its edges
    assert out[0][1] - out[0][0] == pytest.approx((3.0 - 1.0) + 0.2 + 0.3)
    # pad_s is both sides unless one side is given; an explicit 0 wins over pad_s
    assert np.allclose(sg.postprocess([[1.0, 2.0]], np.zeros(500), F, 9, VadConfig(pad_s=0.1)), [[0.9, 2.1]])
    assert np.allclose(sg.postprocess([[1.0, 2.0]], np.zeros(500), F, 9, VadConfig(pad_s=0.1, pad_onset_s=0.0)),
                       [[1.0, 2.1]])


def random_segments(rng, n, duration_s):
    edges = np.sort(rng.uniform(0, duration_s, 2 * n))
    return [[float(a), float(b)] for a, b in edges.reshape(-1, 2) if b > a]


@pytest.mark.parametrize("seed", range(4))
def test_min_and_max_segment_keep_every_length_in_range(seed):
    rng = np.random.default_rng(seed)
    probs = rng.random(20000).astype(np.float32)
    duration_s = len(probs) * F
    segs = random_segments(rng, 60, duration_s)
    cfg = VadConfig(min_segment_s=1.0, max_segment_s=4.0, pad_s=0.05)
    out = sg.postprocess([list(s) for s in segs], probs, F, duration_s, cfg)
    assert out and all(1.0 - 1e-9 <= e - s <= 4.0 + 1e-9 for s, e in out)
    assert all(a[1] <= b[0] for a, b in zip(out, out[1:]))


def test_confidence_is_the_mean_frame_probability():
    probs = np.array([0.1, 0.9, 0.7, 0.2, -1.0, 0.6], np.float32)
    assert sg.confidence([[F, 3 * F], [3 * F, 5 * F], [5 * F, 6 * F]], probs, F) == \
        [pytest.approx(0.8), pytest.approx(0.1), pytest.approx(0.6)]


@pytest.mark.parametrize("seed", range(6))
def test_packing_invariants(seed):
    rng = np.random.default_rng(seed)
    segs = random_segments(rng, 200, 1200.0)
    limit, gap = float(rng.choice([5.0, 12.0, 30.0])), float(rng.choice([0.5, 2.0, 10.0]))
    segs = [p for s in segs for p in sg.split_long(s, np.full(80000, 0.5), F, limit)]  # as the stage does first
    groups = sg.pack([list(s) for s in segs], limit, gap)
    assert [s for g in groups for s in g] == segs  # every segment once, in order: no speech frame lost
    for g in groups:
        assert g[-1][1] - g[0][0] <= limit + 1e-9  # no packed record longer than T
        assert all(b[0] - a[1] <= gap + 1e-9 for a, b in zip(g, g[1:]))
    for a, b in zip(groups, groups[1:]):  # greedy: a group ends only when the next segment does not fit
        assert b[0][0] - a[-1][1] > gap or b[0][1] - a[0][0] > limit


def test_config_checks_for_the_new_options():
    with pytest.raises(ConfigError, match="neg_threshold"):
        from_dict(VadConfig, {"threshold": 0.5, "neg_threshold": 0.6})
    with pytest.raises(ConfigError, match="min_segment_s"):
        from_dict(VadConfig, {"max_segment_s": 4.0, "min_segment_s": 3.0})
    with pytest.raises(ConfigError, match="save_probs"):
        from_dict(VadConfig, {"save_probs": "int4"})
    with pytest.raises(ConfigError, match="pad_onset_s"):
        from_dict(VadConfig, {"pad_onset_s": -1})
    assert VadConfig(pack_to_s=20.0).effective_max_segment_s == 20.0
    assert VadConfig(pack_to_s=20.0, max_segment_s=8.0).effective_max_segment_s == 8.0


def test_save_probs_flag_without_a_value_means_uint8():
    parser = argparse.ArgumentParser()
    add_arguments(parser, VadConfig)
    assert pick(parser.parse_args(["--save-probs"]), VadConfig) == {"save_probs": "uint8"}
    assert pick(parser.parse_args(["--save-probs", "float32"]), VadConfig) == {"save_probs": "float32"}
    assert pick(parser.parse_args([]), VadConfig) == {}


def test_stage_writes_confidence_and_packed_records(speech_wav):
    stage = VadStage(VadConfig(segments=True, pack_to_s=6.0, pack_max_gap_s=1.0, pad_s=0.05))
    stage.setup()
    try:
        out = stage.process([{"audio_filepath": speech_wav, "duration": 0.0, "speaker": "s1", "text": "x"}])[0]
    finally:
        stage.teardown()
    segments, packed = out.streams["segments"], out.streams["packed"]
    assert len(segments) == len(out.record["speech_segments"]) > 2
    assert all(0.0 < s["confidence"] <= 1.0 for s in segments)
    assert all(s["speaker"] == "s1" and "text" not in s for s in segments + packed)
    inner = [seg for p in packed for seg in p["speech_segments"]]
    assert inner == out.record["speech_segments"]  # every speech segment in exactly one packed record
    for p in packed:
        assert p["duration"] <= 6.0 + 1e-4
        assert p["offset"] == p["speech_segments"][0][0]
        assert p["offset"] + p["duration"] == pytest.approx(p["speech_segments"][-1][1], abs=1e-4)
    assert len(packed) < len(segments)


def test_default_options_leave_stage_results_unchanged(stage, speech_wav):
    """The stage now decides from probabilities: with default options that equals the library's own flags."""
    import soundfile

    from amela.vad.native import NativeVad, load_library

    audio, _ = soundfile.read(speech_wav, dtype="int16")
    _, flags = NativeVad(load_library(), 256, 0.5).run(audio)
    out = run_stage(stage, [{"audio_filepath": speech_wav, "duration": 0.0}])[0]
    assert out["speech_segments"] == [[round(s, 4), round(e, 4)] for s, e in sg.raw_segments(flags, F)]


def test_preset_sits_under_config_and_flags(tmp_path):
    from amela.cli import build_parser
    from amela.cli_common import resolve_spec

    def options(*extra):
        args = build_parser("vad").parse_args(["run", "vad", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "r"),
                                               *extra])
        return resolve_spec(args).options

    asr = options("--preset", "asr")
    assert (asr.neg_threshold, asr.pack_to_s, asr.segments, asr.pad_offset_s) == (0.35, 30.0, True, 0.2)
    config = tmp_path / "c.yaml"
    config.write_text("pack_to_s: 20\nthreshold: 0.6\n")
    mixed = options("--preset", "asr", "--config", str(config), "--threshold", "0.55")
    assert (mixed.pack_to_s, mixed.threshold, mixed.neg_threshold) == (20.0, 0.55, 0.35)
    assert options() == VadConfig()
