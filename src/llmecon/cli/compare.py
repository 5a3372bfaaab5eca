"""`llmecon compare`: did throughput or MFU drop between two runs? (exit 1 if so: a CI check)."""

from __future__ import annotations

import click

from llmecon.api import compare as compare_runs
from llmecon.calibration.compare import DEFAULT_MAX_DROP
from llmecon.cli._output import echo_json, show, table, warn
from llmecon.units import pct, si


def _configuration(r: dict, with_hardware: bool) -> str:
    parts = [r["model"], r["phase"], r["dtype"], f"b{r['batch_size']}", f"s{r['seq_len']}"]
    parts += [f"n{r['new_tokens']}"] if r["phase"] == "decode" and r["new_tokens"] is not None else []
    text = " ".join(map(str, parts)) + (f" ({r['settings']})" if r.get("settings") else "")
    return text + (f" on {r['hardware']}" if with_hardware else "")


@click.command("compare")
@click.argument("base", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--max-drop", default=f"{DEFAULT_MAX_DROP:.0%}", show_default=True,
              help="Fail only on drops larger than this (and larger than the runs' noise).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
def compare(ctx, base, new, max_drop, as_json) -> None:
    """Compare NEW against BASE (run folders or folders of runs), configuration by configuration.

    A configuration regressed when its tokens/s or MFU dropped by more than --max-drop AND by more
    than the noise of the two runs (the sum of their IQR/median spreads; compounded, on the step-time
    ratio, so that a large slowdown never hides behind a large spread), or when it was valid in BASE
    and failed in NEW. Exit status: 0 no regression, 1 regression, 2 bad input.

    \b
    CI recipe:
      llmecon bench --model tiny --out base/      # on the reference commit
      llmecon bench --model tiny --out new/       # on the change
      llmecon compare base/ new/ --max-drop 5%
    """
    result = compare_runs(base, new, max_drop=max_drop)
    for problem in result["problems"]:
        warn(problem)
    if as_json:
        echo_json(result)
    else:
        hardware = sorted({str(r["hardware"]) for r in result["rows"]})
        rows = [[_configuration(r, len(hardware) > 1), si(r["base_tokens_per_s"], "tok/s"),
                 si(r["new_tokens_per_s"], "tok/s"), None if r["change"] is None else f"{r['change']:+.1%}",
                 None if r["mfu_change"] is None else f"{r['mfu_change']:+.1%}",
                 None if r["noise_drop"] is None else f"±{pct(r['noise_drop'])}", r["verdict"]]
                for r in result["rows"]]
        caption = (f"{result['matched']} configuration(s) matched{' on ' + hardware[0] if len(hardware) == 1 else ''}; "
                   f"regression = drop > {pct(result['max_drop'])} and > noise, the drop the two runs' spreads allow "
                   f"(s = IQR/median of step time: 1 - 1/((1+s_base)(1+s_new)), about s_base + s_new when small).")
        show(table(f"{new} against {base}", ["configuration", "base", "new", "change", "MFU change", "noise",
                                             "verdict"], rows, caption=caption))
        click.echo(f"{result['regressions']} regression(s)" if result["regressions"] else "no regression")
    if result["regressions"]:
        ctx.exit(1)


COMMAND = compare
