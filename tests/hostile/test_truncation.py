"""Point 5: truncation is caught where it can be known, in every stage's decode path (amela/audio.py: one reader,
at the rate each stage asks for)."""
import json
import re

import pytest

from amela.audio import read_span
from amela.errors import ItemError

from .helpers import amela, write_wav


def cut(path, fraction=3):
    data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[:len(data) // fraction])
    return out


@pytest.fixture
def cut_wav(tmp_path):
    return cut(write_wav(tmp_path / "long.wav", seconds=30.0, rate=16000))


@pytest.fixture
def cut_flac(tmp_path):
    return cut(write_wav(tmp_path / "long.flac", seconds=30.0, rate=16000, fmt="FLAC"))


def test_a_cut_wav_fails_as_truncated_in_every_reader(cut_wav):
    record = {"audio_filepath": str(cut_wav), "duration": 30.0}
    for read in (lambda: read_span(record, 16000), lambda: read_span(record, 22050)):
        with pytest.raises(ItemError, match=r"truncated: the header promises 30\.000 s of audio, the file holds 9\.99"):
            read()


def test_vad_reports_a_cut_wav_and_where_a_cut_flac_stopped(tmp_path, cut_wav, cut_flac):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(p), "duration": 30.0}) + "\n"
                                for p in (cut_wav, cut_flac)))
    run = tmp_path / "run"
    amela("run", "vad", manifest, "-o", run, "--workers", 0, check=1)
    failures = {f["audio_filepath"]: f["message"] for f in map(json.loads, (run / "failures.jsonl").open())}
    assert "truncated: the header promises 30.000 s" in failures[str(cut_wav)]
    stopped = re.search(r"decoding stopped at ([\d.]+) s", failures[str(cut_flac)])
    assert stopped and 1.0 < float(stopped.group(1)) < 30.0, failures[str(cut_flac)]


def test_a_cut_flac_names_the_second_in_asr_and_s2s(cut_flac):
    record = {"audio_filepath": str(cut_flac), "duration": 30.0}
    for read in (lambda: read_span(record, 16000), lambda: read_span(record, 22050)):
        with pytest.raises(ItemError, match=r"decoding stopped at ([1-9]\d*)\.\d{3} s"):
            read()
