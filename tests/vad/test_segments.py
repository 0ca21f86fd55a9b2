"""Segments, clean-up options, statistics and the split-point rule (pure functions on hand-made decisions)."""
from __future__ import annotations

import numpy as np
import pytest

from amela.config import from_dict
from amela.errors import ConfigError
from amela.vad import segments as sg
from amela.vad.config import VadConfig

F = 0.016


def flags_of(pattern: str) -> np.ndarray:
    return np.array([1 if c == "1" else 0 for c in pattern], np.int32)


def test_raw_segments_from_runs():
    assert sg.raw_segments(flags_of("0110001"), F) == [[1 * F, 3 * F], [6 * F, 7 * F]]
    assert sg.raw_segments(np.array([-1, 1, 1, 0]), F) == [[F, 3 * F]]  # -1: frame the library did not score
    assert sg.raw_segments(flags_of("000"), F) == []


def test_default_cleanup_leaves_raw_segments_unchanged():
    rng = np.random.default_rng(0)
    flags = (rng.random(500) > 0.6).astype(np.int32)
    raw = sg.raw_segments(flags, F)
    assert sg.postprocess([list(s) for s in raw], rng.random(500), F, 500 * F, VadConfig()) == raw


def test_min_silence_merges_and_min_speech_drops():
    segs = [[0.0, 1.0], [1.2, 2.0], [3.0, 3.1], [5.0, 6.0]]
    cfg = VadConfig(min_silence_s=0.25)
    assert sg.postprocess(segs, np.zeros(400), F, 6.4, cfg) == [[0.0, 2.0], [3.0, 3.1], [5.0, 6.0]]
    cfg = VadConfig(min_silence_s=0.25, min_speech_s=0.5)
    assert sg.postprocess(segs, np.zeros(400), F, 6.4, cfg) == [[0.0, 2.0], [5.0, 6.0]]


def test_padding_clips_to_the_file_and_merges_overlaps():
    segs = [[0.1, 1.0], [1.3, 2.0], [4.0, 4.9]]
    out = sg.postprocess(segs, np.zeros(400), F, 5.0, VadConfig(pad_s=0.2))
    assert np.allclose(out, [[0.0, 2.2], [3.8, 5.0]])


def test_max_segment_splits_at_least_speech_like_frame():
    probs = np.full(1000, 0.9, np.float32)
    probs[400] = 0.2  # 6.4 s: inside the window [5, 10] s of a 10 s limit
    probs[700] = 0.1  # 11.2 s
    out = sg.split_long([0.0, 16.0], probs, F, 10.0)
    assert out[0] == [0.0, pytest.approx(400.5 * F)]
    assert all(e - s <= 10.0 + 1e-9 for s, e in out)
    assert out[0][0] == 0.0 and out[-1][1] == 16.0
    assert all(a[1] == b[0] for a, b in zip(out, out[1:]))  # contiguous: nothing lost


def test_max_segment_pieces_respect_the_limit_on_random_probabilities():
    rng = np.random.default_rng(5)
    probs = rng.random(5000).astype(np.float32)
    for limit in (0.5, 2.0, 7.3):
        pieces = sg.split_long([0.3, 70.0], probs, F, limit)
        assert all(limit / 2 - F <= e - s <= limit + 1e-9 for s, e in pieces[:-1])
        assert pieces[-1][1] - pieces[-1][0] <= limit + 1e-9
        cuts = [p[0] for p in pieces[1:]]
        for cut, (s, _) in zip(cuts, pieces):  # each cut is the minimum of its window
            lo, hi = int(np.ceil((s + limit / 2) / F - 0.5)), int(np.floor((s + limit) / F - 0.5))
            assert probs[int(cut / F)] == probs[lo: hi + 1].min()


def test_stats_and_flags():
    stats = sg.file_stats([[1.0, 2.0], [3.0, 3.5]], 10.0, VadConfig())
    assert stats["speech_ratio"] == pytest.approx(0.15)
    assert (stats["max_speech_s"], stats["min_speech_s"], stats["avg_speech_s"]) == (1.0, 0.5, 0.75)
    # silences: 1.0 before, 1.0 between, 6.5 after
    assert (stats["max_nonspeech_s"], stats["min_nonspeech_s"], stats["avg_nonspeech_s"]) == (6.5, 1.0, 2.8333)
    assert not stats["flagged_ns"] and not stats["flagged_1m"]
    assert sg.file_stats([[1.0, 1.2]], 10.0, VadConfig())["flagged_ns"]  # longest speech < 0.3 s
    assert sg.file_stats([[1.0, 1.4]], 100.0, VadConfig())["flagged_ns"]  # ratio < 1 %
    assert sg.file_stats([], 60.0, VadConfig())["flagged_1m"]
    empty = sg.file_stats([], 5.0, VadConfig())
    assert empty["speech_ratio"] == 0 and empty["max_nonspeech_s"] == 5.0 and empty["flagged_ns"]


def test_split_points_rule():
    # speech 0.5-100 s with pauses: 0.5 s at 20, 29, 41 s; 0.2 s at 31 s (too short); 1 s at 58 s; 0.4 s at 88 s
    pauses = [(20.0, 20.5), (29.0, 29.5), (31.0, 31.2), (41.0, 41.5), (58.0, 59.0), (88.0, 88.4)]
    segs, start = [], 0.5
    for a, b in pauses:
        segs.append([start, a])
        start = b
    segs.append([start, 100.0])
    points = sg.split_points(segs, 100.0, 60.0, 30.0, 0.3)
    # target 30 -> 29.25 (31.1 is in a 0.2 s pause); target 59.25 -> 58.5; target 88.5 -> 88.2
    assert points == pytest.approx([29.25, 58.5, 88.2])
    for p in points:  # each point is the middle of a pause of at least 0.3 s
        assert any(abs(p - (a + b) / 2) < 1e-9 and b - a >= 0.3 for a, b in pauses)
    assert sg.split_points(segs, 59.9, 60.0, 30.0, 0.3) == []  # shorter than the minimum: no split points
    assert sg.split_points([[0.0, 100.0]], 100.0, 60.0, 30.0, 0.3) == []  # no pause to split in
    assert sg.split_points(segs, 100.0, 60.0, 30.0, 0.6) == pytest.approx([58.5])  # only the 1 s pause is long


def test_config_checks():
    with pytest.raises(ConfigError, match="hop_size"):
        from_dict(VadConfig, {"hop_size": 200})
    with pytest.raises(ConfigError, match="threshold"):
        from_dict(VadConfig, {"threshold": 1.5})
    with pytest.raises(ConfigError, match="max_segment_s"):
        from_dict(VadConfig, {"max_segment_s": 0.01})
    with pytest.raises(ConfigError, match="unknown option"):
        from_dict(VadConfig, {"hopsize": 256})
    assert from_dict(VadConfig, {"channel": "1", "segments": "true"}).channel == 1
