"""Small HTML helpers for the report page: escaping, tables, sections, inline figures."""

from __future__ import annotations

import html
import math
from typing import Any, Callable, Iterable, Sequence

from llmecon.render import figures as F
from llmecon.units import pct


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Raw:
    """Pre-escaped HTML for a table cell."""

    def __init__(self, html_text: str):
        self.html = html_text


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, row_classes: Sequence[str] | None = None) -> str:
    """A <table>; cells are escaped; numeric cells (or strings starting with a digit or $) right-aligned."""
    out = ["<div class='table-wrap'><table><thead><tr>"]
    out += [f"<th>{esc(c)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(list(rows)):
        cls = f" class='{esc(row_classes[i])}'" if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>")
        for v in row:
            if isinstance(v, Raw):
                out.append(f"<td>{v.html}</td>")
                continue
            text = "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else str(v)
            numeric = is_num(v) or (isinstance(v, str) and text[:1] in "$0123456789" and " · " not in text)
            out.append(f"<td class='num'>{esc(text)}</td>" if numeric else f"<td>{esc(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{esc(anchor)}'><h2>{esc(title)}</h2>{body}</section>"


def para(text: str, cls: str = "explain") -> str:
    return f"<p class='{cls}'>{text}</p>"


def figure(make: Callable[[], Any], name: str, caption: str | None = None) -> str:
    """The figure inline as SVG, or the sentence saying why it is omitted."""
    try:
        fig = make()
    except F.FigureOmitted as exc:
        return omitted(esc(exc))
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure class='plot' data-figure='{esc(name)}'>{F.to_svg(fig)}{cap}</figure>"


def omitted(reason_html: str) -> str:
    """The sentence that stands in for a figure that cannot be drawn (counted by the page's script)."""
    return f"<p class='omitted figure-omitted'>Figure omitted: {reason_html}</p>"


def percent(v) -> str:
    return pct(v) if is_num(v) else "—"
