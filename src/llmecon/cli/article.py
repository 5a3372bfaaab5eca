"""`llmecon article`: the 2023 article's tables, recomputed, each figure beside the article's printed one."""

from __future__ import annotations

import math

import click

_PERCENT_UNITS = ("fraction",)


def format_value(value: float | None, unit: str) -> str:
    """A figure for humans, to 4 significant digits, in the unit's natural form."""
    from llmecon.units import si

    if value is None or not math.isfinite(value):
        return "—"
    if unit.startswith("USD"):
        suffix = unit[3:].replace("/", " / ").strip()
        a = abs(value)
        if a >= 1e9:
            text = f"${value / 1e9:.4g}B"
        elif a >= 1e6:
            text = f"${value / 1e6:.4g}M"
        elif a >= 1e3:
            text = f"${value:,.0f}"
        else:
            text = f"${value:.4g}"
        return f"{text} {suffix}".strip()
    if unit in _PERCENT_UNITS:
        return f"{100 * value:.4g}%"
    if unit == "x":
        return f"{value:.4g}x"
    if unit in ("FLOP", "B"):
        return si(value, unit, 4)
    if unit == "nats":
        return f"{value:.4f}"
    if unit == "h":
        return f"{value:,.0f} h"
    if unit == "s":
        return f"{value:.4g} s"
    if unit in ("searches/year",):
        return si(value, "", 4) + " / year"
    if abs(value) >= 1e4:
        return f"{value:,.0f} {unit}"
    return f"{value:,.4g} {unit}"


def _agrees(flag: bool | None) -> str:
    return {True: "✓", False: "≠", None: ""}[flag]


@click.command("article")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: raw values in USD, FLOPs, bytes, hours.")
@click.option("--calibration", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also print the inference and training tables at the efficiency this calibration predicts.")
@click.option("--transfer", is_flag=True,
              help="With --calibration: apply it to the article's A100 and TPU v4 though it was measured elsewhere.")
def article(as_json: bool, calibration: str | None, transfer: bool) -> None:
    """The article's tables ("The Economics of Large Language Models", Sunyan, Jan 2023), recomputed.

    Each figure: our exact value, the article's printed figure, whether they agree (✓ within the printed
    rounding, ≠ where the article rounds loosely — the note says how), and its source tag: TEXT
    (stated in the article), INFERRED (rebuilt or worked back), EXTERNAL (from a source it cites).
    Derivations: numbers.md §3; discrepancies: §5.
    """
    from llmecon.cli._common import console, echo_json, table
    from llmecon.costmodel.article import reproduce_article

    reproduction = reproduce_article()
    calibrated = None
    if calibration:
        from llmecon.calibrate.article import calibrated_article
        from llmecon.calibrate.schema import load_calibration

        calibrated = calibrated_article(load_calibration(calibration), transfer=transfer)
    elif transfer:
        from llmecon.errors import UserError

        raise UserError("--transfer only applies with --calibration FILE")
    if as_json:
        echo_json(reproduction.to_dict() | ({"calibrated": calibrated} if calibrated else {}))
        return
    out = console()
    if not out.is_terminal:  # a pipe or a file: rich's default 80 columns would crop units ("accelerator-h…")
        out.width = max(out.width, 160)
    for t in reproduction.tables:
        rows, notes = [], []
        for f in t.rows:
            label = f.label
            if f.exact_note:
                notes.append(f.exact_note)
                label += f" [{len(notes)}]"
            article_figure = f"{f.printed_text} {_agrees(f.agrees)}" if f.printed_text else ""
            rows.append((label, format_value(f.value, f.unit), article_figure, f.source_tag, f.reproduces))
        out.print(table(f"{t.title}  [{t.section}]", ["figure", "exact", "article", "tag", "reproduces"], rows))
        out.print(t.note, soft_wrap=True)
        for i, note in enumerate(notes, start=1):
            out.print(f"  [{i}] {note}", soft_wrap=True)
        out.print()
    loose = [f for f in reproduction.figures() if f.agrees is False]
    out.print(f"{len(reproduction.figures())} figures; {sum(f.agrees is True for f in reproduction.figures())} "
              f"agree with the article's printed figure; {len(loose)} where the article rounds loosely or "
              f"errs: " + "; ".join(f"{f.label} (article {f.printed_text}, exact {format_value(f.value, f.unit)})"
                                     for f in loose), soft_wrap=True)
    out.print("Parameters: src/llmecon/costmodel/data/article.csv (TEXT / INFERRED / EXTERNAL per value). "
              "✓ = exact value rounds to the article's figure; ≠ = it does not (see the note).", soft_wrap=True)
    if calibrated:
        from llmecon.cli.calibrate import print_calibrated_article

        out.print()
        print_calibrated_article(calibrated)


COMMANDS = [article]
