"""A pipeline on the local backend: VAD (segments) -> filter -> ASR (tiny NeMo) -> S2S encode (tiny HuBERT).

Its outputs must equal the three stages run by hand with the same options; reruns skip, resume or rerun by
fingerprint, and never touch a step that did not change.
"""
from __future__ import annotations

import json

import pytest

from amela.cli import main
from amela.pipeline import Pipeline, submit

from .conftest import SAMPLES, records, write_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def by_hand(models, tmp_path_factory):
    """The same chain, one `amela run` at a time, with the filter applied by plain Python."""
    root = tmp_path_factory.mktemp("by_hand")
    common = ["--shards", "2", "--workers", "1", "--no-progress"]
    assert main(["run", "vad", str(SAMPLES), "-o", str(root / "vad"), "--segments", "--min-silence-s", "0.3",
                 "--max-segment-s", "20", *common]) == 0
    kept = [r for r in records(root / "vad" / "vad_segments.jsonl") if r["duration"] >= 0.5]
    assert 0 < len(kept) < len(records(root / "vad" / "vad_segments.jsonl"))  # the filter really filters
    (root / "asr_input.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert main(["run", "asr", str(root / "asr_input.jsonl"), "-o", str(root / "asr"), "--model", models.ctc,
                 "--text-key", "pred_text", "--device", "cpu", *common]) == 0
    assert main(["run", "s2s", str(root / "asr" / "asr.jsonl"), "-o", str(root / "units"), "--mode", "encode",
                 "--dense", models.hubert, "--layer", "2", "--kmeans", models.kmeans, "--device", "cpu",
                 *common]) == 0
    return root


@pytest.fixture(scope="module")
def piped(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("piped")
    yaml = write_pipeline(root / "pipeline.yaml", models)
    submit(str(yaml), str(root / "out"), show_progress=False)
    return root


def test_equals_the_stages_run_by_hand(by_hand, piped):
    out = piped / "out"
    for step, name in (("vad", "vad.jsonl"), ("vad", "vad_segments.jsonl"), ("asr", "asr.jsonl"),
                       ("units", "s2s.jsonl")):
        assert records(out / step / name) == records(by_hand / step / name), f"{step}/{name} differs"
    assert all("units" in r and "pred_text" in r for r in records(out / "units" / "s2s.jsonl"))
    dropped = records(out / "asr" / "filtered.jsonl")
    kept = records(out / "asr" / "filter_kept.jsonl")
    assert len(dropped) + len(kept) == len(records(out / "vad" / "vad_segments.jsonl"))  # nothing vanished
    assert all(d["record"]["duration"] < 0.5 and "duration >= 0.5 is false" in d["reason"] for d in dropped)


def test_status_is_complete(piped, capsys):
    rows = Pipeline.open(str(piped / "out")).status()
    assert [(r.step, r.state) for r in rows] == [("vad", "complete"), ("asr", "complete"), ("units", "complete")]
    assert rows[1].items == len(records(piped / "out" / "asr" / "filter_kept.jsonl"))
    assert main(["pipeline", "status", str(piped / "out")]) == 0
    assert "asr" in capsys.readouterr().out


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_rerun_unchanged_skips_everything(piped, models, capsys):
    out = piped / "out"
    before = _mtimes(out / "vad") | _mtimes(out / "asr") | _mtimes(out / "units")
    submit(str(piped / "pipeline.yaml"), str(out), show_progress=False)
    assert capsys.readouterr().out.count("skipped (unchanged and complete)") == 3
    assert _mtimes(out / "vad") | _mtimes(out / "asr") | _mtimes(out / "units") == before


def test_changed_asr_option_reruns_asr_and_downstream_only(piped, models, capsys, tmp_path):
    out = piped / "out"
    vad_before = _mtimes(out / "vad")
    changed = write_pipeline(tmp_path / "changed.yaml", models, asr_text_key="hyp")
    assert main(["pipeline", "run", str(changed), "-o", str(out), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "vad    skip" in plan and "asr    rerun   changed: options.text_key" in plan
    assert "units  rerun" in plan and "its input step 'asr' reruns" in plan
    assert _mtimes(out / "vad") == vad_before and records(out / "asr" / "asr.jsonl")[0].get("pred_text") is not None

    submit(str(changed), str(out), show_progress=False)
    assert _mtimes(out / "vad") == vad_before  # untouched
    asr = records(out / "asr" / "asr.jsonl")
    assert asr and all("hyp" in r and "pred_text" not in r for r in asr)
    assert all("hyp" in r for r in records(out / "units" / "s2s.jsonl"))
    assert not list(out.glob("*.old-*"))  # the previous runs went once the reruns completed


def test_pipeline_report_funnel_and_steps_in_chromium(piped):
    """ROOT/report.html (written by the run): the funnel, then each step's sections with ids of their own."""
    import re

    from playwright.sync_api import sync_playwright

    from tests.report.test_browser import ARTIFACTS, chromium_path

    out = piped / "out"
    html = (out / "report.html").read_text()
    assert not re.search(r"(src|href)=\"https?://", html)
    ids = re.findall(r'id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) and {"funnel", "vad-overview", "asr-overview", "units-overview"} <= set(ids)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto((out / "report.html").as_uri(), wait_until="load")
        rows = page.evaluate("""() => [...document.querySelectorAll('#funnel tbody tr')].map(
            tr => [...tr.querySelectorAll('td')].map(td => td.innerText.split('\\n')[0]))""")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "pipeline.png"), full_page=False)
        assert page.locator("#asr-overview").is_visible()
        browser.close()
    assert not errors
    assert [r[0] for r in rows] == ["vad", "asr", "units"]
    dropped = len(records(out / "asr" / "filtered.jsonl"))
    segments = len(records(out / "vad" / "vad_segments.jsonl"))
    assert rows[1][3].replace(",", "") == str(segments) and rows[1][4].replace(",", "") == str(dropped)
