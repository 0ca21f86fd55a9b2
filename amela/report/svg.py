"""Small inline SVG plots: histograms, the shard timeline, speech strips.

Written by hand rather than through matplotlib because the page must stay small for a million-record run: a
matplotlib SVG histogram is ~30 KB of paths, these are ~2 KB, scale with the page (viewBox) and keep their numbers
readable as <title> tooltips without any script.
"""
from __future__ import annotations

import math
from html import escape

W, H = 420, 190  # histogram viewBox
PAD_L, PAD_R, PAD_T, PAD_B = 46, 10, 24, 34
BLUE, GREEN, RED, ORANGE, GREY, DARK = "#3b75af", "#3a9a4a", "#c8372d", "#e08a1e", "#9aa3ad", "#6b1d1d"


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.2g}"


def histogram(edges: list[float], counts: list[int], title: str, xlabel: str, log_x: bool = False) -> str:
    """Bars for bins [edges[i], edges[i+1]) with `counts[i]`; log_x spaces the bins by their logarithm."""
    total = sum(counts)
    head = (f'<svg class="plot" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">'
            f'<text x="{W / 2}" y="15" class="t">{escape(title)}</text>')
    if not total:
        return head + f'<text x="{W / 2}" y="{H / 2}" class="t">no data</text></svg>'
    pos = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    x0, x1 = pos(edges[0]), pos(edges[-1])
    span = (x1 - x0) or 1.0
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    top = max(counts)
    parts = [head]
    for i, c in enumerate(counts):
        if not c:
            continue
        xa = PAD_L + (pos(edges[i]) - x0) / span * pw
        xb = PAD_L + (pos(edges[i + 1]) - x0) / span * pw
        h = c / top * ph
        parts.append(f'<rect x="{xa:.1f}" y="{PAD_T + ph - h:.1f}" width="{max(xb - xa - 0.6, 0.6):.1f}" '
                     f'height="{h:.1f}" fill="{BLUE}"><title>{_num(edges[i])} to {_num(edges[i + 1])}: '
                     f'{c:,}</title></rect>')
    base = PAD_T + ph
    parts.append(f'<line x1="{PAD_L}" y1="{base}" x2="{W - PAD_R}" y2="{base}" class="ax"/>')
    for frac in (0, 0.5, 1):
        v = 10 ** (x0 + frac * span) if log_x else x0 + frac * span
        x = PAD_L + frac * pw
        parts.append(f'<text x="{x:.1f}" y="{base + 14}" class="l" text-anchor="middle">{_num(v)}</text>')
    parts.append(f'<text x="{PAD_L + pw / 2}" y="{H - 4}" class="l" text-anchor="middle">{escape(xlabel)}</text>')
    parts.append(f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" class="l" text-anchor="end">{top:,}</text>'
                 f'<text x="{PAD_L - 4}" y="{base}" class="l" text-anchor="end">0</text></svg>')
    return "".join(parts)


OUTCOME_COLOURS = {"done": GREEN, "running": BLUE, "interrupted": ORANGE, "error": RED, "killed": DARK}


def timeline(rows: list[tuple[str, list[tuple[float, float, str, str]], bool]], t0: float, t1: float) -> str:
    """rows: (label, [(start, end, outcome, tooltip)], straggler); one line per shard, time on x from t0 to t1."""
    n = len(rows)
    row_h = max(2.0, min(16.0, 560.0 / max(n, 1)))
    lw, width = 64, 1000
    pw = width - lw - 70  # room for a 'straggler' label after the longest bar
    height = n * row_h + 34
    span = max(t1 - t0, 1e-6)
    parts = [f'<svg class="timeline" viewBox="0 0 {width} {height:.0f}" role="img" aria-label="shard timeline">']
    show_labels = row_h >= 9
    for r, (label, bars, straggler) in enumerate(rows):
        y = r * row_h + 4
        if show_labels:
            parts.append(f'<text x="{lw - 6}" y="{y + row_h * 0.75:.1f}" class="l" text-anchor="end">{escape(label)}</text>')
        for start, end, outcome, tip in bars:
            xa = lw + (start - t0) / span * pw
            w = max((end - start) / span * pw, 1.5)
            parts.append(f'<rect x="{xa:.1f}" y="{y:.1f}" width="{w:.1f}" height="{row_h * 0.8:.1f}" '
                         f'fill="{OUTCOME_COLOURS.get(outcome, GREY)}"><title>{escape(label)}: {escape(tip)}</title></rect>')
        if straggler and bars:
            xe = lw + (bars[-1][1] - t0) / span * pw
            parts.append(f'<text x="{xe + 3:.1f}" y="{y + row_h * 0.8:.1f}" class="warn">straggler</text>'
                         if show_labels else
                         f'<rect x="{xe + 2:.1f}" y="{y:.1f}" width="4" height="{row_h * 0.8:.1f}" fill="{ORANGE}"/>')
    base = n * row_h + 8
    parts.append(f'<line x1="{lw}" y1="{base}" x2="{lw + pw}" y2="{base}" class="ax"/>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{lw + frac * pw:.1f}" y="{base + 14}" class="l" text-anchor="middle">'
                     f'{_clock(frac * span, span)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _clock(seconds: float, span: float = 3600.0) -> str:
    if span < 120:  # a short run: seconds with a decimal, not a row of identical minutes
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def strip(duration_s: float, segments: list, split_points: list, label: str) -> str:
    """One file: speech segments as green spans over a grey bar, split points as red ticks, a time axis below."""
    width, lw, h = 1000, 0, 30
    pw = width - 10
    dur = max(duration_s, 1e-6)
    parts = [f'<svg class="strip" viewBox="0 0 {width} {h + 16}" role="img" aria-label="{escape(label)}">',
             f'<rect x="{lw}" y="4" width="{pw}" height="{h - 8}" fill="#e4e7eb"/>']
    for s, e in _merge(segments, dur / pw):  # at most one rectangle per pixel: hour-long files stay small
        parts.append(f'<rect x="{lw + s / dur * pw:.1f}" y="4" width="{max((e - s) / dur * pw, 0.8):.1f}" '
                     f'height="{h - 8}" fill="{GREEN}"><title>speech {s:.2f}-{e:.2f} s</title></rect>')
    for p in split_points:
        x = lw + p / dur * pw
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{h}" stroke="{RED}" stroke-width="2">'
                     f'<title>split point {p:.2f} s</title></line>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        anchor = "start" if frac == 0 else "end" if frac == 1 else "middle"
        parts.append(f'<text x="{lw + frac * pw:.1f}" y="{h + 13}" class="l" text-anchor="{anchor}">'
                     f'{_num(frac * dur)} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _merge(segments: list, min_gap_s: float) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in segments:
        if out and s - out[-1][1] < min_gap_s:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]
