"""vad_stats.csv, vad_report.png and the summary from hand-made output records."""
from __future__ import annotations

import csv
import io

import pytest

from amela.vad.report import CSV_COLUMNS, build_reports, summarize


def records():
    yield {"audio_filepath": "/a/x-y_z.wav", "duration": 100.0, "speech_ratio": 0.5, "speech_s": 50.0,
           "speech_segments": [[0.0, 20.0], [40.0, 70.0]], "split_points": [30.0, 80.5], "flagged_ns": False,
           "flagged_1m": True, "max_speech_s": 30.0, "speaker": "s1"}
    yield {"audio_filepath": "/a/plain name.flac", "offset": 2.0, "duration": 10.0, "speech_ratio": 0.0,
           "speech_s": 0.0, "speech_segments": [], "split_points": [], "flagged_ns": True, "flagged_1m": False}


def test_csv_has_one_row_per_file_whatever_the_names():
    reports = build_reports(records())
    rows = list(csv.DictReader(io.StringIO(reports["vad_stats.csv"].decode())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["audio_filepath"] for r in rows] == ["/a/x-y_z.wav", "/a/plain name.flac"]
    assert rows[0]["split_points"] == "30 80.5" and rows[1]["split_points"] == ""
    assert rows[0]["offset"] == "0" and rows[1]["offset"] == "2.0"
    assert reports["vad_report.png"][:4] == b"\x89PNG"


def test_summary_pools_speech_over_files():
    s = summarize(records())
    assert s["speech_ratio"] == pytest.approx(50 / 110, abs=1e-4)
    assert s["speech_hours"] == pytest.approx(50 / 3600, abs=1e-4)
    assert (s["speech_segments"], s["flagged_ns"], s["flagged_1m"], s["files_with_split_points"]) == (2, 1, 1, 1)


def test_no_outputs_still_give_reports():
    reports = build_reports(iter([]))
    assert reports["vad_stats.csv"].decode().strip() == ",".join(CSV_COLUMNS)
    assert reports["vad_report.png"][:4] == b"\x89PNG"
    assert summarize(iter([]))["speech_ratio"] == 0.0
