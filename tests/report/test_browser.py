"""The report in a real headless Chromium (Debian's package, driven by Playwright; nothing is downloaded): no console
errors, each section with the run's counts, an audio element that loads and decodes its source, readable at
1280 px and at phone width, tables without JavaScript. Screenshots go to $AMELA_TEST_ARTIFACTS (default
test-artifacts/report/)."""
import os
import shutil
from pathlib import Path

import pytest

from amela.manifest import iter_jsonl

from .conftest import FAIL_ON, N_ITEMS, N_SHARDS, ROOT

ARTIFACTS = Path(os.environ.get("AMELA_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "report"


def chromium_path() -> str:
    path = os.environ.get("AMELA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no chromium on PATH: install Debian's package (scripts/setup.sh does: apt-get install chromium) "
                    "or set AMELA_CHROMIUM to a Chromium binary")
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])  # root in containers
        yield b
        b.close()


def open_page(browser, path: Path, width: int, js: bool = True):
    ctx = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=js)
    page = ctx.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: problems.append(f"network request: {r.url}") if r.url.startswith("http") else None)
    page.goto(path.as_uri(), wait_until="load")
    return ctx, page, problems


def counts(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('section')].map(
        s => [s.id, s.dataset.count === undefined ? null : Number(s.dataset.count)]))""")


def test_echo_report_in_chromium(browser, echo_run):
    run, _ = echo_run
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ctx, page, problems = open_page(browser, run / "report.html", 1280)
    got = counts(page)
    assert got["overview"] == N_ITEMS - len(FAIL_ON) and got["failures"] == len(FAIL_ON)
    assert got["shards"] == N_SHARDS and got["listening"] >= 5
    # every section is laid out and visible
    for sid in ("overview", "shards", "failures", "records", "listening"):
        box = page.locator(f"section#{sid}").bounding_box()
        assert box and box["width"] > 900 and box["height"] > 40, sid
    bars = page.locator("svg.timeline rect")
    assert bars.count() == sum(1 for _ in run.glob("shards/*/attempts.jsonl")) + 1  # 3 shards, one tried twice
    assert page.locator("section#failures tbody tr").count() == 1  # both failures are one reason
    # an audio element loads, decodes and can seek in its embedded source
    duration = page.evaluate("""() => new Promise(resolve => {
        const a = document.querySelector('section#listening audio');
        a.addEventListener('loadedmetadata', () => resolve(a.duration), {once: true});
        a.addEventListener('error', () => resolve(-1), {once: true});
        a.load(); })""")
    assert 0.5 <= duration <= 5.5, duration
    page.screenshot(path=str(ARTIFACTS / "echo_1280.png"), full_page=True)
    assert problems == []
    ctx.close()


def test_vad_report_at_phone_width_and_without_javascript(browser, vad_run):
    records = list(iter_jsonl(vad_run / "vad.jsonl"))
    ctx, page, problems = open_page(browser, vad_run / "report.html", 390)
    assert counts(page)["vad"] == len(records)
    # nothing wider than the phone: wide tables scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    strip = page.locator("svg.strip").first.bounding_box()
    assert strip and 300 <= strip["width"] <= 390
    page.screenshot(path=str(ARTIFACTS / "vad_390.png"), full_page=True)
    assert problems == []
    ctx.close()

    ctx, page, problems = open_page(browser, vad_run / "report.html", 1280, js=False)
    rows = page.locator("section#vad table").first.locator("tr")
    assert rows.count() == 7 and page.locator("section#vad table").first.is_visible()
    assert page.locator("details pre").count() == 1  # the config opens without a script
    page.locator("details summary").first.click()
    assert "threshold" in page.locator("details pre").inner_text()
    page.screenshot(path=str(ARTIFACTS / "vad_1280_nojs.png"), full_page=True)
    assert problems == []
    ctx.close()
