"""Cutting long audio: VAD split points first, then gaps between speech segments, else the quietest frame."""
import numpy as np

from amela.asr import chunking

from .conftest import RATE, noise


def _check_cover(pieces, n, max_s):
    assert pieces[0][0] == 0 and pieces[-1][1] == n
    assert all(a < b for a, b in pieces)
    assert all(p[1] == q[0] for p, q in zip(pieces, pieces[1:]))  # contiguous, no overlap, nothing dropped
    assert all(b - a <= max_s * RATE for a, b in pieces)


def test_short_audio_is_one_piece():
    x = noise(10.0, 1)
    assert chunking.plan_pieces(x, RATE, 40.0, 5.0) == [(0, len(x))]


def test_vad_split_points_are_used_latest_first():
    x = noise(100.0, 2)
    pieces = chunking.plan_pieces(x, RATE, 40.0, 5.0, [12.0, 30.0, 38.0, 45.0, 70.0, 95.0])
    _check_cover(pieces, len(x), 40.0)
    # From 0 the latest point within 40 s is 38; from 38, 70 (78 is the window end); from 70 the rest (30 s) fits.
    assert [a / RATE for a, _ in pieces] == [0.0, 38.0, 70.0]


def test_speech_segment_gaps_are_cut_points_when_there_are_no_split_points():
    record = {"speech_segments": [[0.5, 20.0], [22.0, 39.0], [41.0, 60.0]]}
    assert chunking.vad_cut_points(record, 60.0) == [21.0, 40.0]
    assert chunking.vad_cut_points({"split_points": [70.0, 5.0]}, 60.0) == [5.0]  # sorted, inside the audio only


def test_vad_times_are_file_seconds_made_relative_to_the_record_offset():
    # the VAD stage writes times of the audio file: a record starting at 100 s has its segments from 100 s on
    record = {"offset": 100.0, "split_points": [130.0, 95.0, 170.0]}
    assert chunking.vad_cut_points(record, 60.0) == [30.0]
    record = {"offset": 100.0, "speech_segments": [[100.5, 120.0], [122.0, 159.0]]}
    assert chunking.vad_cut_points(record, 60.0) == [21.0]


def test_without_vad_the_cut_falls_in_the_quietest_spot_of_the_search_window():
    gaps = ((33.0, 33.5), (66.0, 66.4))  # true silences a good cutter must find
    x = noise(90.0, 3, gaps=gaps)
    pieces = chunking.plan_pieces(x, RATE, 40.0, 10.0)
    _check_cover(pieces, len(x), 40.0)
    cuts = [a / RATE for a, _ in pieces[1:]]
    assert len(cuts) == 2
    assert 33.0 <= cuts[0] <= 33.5 and 66.0 <= cuts[1] <= 66.4


def test_no_silence_still_cuts_within_the_limit():
    x = noise(130.0, 4)
    pieces = chunking.plan_pieces(x, RATE, 30.0, 5.0)
    _check_cover(pieces, len(x), 30.0)
    assert len(pieces) >= 5


def test_quietest_sample_finds_the_quiet_frame():
    x = np.ones(RATE, dtype=np.float32)
    x[8000:8320] = 0.0  # one silent 20 ms frame
    assert 8000 <= chunking.quietest_sample(x, RATE, 0, RATE) < 8320


def test_join_texts_skips_empty_pieces():
    assert chunking.join_texts(["hello ", "", "  ", "world"]) == "hello world"
