"""`llmecon compare`: is NEW slower than BASE, surely? (exit 1 on a regression: a CI check)."""

from __future__ import annotations

import click

from llmecon.api import compare as compare_runs
from llmecon.calibration.compare import DEFAULT_CONFIDENCE, DEFAULT_MAX_DROP
from llmecon.cli._output import echo_json, show, table, warn
from llmecon.units import pct, si
from llmecon.vocab import GENERATE


def _configuration(r: dict, with_hardware: bool) -> str:
    parts = [r["model"], r["phase"], r["dtype"], f"b{r['batch_size']}", f"s{r['seq_len']}"]
    parts += [f"n{r['new_tokens']}"] if r["phase"] in ("decode", GENERATE) and r["new_tokens"] is not None else []
    text = " ".join(map(str, parts)) + (f" ({r['settings']})" if r.get("settings") else "")
    return text + (f" on {r['hardware']}" if with_hardware else "")


def _interval(r: dict) -> str | None:
    if r["change_low"] is None:
        return None
    return f"{r['change_low']:+.1%} .. {r['change_high']:+.1%}"


def _verdict(r: dict) -> str:
    if r["verdict"] == "inconclusive":
        need = r["rounds_needed"]
        return "inconclusive: " + (f"~{need} rounds per side would decide" if need else "on the threshold")
    return r["verdict"]


@click.command("compare")
@click.argument("base", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--max-drop", default=f"{DEFAULT_MAX_DROP:.0%}", show_default=True,
              help="A regression is a throughput drop surely larger than this.")
@click.option("--confidence", default=f"{DEFAULT_CONFIDENCE:.0%}", show_default=True,
              help="Of the interval the decision is made on: 90%, 95% or 99%.")
@click.option("--normalize", type=click.Choice(["ceiling"]), default=None,
              help="Compare efficiency against each run's measured GEMM / copy ceiling (runners that differ).")
@click.option("--strict", is_flag=True, help="Also fail (exit 1) when a configuration is inconclusive.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
def compare(ctx, base, new, max_drop, confidence, normalize, strict, as_json) -> None:
    """Compare NEW against BASE (run folders or folders of runs), configuration by configuration.

    For each configuration, a confidence interval of the throughput change is computed from the
    rounds of both sides (Hodges-Lehmann with its Mann-Whitney interval). Verdicts: regression (the
    whole interval is a drop beyond --max-drop), improvement, no change (the whole interval within
    +-max-drop), or inconclusive (too wide: it says about how many rounds would decide). A
    configuration valid in BASE that failed in NEW is a regression. Changes in the work per step
    (executed FLOPs, bytes, operator calls) are reported exactly, whatever the timings.
    Exit status: 0 no regression, 1 regression (or inconclusive with --strict), 2 bad input.

    \b
    CI recipe:
      llmecon bench --model tiny --out base/      # on the reference commit
      llmecon bench --model tiny --out new/       # on the change
      llmecon compare base/ new/ --max-drop 10%
    """
    result = compare_runs(base, new, max_drop=max_drop, confidence=confidence, normalize=normalize)
    for problem in result["problems"]:
        warn(problem)
    if as_json:
        echo_json(result)
    else:
        hardware = sorted({str(r["hardware"]) for r in result["rows"]})
        rows = [[_configuration(r, len(hardware) > 1), si(r["base_tokens_per_s"], "tok/s"),
                 si(r["new_tokens_per_s"], "tok/s"), None if r["change"] is None else f"{r['change']:+.1%}",
                 _interval(r), None if r["base_rounds"] is None or r["new_rounds"] is None
                 else f"{r['base_rounds']} / {r['new_rounds']}", _verdict(r), r["work_changed"]]
                for r in result["rows"]]
        basis = "efficiency (time x each run's measured ceiling)" if result["normalize"] else "step time"
        caption = (f"{result['matched']} configuration(s) matched{' on ' + hardware[0] if len(hardware) == 1 else ''}; "
                   f"interval: {pct(result['confidence'])} Hodges-Lehmann / Mann-Whitney interval of the "
                   f"throughput change, from the round means ({basis}); regression = the whole interval below "
                   f"-{pct(result['max_drop'])}.")
        show(table(f"{new} against {base}", ["configuration", "base", "new", "change", "interval", "rounds",
                                             "verdict", "work changed"], rows, caption=caption))
        parts = [f"{result['regressions']} regression(s)" if result["regressions"] else "no regression"]
        parts += [f"{result['inconclusive']} inconclusive"] if result["inconclusive"] else []
        parts += [f"work changed in {result['work_changed']}"] if result["work_changed"] else []
        click.echo("; ".join(parts))
    if result["regressions"] or (strict and result["inconclusive"]):
        ctx.exit(1)


COMMAND = compare
