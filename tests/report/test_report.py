"""The report of real runs: self-contained, counts that match the run directory, attempts, failures, samples."""
import re

from amela.manifest import iter_jsonl
from amela.report import rundata

from .conftest import FAIL_ON, N_ITEMS, N_SHARDS


def sections(html: str) -> dict[str, int | None]:
    """section id -> its data-count."""
    return {m[1]: int(m[2]) if m[2] else None
            for m in re.finditer(r'<section id="([^"]+)"(?: data-count="(\d+)")?', html)}


def test_written_after_the_run_and_self_contained(echo_run):
    run, _ = echo_run
    html = (run / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must not fetch anything"
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html  # nothing needs JavaScript
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_overview_and_failure_counts_match_the_run(echo_run):
    run, _ = echo_run
    html = (run / "report.html").read_text()
    s = sections(html)
    assert s["overview"] == N_ITEMS - len(FAIL_ON)  # records in the output manifest
    assert s["failures"] == len(FAIL_ON)
    assert s["shards"] == N_SHARDS
    assert s["listening"] >= 5
    # the two failures differ only by file name: one reason, both files as examples
    assert html.count("asked to fail") >= 2
    data = rundata.load(run)
    assert [(r.error_type, r.count) for r in data.reasons] == [("ItemError", 2)]
    assert data.reasons[0].message == "<file>: asked to fail"
    assert re.search(r"<th>rejected \(invalid input lines\)</th><td>1</td>", html)


def test_attempts_show_the_interrupted_shard(echo_run):
    run, partial = echo_run
    data = rundata.load(run)
    tried = [s for s in data.shards if len(s.attempts) > 1]
    assert tried, "the SIGTERM-interrupted shard was resumed: it has two attempts"
    first = tried[0].attempts[0]
    assert first.outcome == "interrupted" and "SIGTERM" in first.detail
    assert tried[0].attempts[-1].outcome == "done"
    assert all(s.state == "done" and s.attempts[-1].outcome == "done" for s in data.shards)
    assert data.versions["python"] and "amela" in data.versions
    # the report written while the run was interrupted says so
    assert "not merged yet" in partial
    assert "interrupted: Interrupted: SIGTERM" in partial


def test_listening_embeds_playable_opus(echo_run):
    run, _ = echo_run
    html = (run / "report.html").read_text()
    clips = re.findall(r'<audio controls preload="metadata" src="data:audio/ogg;codecs=opus;base64,([A-Za-z0-9+/=]+)"',
                       html)
    assert len(clips) == sections(html)["listening"]
    import base64

    assert all(base64.b64decode(c)[:4] == b"OggS" for c in clips)


def test_vad_section_strips_and_split_points(vad_run):
    html = (vad_run / "report.html").read_text()
    s = sections(html)
    records = list(iter_jsonl(vad_run / "vad.jsonl"))
    assert s["vad"] == len(records)
    assert html.count('<svg class="strip"') == len(records)  # 4 files: every one is in the sample
    splits = sum(len(r["split_points"]) for r in records)
    assert splits and html.count("<title>split point") == splits
    assert "speech ratio per file" in html and "speech segment lengths" in html


def test_report_command_writes_elsewhere_and_can_skip_audio(echo_run, tmp_path):
    from tests.support.helpers import amela

    run, _ = echo_run
    out = tmp_path / "r.html"
    proc = amela("report", run, "-o", out, "--no-listening", check=0)
    assert str(out) in proc.stdout
    html = out.read_text()
    assert "<audio" not in html and "listening" not in sections(html)


def test_not_a_run_directory_is_a_clear_error(tmp_path):
    from tests.support.helpers import amela

    proc = amela("report", tmp_path, check=2)
    assert "not a run directory" in proc.stderr and "Traceback" not in proc.stderr


def test_report_can_be_switched_off(tmp_path):
    import os

    from tests.support.helpers import amela, make_manifest

    from .conftest import STAGE

    manifest = make_manifest(tmp_path / "m.jsonl", 3)
    amela("run", STAGE, manifest, "-o", tmp_path / "a", "--no-report", check=0)
    assert not (tmp_path / "a" / "report.html").exists()
    amela("run", STAGE, manifest, "-o", tmp_path / "b", check=0, env={**os.environ, "AMELA_REPORT": "0"})
    assert not (tmp_path / "b" / "report.html").exists()
    amela("merge", tmp_path / "b", check=0)
    assert (tmp_path / "b" / "report.html").exists()  # the merge job writes it too (unless switched off)


def test_killed_runner_shows_a_killed_attempt_and_a_failed_shard(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.support.helpers import amela, make_manifest

    from .conftest import STAGE

    manifest, run = make_manifest(tmp_path / "m.jsonl", 6), tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "amela", "run", STAGE, str(manifest), "-o", str(run), "--sleep-s",
                             "0.3", "--batch-size", "1", "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not any(p.stat().st_size for p in run.glob("shards/*/output.partial")):
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.3)  # the worker follows its parent (PDEATHSIG)
    data = rundata.load(run)
    (shard,) = data.shards
    assert shard.state == "failed" and [a.outcome for a in shard.attempts] == ["killed"]
    out = tmp_path / "r.html"
    amela("report", run, "-o", out, check=0)
    html = out.read_text()
    assert sections(html)["overview"] == shard.ok >= 1  # what was written before the kill is in the report
    assert "<td>failed</td>" in html and "killed: " in html
