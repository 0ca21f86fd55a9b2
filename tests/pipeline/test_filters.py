"""The filter language: what it keeps, why it drops, and what it refuses to parse."""
from __future__ import annotations

import pytest

from amela.errors import ConfigError
from amela.filters import compile_filter
from amela.runner.filter import filter_manifest


@pytest.mark.parametrize("text,record,keep", [
    ("duration >= 0.5 and speech_ratio > 0.1", {"duration": 0.5, "speech_ratio": 0.2}, True),
    ("duration >= 0.5 and speech_ratio > 0.1", {"duration": 0.4, "speech_ratio": 0.2}, False),
    ("0.5 <= duration < 2", {"duration": 2.0}, False),
    ("0.5 <= duration < 2", {"duration": 1.0}, True),
    ("lang in ['de', 'fr']", {"lang": "fr"}, True),
    ("lang not in ['de', 'fr']", {"lang": "fr"}, False),
    ("not has(text) or len(text) > 3", {"text": "hi"}, False),
    ("not has(text) or len(text) > 3", {"text": None}, True),
    ("has(text)", {}, False),
    ("duration - offset < 10", {"duration": 12, "offset": 3}, True),
    ("field('dnsmos-ovrl') >= 3 or flagged == true", {"dnsmos-ovrl": 2.0, "flagged": True}, True),
    ("abs(dc_offset) < 0.01", {"dc_offset": -0.02}, False),
    ("'music' in tags", {"tags": ["speech", "music"]}, True),
])
def test_keeps(text, record, keep):
    assert compile_filter(text).keeps(record) is keep


def test_reasons_name_the_failing_clause_and_values():
    f = compile_filter("duration >= 0.5 and speech_ratio > 0.1")
    assert f.reason({"duration": 3, "speech_ratio": 0.05}) == "speech_ratio > 0.1 is false (speech_ratio=0.05)"
    assert f.reason({"duration": 3}) == "speech_ratio > 0.1: missing field 'speech_ratio'"
    assert "expected a number" in compile_filter("-x > 1").reason({"x": "a"})
    assert "cannot evaluate" in compile_filter("x > 1").reason({"x": "a"})
    assert "expected true or false" in compile_filter("x").reason({"x": 3})
    assert f.fields == {"duration", "speech_ratio"}


@pytest.mark.parametrize("text,fragment", [
    ("__import__('os').system('true')", "Call is not part"),
    ("open('/etc/passwd')", "unknown function open()"),
    ("x.y > 1", "Attribute is not part"),
    ("[i for i in x]", "ListComp is not part"),
    ("lambda: 1", "Lambda is not part"),
    ("x > ", "syntax error"),
    ("x ** 2 > 1", "BinOp is not part"),
    ("", "empty expression"),
    ("has(1)", "has() takes one field name"),
])
def test_refuses_what_is_not_the_language(text, fragment):
    with pytest.raises(ConfigError, match=None) as exc:
        compile_filter(text)
    assert fragment in str(exc.value)


def test_filter_manifest_keeps_every_record_somewhere(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [b'{"audio_filepath": "/a%d.wav", "duration": %d}\n' % (i, i) for i in range(10)]
    src.write_bytes(b"".join(lines) + b"\n")  # a blank last line is not a record
    f = compile_filter("duration >= 4")
    counts = filter_manifest(src, tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl", f.reason, f.text)
    assert (counts.kept, counts.dropped) == (6, 4)
    assert (tmp_path / "kept.jsonl").read_bytes() == b"".join(lines[4:])  # the same bytes, in order
    import json

    dropped = [json.loads(x) for x in (tmp_path / "dropped.jsonl").read_text().splitlines()]
    assert [d["record"]["duration"] for d in dropped] == [0, 1, 2, 3]
    assert all(d["reason"].startswith("duration >= 4 is false") and d["where"] == "duration >= 4" for d in dropped)


def test_reasons_are_counted_without_the_records_values(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"audio_filepath": "/a{i}.wav", "duration": {i / 10}}}\n' for i in range(6)))
    f = compile_filter("duration >= 0.3 and not (duration == 0.5)")
    counts = filter_manifest(src, tmp_path / "k.jsonl", tmp_path / "d.jsonl", f.reason, f.text)
    assert counts.to_dict()["reasons"] == {"duration >= 0.3 is false": 3, "not (duration == 0.5) is false": 1}
