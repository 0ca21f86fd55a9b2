"""HTML pieces: escaped tables (plain HTML, usable without JavaScript), figures, number formats."""
from __future__ import annotations

from html import escape


def e(x) -> str:
    return escape("" if x is None else str(x))


def num(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
    return e(x)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s < 120:
        return f"{seconds:.1f} s"
    if s < 3600 * 2:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def table(headers: list[str], rows: list[list], cls: str = "", caption: str = "", raw_cols: tuple[int, ...] = ()) -> str:
    """A table; cells are escaped unless their column is in raw_cols (already HTML). Numbers align right."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            if i in raw_cols:
                cells.append(f"<td>{c}</td>")
            elif isinstance(c, (int, float)) and not isinstance(c, bool):
                cells.append(f'<td class="n">{num(c)}</td>')
            else:
                cells.append(f"<td>{e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    return (f'<div class="tw"><table class="{cls}">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def kv(pairs: list[tuple[str, object]], cls: str = "kv") -> str:
    """A two-column table of figures; values may be pre-rendered (str) or numbers."""
    rows = "".join(f"<tr><th>{e(k)}</th><td>{num(v) if not isinstance(v, str) else e(v)}</td></tr>" for k, v in pairs)
    return f'<div class="tw"><table class="{cls}"><tbody>{rows}</tbody></table></div>'


def figures(*svgs: str) -> str:
    return '<div class="figs">' + "".join(f"<figure>{s}</figure>" for s in svgs) + "</div>"


def section(sid: str, title: str, body: str, count: int | None = None, note: str = "") -> str:
    attr = f' data-count="{count}"' if count is not None else ""
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{e(sid)}"{attr}><h2>{e(title)}</h2>{note_html}{body}</section>'


def short(text: str | None, limit: int = 300) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit - 1] + "…"
