"""The report page: overview, shards, failures, stage sections, listening; one HTML string, nothing external."""
from __future__ import annotations

import datetime as dt
import os

from . import listen, svg
from .html import duration, e, kv, section, short, table
from .models import model_rows
from .rundata import RunData
from .stages import sections_for

MAX_SHARD_ROWS = 60  # more shards: the table lists only those worth a look (not clean, slow, retried)


def build(data: RunData, listening: bool = True) -> str:
    body, nav = run_body(data, listening)
    return _page(data, body, nav)


def run_body(data: RunData, listening: bool = True) -> tuple[str, list[tuple[str, str]]]:
    """The sections of one run and their (id, title) for the navigation: what a pipeline report (issue 11) will
    place once per step, after its funnel."""
    sections = sections_for(data.stage, data.options)
    for record in data.outputs():
        for s in sections:
            s.add(record)
    main = sections[0]
    parts = [overview(data, main.n), shards(data), failures(data)]
    parts += [s.html() for i, s in enumerate(sections) if i == 0 or s.n]
    if listening:
        variable, picks = main.listen()
        parts.append(listen.render(main, variable, picks))
    nav = [("overview", "Overview"), ("shards", "Shards"), ("failures", "Failures")]
    nav += [(s.id, s.title) for i, s in enumerate(sections) if i == 0 or s.n]
    nav += [("listening", "Listening")] if listening else []
    return "".join(parts), nav


