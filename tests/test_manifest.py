import json
import os

import numpy as np
import pytest
import soundfile as sf

from amela.errors import ManifestError
from amela.manifest import atomic_open, read_manifest, scan_directory, write_jsonl_atomic


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"audio_filepath": "/a/1.wav", "duration": 1.5, "text": "hi", "speaker": "s1"})


@pytest.mark.parametrize("line, expected", [
    ("{not json", "malformed JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"duration": 1}', "missing 'audio_filepath'"),
    ('{"audio_filepath": "rel/a.wav", "duration": 1}', "must be absolute"),
    ('{"audio_filepath": "", "duration": 1}', "non-empty string"),
    ('{"audio_filepath": "/a.wav"}', "missing 'duration'"),
    ('{"audio_filepath": "/a.wav", "duration": "3"}', "must be a number"),
    ('{"audio_filepath": "/a.wav", "duration": true}', "must be a number"),
    ('{"audio_filepath": "/a.wav", "duration": -1}', "must be >= 0"),
    ('{"audio_filepath": "/a.wav", "duration": NaN}', None),  # orjson rejects NaN as JSON: malformed
    ('{"audio_filepath": "/a.wav", "duration": 1e999}', None),
    ('{"audio_filepath": "/a.wav", "duration": 1, "offset": -0.5}', "'offset' must be >= 0"),
])
def test_each_bad_line_is_named_by_file_and_line(tmp_path, line, expected):
    path = write_lines(tmp_path / "m.jsonl", [GOOD, line, GOOD.replace("1.wav", "2.wav")])
    records, problems = read_manifest(path)
    assert [r["audio_filepath"] for r in records] == ["/a/1.wav", "/a/2.wav"]
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{path}:2: ")
    if expected:
        assert expected in problems[0].message
    assert problems[0].text == line


def test_duplicates_name_the_first_line(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [GOOD, "", GOOD])
    records, problems = read_manifest(path)
    assert len(records) == 1
    assert str(problems[0]) == f"{path}:3: duplicate of line 1 (/a/1.wav)"


def test_same_file_different_offsets_are_not_duplicates(tmp_path):
    lines = [json.dumps({"audio_filepath": "/a.wav", "duration": 1, "offset": o}) for o in (0, 1, 2)]
    records, problems = read_manifest(write_lines(tmp_path / "m.jsonl", lines))
    assert len(records) == 3 and not problems


def test_unknown_fields_are_kept(tmp_path):
    records, _ = read_manifest(write_lines(tmp_path / "m.jsonl", [GOOD]))
    assert records[0] == json.loads(GOOD)


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot read manifest"):
        read_manifest(tmp_path / "nope.jsonl")


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out.jsonl"
    write_jsonl_atomic(target, [{"a": 1}])
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == '{"a":1}\n'
    assert os.listdir(tmp_path) == ["out.jsonl"]  # no temporary left behind


def test_scan_directory_reads_durations_from_headers(tmp_path):
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "b.wav", np.zeros(16000, dtype=np.int16), 16000)
    sf.write(tmp_path / "sub" / "a.flac", np.zeros(24000, dtype=np.int16), 8000)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "broken.wav").write_bytes(b"this is not a wav file")
    records, _ = scan_directory(tmp_path)
    by_name = {os.path.basename(r["audio_filepath"]): r for r in records}
    assert set(by_name) == {"b.wav", "a.flac", "broken.wav"}
    assert all(os.path.isabs(r["audio_filepath"]) for r in records)
    assert by_name["b.wav"]["duration"] == 1.0 and by_name["a.flac"]["duration"] == 3.0
    assert "header_error" in by_name["broken.wav"]  # listed, so the stage reports it instead of it vanishing


def test_scan_directory_without_audio_fails(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ManifestError, match="no audio files"):
        scan_directory(tmp_path)


def test_shipped_examples_match_the_docs():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "manifests"
    records, problems = read_manifest(root / "example.jsonl")
    assert len(records) == 3 and not problems
    records, problems = read_manifest(root / "invalid-example.jsonl")
    assert len(records) == 1 and [p.line for p in problems] == [2, 3, 4, 5, 6]
