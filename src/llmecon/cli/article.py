"""`llmecon article`: the 2023 article's tables, recomputed, each figure beside the article's printed one."""

from __future__ import annotations

import click

from llmecon.cli._output import console, echo_json, table
from llmecon.cli._views import print_calibrated_article
from llmecon.estimate.article import article as reproduce
from llmecon.units import pct, quantity

_AGREES = {True: "✓", False: "≠", None: ""}


@click.command("article")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: raw values in USD, FLOPs, bytes, hours.")
@click.option("--calibration", type=click.Path(dir_okay=False), metavar="FILE|published",
              help="Also print the inference and training tables at the efficiency this calibration predicts; "
                   "'published': at the published reference calibrations' (`llmecon calibrations`).")
@click.option("--transfer", is_flag=True,
              help="With --calibration: apply it to the article's A100 and TPU v4 though it was measured elsewhere.")
def article(as_json: bool, calibration: str | None, transfer: bool) -> None:
    """The article's tables ("The Economics of Large Language Models", Sunyan, Jan 2023), recomputed.

    Each figure: our exact value, the article's printed figure, whether they agree (✓ within the printed
    rounding, ≠ where the article rounds loosely; the note says how), and its source tag: TEXT (stated in the
    article), INFERRED (rebuilt or worked back), EXTERNAL (from a source it cites). Derivations and
    discrepancies: docs/article.md.

    \b
    Examples:
      llmecon article
      llmecon article --json
      llmecon article --calibration calibration.json --transfer
      llmecon article --calibration published
    """
    doc = reproduce(calibration, transfer=transfer)
    if as_json:
        echo_json(doc)
        return
    out = console()
    figures = [f for t in doc["tables"] for f in t["rows"]]
    for t in doc["tables"]:
        rows, notes = [], []
        for f in t["rows"]:
            label = f["label"]
            if f["exact_note"]:
                notes.append(f["exact_note"])
                label += f" [{len(notes)}]"
            printed = f"{f['printed_text']} {_AGREES[f['agrees']]}" if f["printed_text"] else ""
            rows.append((label, quantity(f["value"], f["unit"]), printed, f["source_tag"], f["reproduces"]))
        out.print(table(f"{t['title']}  [{t['section']}]", ["figure", "exact", "article", "tag", "reproduces"], rows))
        out.print(t["note"], soft_wrap=True)
        for i, note in enumerate(notes, start=1):
            out.print(f"  [{i}] {note}", soft_wrap=True)
        out.print()
    loose = [f for f in figures if f["agrees"] is False]
    out.print(f"{len(figures)} figures; {sum(f['agrees'] is True for f in figures)} agree with the article's printed "
              f"figure; {len(loose)} where the article rounds loosely or errs: " + "; ".join(
                  f"{f['label']} (article {f['printed_text']}, exact {quantity(f['value'], f['unit'])})" for f in loose),
              soft_wrap=True)
    out.print("Parameters: src/llmecon/costmodel/data/article.csv (TEXT / INFERRED / EXTERNAL per value). "
              "✓ = exact value rounds to the article's figure; ≠ = it does not (see the note).", soft_wrap=True)
    c = doc["communication"]
    lay = c["layout"]
    out.print()
    out.print(table(f"GPT-3 175B on {c['accelerators']:,} A100s, Megatron 3D layout TP {lay['tp']} x PP {lay['pp']} x "
                    f"DP {lay['dp']}, batch {lay['global_batch']:,}: one iteration",
                    ["part", "share of the step"],
                    [("compute (at the article's flat MFU)", pct(c["compute_share"])),
                     ("exposed communication", pct(c["comm_share"])),
                     ("pipeline bubble (p-1)/m", pct(c["bubble_share"])),
                     ("MFU per device", f"{pct(c['mfu_at_k'])} (article: {pct(c['mfu_article'])} flat)")]))
    out.print(f"{c['assumptions']}. Layout: {c['layout_source']}.", soft_wrap=True)
    if doc.get("calibrated"):
        out.print()
        print_calibrated_article(doc["calibrated"])


COMMAND = article