def _utc(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "–"


def _filtered(data: RunData) -> int:
    """Records a pipeline step's filter dropped before this run (ROOT/<step>/step.json); 0 for a plain run."""
    from ..manifest import loads

    path = data.paths.step_record
    return ((loads(path.read_bytes()).get("filter") or {}).get("dropped", 0)) if path.exists() else 0


def overview(data: RunData, records_seen: int) -> str:
    st, plan = data.stats, data.plan
    ok = st["ok"] if st else sum(s.ok for s in data.shards)
    failed = st["failed"] if st else sum(s.failed for s in data.shards)
    attempts = [a for s in data.shards for a in s.attempts]
    t0 = min((a.start for a in attempts), default=None)
    t1 = max((a.end for a in attempts if a.end), default=None)
    wall_s = st["wall_seconds"] if st else (t1 - t0 if t0 and t1 else None)
    compute_s = sum((a.end or a.start) - a.start for a in attempts)
    audio_s = st["audio_seconds"] if st else None
    cpu_s = sum((s.get("stage") or {}).get("cpu_s", 0) for s in (st or {}).get("per_shard", []))
    state = "complete" if st and st.get("complete") else ("merged, partial" if st else "not merged yet (in progress or "
                                                                                        "unfinished): figures so far")
    counts = [("state", state), ("items in input", plan.items), ("ok", ok), ("failed", failed),
              ("rejected (invalid input lines)", plan.rejected),
              ("filtered (by the pipeline step's where:)", _filtered(data)),
              ("not yet processed", plan.items - ok - failed)]
    times = [("audio in input", duration(plan.audio_seconds)),
             ("audio processed (ok items)", duration(audio_s) if audio_s is not None else "–"),
             ("audio hours processed", round(audio_s / 3600, 3) if audio_s is not None else None),
             ("started", _utc(t0)), ("last activity", _utc(t1)),
             ("wall time", duration(wall_s)), ("compute time (sum of shard attempts)", duration(compute_s)),
             ("worker CPU time", duration(cpu_s) if cpu_s else "–")]
    if wall_s:
        times += [("throughput, items/s", round((ok + failed) / wall_s, 3)),
                  ("throughput, audio s per wall s", round(audio_s / wall_s, 2) if audio_s else None)]
    summary = (st or {}).get("summary") or {}
    body = ('<div class="cols">' + kv(counts) + kv(times) + "</div>")
    if summary:
        body += "<h3>Stage summary</h3>" + kv(list(summary.items()))
    body += (f"<details><summary>config.yaml (stage {e(data.stage)}, input {e(plan.input)})</summary>"
             f"<pre>{e(data.config_text)}</pre></details>")
    vers = [[k, v] for k, v in data.versions.items()]
    body += "<h3>Software</h3>" + (table(["package", "version"], vers) if vers else
                                   "<p>No versions recorded (a run from before AMELA recorded them).</p>")
    if data.version_mismatch:
        body += f'<p class="warn">Versions differed between attempts for: {e(", ".join(data.version_mismatch))}</p>'
    models = model_rows(data.stage, data.options, str(data.paths.root))
    if models:
        body += "<h3>Models</h3>" + table(["option", "file", "size", "sha256", "note"], models, "mono")
    return section("overview", f"Run {os.path.basename(str(data.paths.root))}: {data.stage}", body, records_seen)


def shards(data: RunData) -> str:
    all_attempts = [a for s in data.shards for a in s.attempts]
    n_requeued = sum(1 for s in data.shards if s.requeues or len(s.attempts) > 1)
    interrupted = sum(1 for a in all_attempts if a.outcome == "interrupted")
    stragglers = [s for s in data.shards if s.straggler]
    body = kv([("shards", len(data.shards)), ("done", sum(s.state == "done" for s in data.shards)),
               ("running", sum(s.state == "running" for s in data.shards)),
               ("failed (started, did not finish)", sum(s.state == "failed" for s in data.shards)),
               ("never started", sum(s.state == "missing" for s in data.shards)),
               ("attempts", len(all_attempts)), ("shards tried more than once or requeued", n_requeued),
               ("attempts interrupted (preemption, scancel, signal)", interrupted),
               ("stragglers (slower than twice the median)", len(stragglers))])
    if all_attempts:
        t0 = min(a.start for a in all_attempts)
        t1 = max(a.end or a.start for a in all_attempts)
        rows = [(f"shard {s.index}", [(a.start, a.end or a.start, a.outcome, _tip(a)) for a in s.attempts], s.straggler)
                for s in data.shards]
        legend = "".join(f'<span class="key" style="background:{c}"></span>{e(k)} '
                         for k, c in svg.OUTCOME_COLOURS.items())
        body += (f'<p class="legend">{legend}<span class="warn">straggler</span></p>' + svg.timeline(rows, t0, t1))
    shown = [s for s in data.shards if len(data.shards) <= MAX_SHARD_ROWS or s.state != "done" or s.failed
             or s.straggler or len(s.attempts) > 1 or s.requeues]
    rows = [[s.index, s.state, s.items, s.ok, s.failed, len(s.attempts), s.requeues,
             round(s.wall_s, 1) if s.wall_s else None, ", ".join(sorted({a.host for a in s.attempts if a.host})),
             "; ".join(([] if not s.straggler else ["straggler"])
                       + [f"{a.outcome}: {short(a.detail, 80)}" for a in s.attempts if a.outcome not in ("done", "running")])]
            for s in shown]
    note = "" if len(shown) == len(data.shards) else (f"{len(data.shards) - len(shown)} clean shards (done in one "
                                                      "attempt, no failures, not slow) are left out of the table.")
    body += table(["shard", "state", "items", "ok", "failed", "attempts", "requeues", "wall s", "hosts", "notes"],
                  rows, "shards", note)
    return section("shards", "Shards", body, len(data.shards))


def _tip(a) -> str:
    what = f"{a.outcome}, {_utc(a.start)} for {duration((a.end or a.start) - a.start)}"
    if a.host:
        what += f" on {a.host}"
    if a.slurm_job:
        what += f", SLURM job {a.slurm_job}"
    if a.requeue:
        what += f", requeue #{a.requeue}"
    return what + (f" ({a.detail})" if a.detail else "")


def failures(data: RunData) -> str:
    if not data.failed:
        return section("failures", "Failures", "<p>No item failed.</p>", 0)
    rows = [[r.count, r.error_type, r.message,
             "<ul>" + "".join(f"<li><code>{e(f)}</code><br>{e(short(m, 240))}</li>" for f, m in r.examples) + "</ul>"]
            for r in data.reasons]
    body = table(["count", "error", "reason (normalised)", "examples"], rows, "fail", raw_cols=(3,))
    return section("failures", "Failures", body, data.failed,
                   f"{data.failed:,} failed item(s) in {len(data.reasons)} group(s): messages that differ only by "
                   "file, number or quoted name count as one reason. All of them: failures.jsonl.")


def _page(data: RunData, body: str, nav: list[tuple[str, str]]) -> str:
    return document(f"AMELA {data.stage} run report: {os.path.basename(str(data.paths.root))}", "AMELA run report",
                    str(data.paths.root), body, nav)


def document(title: str, heading: str, where: str, body: str, nav: list[tuple[str, str]], css: str = "") -> str:
    """The whole page: head (inline CSS), header with navigation, body. Shared by run and pipeline reports."""
    links = "".join(f'<a href="#{e(i)}">{e(t)}</a>' for i, t in nav)
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}{css}</style></head><body><header><h1>{e(heading)}</h1>"
            f'<p class="sub">{e(where)} · generated {generated}</p><nav>{links}</nav></header>'
            f"<main>{body}</main></body></html>")


