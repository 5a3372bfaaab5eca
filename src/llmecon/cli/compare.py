"""`llmecon compare`: did throughput or MFU drop between two runs? (exit 1 if so: a CI check)."""

from __future__ import annotations

import click

from llmecon.cli._common import console, echo_json, table


@click.command("compare")
@click.argument("base", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--max-drop", default="5%", show_default=True,
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
    from llmecon.calibrate.compare import compare_runs, parse_fraction
    from llmecon.units import pct, si

    result, problems = compare_runs(base, new, parse_fraction(max_drop))
    for problem in problems:
        click.echo(f"llmecon: warning: {problem}", err=True)
    if as_json:
        echo_json(result)
    else:
        def signed(v):
            return None if v is None else f"{v:+.1%}"

        def config(r):
            parts = [r["model"], r["phase"], r["dtype"], f"b{r['batch_size']}", f"s{r['seq_len']}"]
            parts += [f"n{r['new_tokens']}"] if r["phase"] == "decode" and r["new_tokens"] is not None else []
            return " ".join(map(str, parts)) + (f" ({r['settings']})" if r.get("settings") else "")

        hardware = sorted({str(r["hardware"]) for r in result["rows"]})
        one_hw = len(hardware) == 1
        rows = [[config(r) + ("" if one_hw else f" on {r['hardware']}"),
                 si(r["base_tokens_per_s"], "tok/s"), si(r["new_tokens_per_s"], "tok/s"), signed(r["change"]),
                 signed(r["mfu_change"]), None if r["noise_drop"] is None else f"±{pct(r['noise_drop'])}",
                 r["verdict"]]
                for r in result["rows"]]
        cols = ["configuration", "base", "new", "change", "MFU change", "noise", "verdict"]
        caption = (f"{result['matched']} configuration(s) matched{' on ' + hardware[0] if one_hw else ''}; "
                   f"regression = drop > {pct(result['max_drop'])} and > noise, the drop the two runs' spreads allow "
                   f"(s = IQR/median of step time: 1 - 1/((1+s_base)(1+s_new)), about s_base + s_new when small).")
        import os

        out = console()
        if not out.is_terminal and "COLUMNS" not in os.environ:
            out.width = max(out.width, 150)      # into a CI log: no cropped verdicts at rich's 80 columns
        out.print(table(f"{new} against {base}", cols, rows, caption=caption))
        verdict = (f"{result['regressions']} regression(s)" if result["regressions"] else "no regression")
        click.echo(verdict)
    if result["regressions"]:
        ctx.exit(1)


COMMANDS = [compare]
