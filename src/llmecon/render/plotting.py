"""Plotting helpers of the report's figures: styles, axes, the omitted-figure exception, SVG and PNG output.

Figures are built with the object-oriented API (`matplotlib.figure.Figure`), never pyplot, so nothing here
needs or changes a GUI backend; `to_svg` / `to_png` render with Agg.
"""

from __future__ import annotations

import functools
import io
import math
import re
from typing import Iterable

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from llmecon.units import usd

PHASE_COLORS = {"prefill": "#3465a4", "decode": "#c4302b", "train": "#3a8a4f"}
DATASHEET_STYLE = dict(color="#888888", linestyle="--", linewidth=1.4)
CEILING_STYLE = dict(color="#222222", linestyle="-", linewidth=1.8)
SEQ_CMAP = "viridis"


class FigureOmitted(Exception):
    """The figure cannot be drawn from this data; str(exc) is one sentence saying why."""


def plain_text(fn):
    """Build the figure with mathtext off: labels are full of dollar signs."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)

    return wrapper


# ----------------------------------------------------------------------------------------------
# helpers


def usable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose measurement is fit to plot: status 'ok' and valid, on one device (the report's scaling section
    shows the runs spread over several)."""
    if frame is None or frame.empty:
        return frame.iloc[0:0] if frame is not None else pd.DataFrame()
    ok = frame["status"].eq("ok")
    if "valid" in frame:
        ok &= frame["valid"].fillna(False).astype(bool)
    if "world_size" in frame:
        ok &= frame["world_size"].fillna(1).eq(1)
    return frame[ok]


def finite(series: pd.Series) -> pd.Series:
    s = pd.to_numeric(series, errors="coerce")
    return s[np.isfinite(s)]


def has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and finite(frame[column]).size > 0


def seq_colors(values: Iterable) -> dict:
    values = list(values)
    cmap = colormaps[SEQ_CMAP]
    if len(values) == 1:
        return {values[0]: cmap(0.35)}
    return {v: cmap(0.05 + 0.65 * i / (len(values) - 1)) for i, v in enumerate(values)}


def batch_axis(ax, batches) -> None:
    batches = sorted({int(b) for b in batches})
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.minorticks_off()
    if len(batches) == 1:
        ax.set_xlim(batches[0] / 1.5, batches[0] * 1.5)


def style_axes(ax) -> None:
    ax.grid(True, which="major", color="#e4e4e4", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def usd_formatter():
    return FuncFormatter(lambda v, _pos: usd(v))


def to_svg(fig: Figure) -> str:
    """The figure as an inline <svg> element (no XML prolog), scalable by CSS."""
    buf = io.StringIO()
    # glyphs as paths (the default): the page looks the same on every machine, with no font installed
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "llmecon"}):
        fig.savefig(buf, format="svg", facecolor="white")
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)
    return text


def to_png(fig: Figure, path=None, dpi: int = 110) -> bytes:
    """PNG bytes of the figure (also written to `path` when given)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


def pale(color: str, strength: float = 0.3) -> tuple[float, float, float, float]:
    """The colour mixed with white (opaque), for a face that hatching in the full colour stands out on."""
    r, g, b, _ = to_rgba(color)
    return (1 - strength + strength * r, 1 - strength + strength * g, 1 - strength + strength * b, 1.0)


def truthy(v) -> bool:
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


def is_number(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