CSS = """
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;
background:#f6f7f9}header{background:#1f3b57;color:#fff;padding:14px 20px}header h1{margin:0;font-size:22px}
.sub{margin:2px 0 8px;opacity:.8;font-size:13px;word-break:break-all}nav a{color:#fff;margin-right:14px;
font-weight:600;text-decoration:none;display:inline-block}main{max-width:1240px;margin:0 auto;padding:8px 16px 40px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 16px 16px;margin:16px 0}
h2{margin:4px 0 10px;font-size:20px}h3{font-size:16px;margin:18px 0 6px}.note{color:#555;font-size:13px}
.tw{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:6px 0;font-size:14px}
th,td{border-bottom:1px solid #e3e6ea;padding:3px 8px;text-align:left;vertical-align:top}thead th{background:#eef1f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}table.kv th{font-weight:500;color:#444;background:none}
table.tx td,table.fail td{max-width:420px;overflow-wrap:anywhere}table.mono td{font-family:ui-monospace,monospace;
font-size:12px;overflow-wrap:anywhere;max-width:520px}caption{caption-side:bottom;text-align:left;color:#666;font-size:12px}
.cols{display:flex;flex-wrap:wrap;gap:0 28px}.figs{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;flex:1 1 300px;max-width:420px}svg{width:100%;height:auto;display:block}
svg .t{font-size:13px;text-anchor:middle;fill:#222}svg .l{font-size:11px;fill:#444}svg .ax{stroke:#888}
svg .warn{font-size:11px;fill:#b35c00}.warn{color:#b35c00;font-weight:600}.stripbox{margin:6px 0}
.sl{font-size:13px;overflow-wrap:anywhere}.band{display:inline-block;background:#e8eef6;border-radius:3px;
padding:0 6px;font-size:12px;margin-right:4px}details{margin:10px 0}pre{background:#f3f4f6;padding:8px;overflow-x:auto;
font-size:12px;white-space:pre-wrap}.legend{font-size:13px}.key{display:inline-block;width:12px;height:12px;
margin:0 4px 0 10px;vertical-align:middle}.listen{display:flex;flex-wrap:wrap;gap:8px 20px;border-top:1px solid #eee;
padding:8px 0}.listen .meta{flex:1 1 320px;min-width:0}.listen pre{margin:4px 0}.path{font-size:11px;color:#666;
overflow-wrap:anywhere}.players{flex:1 1 300px}.clip span{display:block;font-size:12px;color:#555}
audio{width:100%;max-width:360px}.na{color:#a33;font-size:13px}ul{margin:0;padding-left:18px}code{font-size:12px;
overflow-wrap:anywhere}
@media (max-width:600px){main{padding:4px 6px}section{padding:8px}th,td{padding:2px 4px;font-size:13px}}
"""
