"""One self-contained HTML page from what it is given: `render_report(inputs)` returns the page and
`write_report(inputs, out_dir)` writes ``out_dir/index.html``.

`ReportInputs` holds everything the page shows, computed by the library before it gets here (pipeline.py's
`report_inputs`: the runs loaded once, the calibration, the cost table that is also ``costs.csv``, the
calibrated article, the calibration's predictions): this module only renders. Figures are inline SVG, so
the page works offline and from a mail attachment; a figure that cannot be drawn is replaced by one
sentence saying why.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from llmecon._version import __version__
from llmecon.calibration.document import Calibration
from llmecon.errors import UserError
from llmecon.files import atomic_write_text
from llmecon.records.load import Results
from llmecon.render import sections
from llmecon.render.page import esc
from llmecon.vocab import CALIBRATION_CONVENTION, DEFAULT_PRICE_TERM


@dataclass
class ReportInputs:
    """What the page shows. Only ``results`` is required; every other section says why it is missing."""

    results: Results
    calibration: Calibration | None = None
    calibration_source: str | None = None
    calibration_error: str | None = None     # why there is no calibration (said where one is needed)
    costs: pd.DataFrame | None = None        # estimate.costs.cost_table: the rows of costs.csv
    cost_notes: list[str] = field(default_factory=list)
    term: str = DEFAULT_PRICE_TERM
    article: dict[str, Any] | None = None    # estimate.article.calibrated_article
    article_error: str | None = None
    predicted: pd.DataFrame | None = None    # calibration.fit.predicted_points
    predicted_missing: int = 0
    serving: dict[str, Any] | None = None    # estimate.serving.plan_serve of the first measured model
    serving_error: str | None = None
    title: str | None = None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def render_report(inputs: ReportInputs) -> str:
    """The report page (HTML text)."""
    frame = inputs.results.require_rows()
    calib = inputs.calibration
    convention = calib.flop_convention if calib else CALIBRATION_CONVENTION
    title = inputs.title or f"llmecon: {', '.join(dict.fromkeys(frame['model']))} on " \
                            f"{', '.join(sorted(set(frame['hardware'])))}"
    now = _now()
    parts = [
        ("summary", "Key numbers", sections.summary(frame, convention)),
        ("utilization", "Utilization", sections.utilization(frame, convention)),
        ("roofline", "Roofline", sections.roofline(frame, convention)),
        ("calibration", "Calibration", sections.calibration(calib, inputs.calibration_source, inputs.calibration_error,
                                                            inputs.predicted, inputs.predicted_missing)),
        ("costs", "$ per 1M tokens", sections.costs(calib, inputs.costs, inputs.cost_notes, inputs.term)),
        ("serving", "Serving", sections.serving(inputs.serving, inputs.serving_error)),
        ("article", "The article", sections.article(inputs.article, inputs.article_error)),
        ("scaling", "Beyond one device", sections.scaling(frame)),
        ("measurements", "Every measurement", sections.measurements(frame)),
        ("rows", "Rows not plotted", sections.not_plotted(frame, inputs.results.problems)),
        ("provenance", "Provenance", sections.provenance(frame, inputs.results.runs, calib, inputs.calibration_source,
                                                         [str(p) for p in inputs.results.paths], now)),
    ]
    nav = "".join(f"<a href='#{a}'>{esc(t)}</a>" for a, t, body in parts if body)
    lede = ("What this machine did with these models, measured: how much of its compute and memory bandwidth each "
            "workload used, how well a simple step-time model explains the measurements, and what a million tokens "
            "would cost at that efficiency." + ("" if calib else " (No calibration: the cost sections are omitted.)"))
    page = resources.files("llmecon.render")
    return Template(page.joinpath("template.html").read_text()).substitute(
        title=esc(title), css=page.joinpath("report.css").read_text(), lede=esc(lede), nav=nav,
        sections="\n".join(body for _a, _t, body in parts if body), version=esc(__version__), generated_utc=esc(now))


def write_report(inputs: ReportInputs, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/index.html`` atomically; returns its path."""
    path = Path(out_dir) / "index.html"
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:  # the folder, or a folder above it, is a file
        raise UserError(f"cannot write the report to {path.parent}: {blocked} is not a folder")
    return atomic_write_text(path, render_report(inputs))
