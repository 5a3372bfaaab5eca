"""The report: figures (matplotlib, no pyplot) and one self-contained HTML page.

    from llmecon.report import build_report
    build_report(["results/"], "report/", calibration="calibration.json")   # -> report/index.html

figures.py: one function per figure, each returning a matplotlib Figure or raising FigureOmitted with
the reason; html.py: the page (figures inline as SVG, tables, provenance); costs.py: $ per 1M tokens
at measured efficiency across the price sheet (also `llmecon run`'s cost table).
"""

from llmecon.report.figures import FigureOmitted
from llmecon.report.html import build_report, render_report

__all__ = ["FigureOmitted", "build_report", "render_report"]
