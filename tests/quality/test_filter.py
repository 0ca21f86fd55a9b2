"""The filter language on quality records, and `amela filter` end to end (kept, filtered.jsonl, reasons, errors)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from amela.errors import ConfigError
from amela.filters import compile_filter

CLEAN = {"audio_filepath": "/a.wav", "duration": 4.0, "dnsmos_ovrl": 3.4, "clipping_ratio": 0.0, "lang": "de"}
NOISY = {"audio_filepath": "/b.wav", "duration": 6.0, "dnsmos_ovrl": 2.1, "clipping_ratio": 0.0, "lang": "fr"}
CLIPPED = {"audio_filepath": "/c.wav", "duration": 2.0, "dnsmos_ovrl": 3.9, "clipping_ratio": 0.02, "lang": "de"}
UNSCORED = {"audio_filepath": "/d.wav", "duration": 1.0, "lang": "de"}  # e.g. a --no-dnsmos run
RECORDS = [CLEAN, NOISY, CLIPPED, UNSCORED]


@pytest.mark.parametrize("text,kept", [
    ("dnsmos_ovrl >= 3.0 and clipping_ratio < 0.001", ["/a.wav"]),
    ("dnsmos_ovrl >= 3.0 or duration > 5", ["/a.wav", "/b.wav", "/c.wav"]),
    ("not dnsmos_ovrl < 3.0", ["/a.wav", "/c.wav"]),
    ("lang in ['fr', 'it']", ["/b.wav"]),
    ("lang not in ['fr']", ["/a.wav", "/c.wav", "/d.wav"]),
    ("not has(dnsmos_ovrl)", ["/d.wav"]),
    ("has(dnsmos_ovrl) and 2 <= duration < 6", ["/a.wav", "/c.wav"]),
])
def test_the_language_on_quality_records(text, kept):
    f = compile_filter(text)
    assert [r["audio_filepath"] for r in RECORDS if f.keeps(r)] == kept


def test_reasons_say_which_clause_failed_and_why():
    f = compile_filter("dnsmos_ovrl >= 3.0 and clipping_ratio < 0.001")
    assert f.reason(CLEAN) is None
    assert f.reason(NOISY) == "dnsmos_ovrl >= 3.0 is false (dnsmos_ovrl=2.1)"
    assert f.reason(CLIPPED) == "clipping_ratio < 0.001 is false (clipping_ratio=0.02)"
    assert f.reason(UNSCORED) == "dnsmos_ovrl >= 3.0: missing field 'dnsmos_ovrl'"


@pytest.mark.parametrize("text", ["__import__('os').system('touch /tmp/x')", "open('/etc/passwd')",
                                  "dnsmos_ovrl.real > 1", "[x for x in lang]", "(lambda: 1)()", "x ** 2 > 1"])
def test_nothing_is_evaluated_as_code(text):
    with pytest.raises(ConfigError, match="filter"):
        compile_filter(text)


@pytest.fixture
def manifest(tmp_path) -> Path:
    path = tmp_path / "quality.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def test_amela_filter_writes_kept_and_filtered_with_reasons(amela_cmd, manifest, tmp_path):
    out = tmp_path / "out" / "clean.jsonl"
    proc = subprocess.run([*amela_cmd, "filter", str(manifest), "-o", str(out), "--where",
                           "dnsmos_ovrl >= 3.0 and clipping_ratio < 0.001"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x) for x in out.read_text().splitlines()] == [CLEAN]
    dropped = [json.loads(x) for x in (out.parent / "filtered.jsonl").read_text().splitlines()]
    assert [d["record"] for d in dropped] == [NOISY, CLIPPED, UNSCORED]  # every record is somewhere, in order
    assert [d["reason"].split(" ")[0] for d in dropped] == ["dnsmos_ovrl", "clipping_ratio", "dnsmos_ovrl"]
    assert "kept 1 of 4 record(s)" in proc.stdout and "dnsmos_ovrl >= 3.0 is false" in proc.stdout


def test_amela_filter_warns_about_a_field_no_record_has(amela_cmd, manifest, tmp_path):
    proc = subprocess.run([*amela_cmd, "filter", str(manifest), "-o", str(tmp_path / "k.jsonl"),
                           "--dropped", str(tmp_path / "d.jsonl"), "--where", "dnsmos_ovr >= 3"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "dnsmos_ovr appear in no record" in proc.stdout
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 4
    proc = subprocess.run([*amela_cmd, "filter", str(manifest), "-o", str(tmp_path / "k.jsonl"),
                           "--dropped", str(tmp_path / "d.jsonl"), "--where", "not has(header_error)"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "kept 4 of 4" in proc.stdout and "warning" not in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["--where", "dnsmos_ovrl >="], "syntax error"),
    (["--where", "eval('1')"], "unknown function eval()"),
    (["--where", "x > 1", "--dropped", "{out}"], "would both go to"),
])
def test_amela_filter_usage_errors_exit_2_and_write_nothing(amela_cmd, manifest, tmp_path, args, message):
    out = tmp_path / "k.jsonl"
    args = [a.replace("{out}", str(out)) for a in args]
    proc = subprocess.run([*amela_cmd, "filter", str(manifest), "-o", str(out), *args], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_amela_filter_reads_a_run_directory(amela_cmd, tmp_path):
    proc = subprocess.run([*amela_cmd, "filter", str(tmp_path), "-o", str(tmp_path / "k.jsonl"), "--where", "x > 1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
