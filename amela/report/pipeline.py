"""The report of a pipeline root: the funnel (records and hours into and out of each step, what each filter removed
and why), then each step's own run report, its section ids prefixed with the step's name."""
from __future__ import annotations

import re
from collections import Counter

from ..manifest import iter_jsonl, loads
from ..paths import PipelinePaths, RunPaths
from .html import e, section, table
from .page import document, run_body
from .rundata import load

TOP_REASONS = 3


def is_pipeline_root(path) -> bool:
    pp = PipelinePaths(path)
    return pp.spec.exists() and not RunPaths(pp.root).plan.exists()


def build(root, listening: bool = True) -> str:
    from ..pipeline.spec import load as load_spec

    pp = PipelinePaths(root)
    spec = load_spec(str(pp.spec))
    rows, bodies, nav = [], [], [("funnel", "Funnel")]
    for step in spec.steps:
        paths = pp.step(step.name)
        if not paths.plan.exists():
            rows.append([step.name, step.stage, step.upstream or step.input, "–", "not prepared yet", "–", "–", "–",
                         "–", "–"])
            continue
        data = load(paths.root)
        rows.append(_funnel_row(step, paths, data))
        body, step_nav = run_body(data, listening)
        prefix = f"{step.name}-"
        ids = [i for i, _ in step_nav]
        body = re.sub(r'(id="|href="#)(' + "|".join(map(re.escape, ids)) + r')"', rf'\g<1>{prefix}\g<2>"', body)
        bodies.append(f'<div class="step"><h2 class="stephead" id="step-{e(step.name)}">Step {e(step.name)} '
                      f'<span class="note">({e(step.stage)}, {e(paths.root)})</span></h2>{body}</div>')
        nav.append((f"step-{step.name}", step.name))
    headers = ["step", "stage", "input", "records in", "filtered out (top reasons)", "ok", "failed", "rejected",
               "hours in", "hours out"]
    funnel = section("funnel", "Funnel", table(headers, rows, raw_cols=(4,)),
                     note="Each step's records: what came in (after the step above), what its filter removed and "
                          "why (all of them: ROOT/STEP/filtered.jsonl), and what it produced.")
    return _page(pp, funnel + "".join(bodies), nav)


def _funnel_row(step, paths, data) -> list:
    rec = loads(paths.step_record.read_bytes()) if paths.step_record.exists() else {}
    filt = rec.get("filter") or {}
    dropped = filt.get("dropped", 0)
    reasons = filt.get("reasons") or {}
    if dropped and not reasons and paths.filtered.exists():  # older record: count from the file
        reasons = Counter(r["reason"] for r in iter_jsonl(paths.filtered))
    top = "".join(f"<li>{e(k)}: {v:,}</li>" for k, v in list(dict(reasons).items())[:TOP_REASONS])
    filtered = f"{dropped:,}" + (f"<ul>{top}</ul>" if top else "")
    st = data.stats or {}
    items_in = data.plan.items + data.plan.rejected + dropped
    hours_in = data.plan.audio_seconds / 3600
    source = step.upstream + (f".{step.stream}" if step.stream else "") if step.upstream else step.input
    return [step.name, step.stage, source, items_in, filtered, st.get("ok", sum(s.ok for s in data.shards)),
            st.get("failed", data.failed), data.plan.rejected, round(hours_in, 3),
            round(st["audio_hours"], 3) if "audio_hours" in st else "–"]


def _page(pp: PipelinePaths, body: str, nav: list[tuple[str, str]]) -> str:
    return document(f"AMELA pipeline report: {pp.root.name}", "AMELA pipeline report", str(pp.root), body, nav,
                    css=".stephead{margin:28px 0 0;font-size:22px}")
