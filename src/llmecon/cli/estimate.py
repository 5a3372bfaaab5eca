"""`llmecon estimate inference|training`: price a model on an accelerator, at a flat utilization or at the
efficiency a calibration predicts (estimate.inference / estimate.training compute; this prints)."""

from __future__ import annotations

import click

from llmecon.cli._output import console, echo_json, table
from llmecon.estimate import inference as inf
from llmecon.estimate import training as tr
from llmecon.estimate.inputs import DEFAULT_DTYPE, DEFAULT_PUE
from llmecon.units import number, pct, si, usd
from llmecon.vocab import CONVENTIONS, DTYPES


def _options(fn):
    options = [
        click.option("--model", required=True, metavar="M",
                     help="Preset name (see `llmecon model-info --list`), config.json, or a local HF model folder."),
        click.option("--hardware", metavar="H",
                     help="Accelerator id from the hardware sheet (`llmecon hardware`), e.g. a100-sxm4-40gb "
                          "[default with --calibration: the calibrated one]."),
        click.option("--price", metavar="ID",
                     help="Price id from the price sheet (`llmecon prices`); instance price / accelerator count."),
        click.option("--usd-per-hour", metavar="X", help="Price per ACCELERATOR-hour, in USD."),
        click.option("--mfu", metavar="U", help="Model FLOPs utilization in (0, 1], as 0.213 or 21.3% (flat, as in "
                                                "the article)."),
        click.option("--dtype", type=click.Choice(DTYPES), default=None,
                     help=f"Which dense peak of the accelerator to use [default: {DEFAULT_DTYPE}; with --calibration "
                          "the calibrated dtype, said in the output]."),
        click.option("--convention", type=click.Choice(CONVENTIONS), default=None,
                     help="FLOP convention [default: article = 2N / 6N over all parameters; with --calibration the "
                          "calibration's]."),
        click.option("--usd-per-kwh", metavar="X", help="Electricity price; when given, energy is priced (from TDP)."),
        click.option("--pue", metavar="P", help=f"Power usage effectiveness for energy [default: {DEFAULT_PUE:g}, the "
                                                "accelerator alone; hyperscalers ~1.1]."),
        click.option("--tdp-w", metavar="W", help="Board power in watts, instead of the sheet's TDP."),
        click.option("--calibration", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Calibration file (`llmecon calibrate`): the utilization predicted at this workload's phase, "
                          "batch and context replaces --mfu."),
        click.option("--engine", metavar="E",
                     help="Without --mfu or --calibration: whose published measurements to use (`llmecon "
                          "calibrations`) [default: the engine with the most points for the accelerator]."),
        click.option("--transfer", is_flag=True,
                     help="Apply the calibration to another accelerator than the one measured (labelled)."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON (raw SI/USD values) instead of tables."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _given(options: dict) -> dict:
    """The options the user gave; the rest take the library's defaults."""
    return {k: v for k, v in options.items() if v is not None and v is not False}


@click.group("estimate")
def estimate() -> None:
    """Price inference or training of a model on an accelerator.

    At a flat utilization (--mfu, the article's way), at the efficiency a calibration predicts for this
    phase, batch and context (--calibration FILE), or, with neither, at the efficiency published
    measurements predict (a reference calibration labelled `published`, see `llmecon calibrations`).

    \b
    Examples (the article's GPT-3 figures, docs/article.md §3.3-3.4):
      llmecon estimate inference --model gpt3-175b --hardware a100-sxm4-40gb \\
          --price aws-p4d.24xlarge-1yr-2023 --mfu 21.3%
      llmecon estimate training --model gpt3-175b --tokens 300B --hardware tpu-v4 \\
          --usd-per-hour 2.03 --mfu 46.2% --num-accelerators 4096
    """


@estimate.command("inference")
@_options
@click.option("--context-len", metavar="L", help=f"Context position of the generated token [default: "
                                                 f"{inf.DEFAULT_CONTEXT_LEN}].")
@click.option("--batch-size", metavar="B", help=f"Sequences decoded together; with --calibration the batch the step "
                                                f"time is predicted at [default: {inf.DEFAULT_BATCH_SIZE}].")
@click.option("--phase", type=click.Choice(["decode", "prefill"]), default=None,
              help=f"With --calibration: price generated (decode) or prompt (prefill) tokens [default: "
                   f"{inf.DEFAULT_PHASE}].")
def inference(as_json: bool, **options) -> None:
    """Seconds and $ per 1K / 1M generated tokens, tokens/s per accelerator.

    \b
    cost per 1K tokens = FLOPs/token x 1,000 / (dense peak x MFU) / 3,600 x $/accelerator-hour

    \b
    Examples:
      llmecon estimate inference --model gpt3-175b --hardware a100-sxm4-40gb \\
          --price aws-p4d.24xlarge-1yr-2023 --mfu 21.3%
      llmecon estimate inference --model llama-3-8b --hardware h100-sxm --usd-per-hour 2.5 --mfu 0.4 --json
      llmecon estimate inference --model llama-3-8b --calibration calibration.json --batch-size 32 \\
          --usd-per-hour 2.5
    """
    out = inf.estimate_inference(**_given(options))
    if as_json:
        echo_json(out)
        return
    what = f"{out['phase']}, batch {out['batch_size']:,}, context {out['context_len']:,}" \
        if out["basis"] != "flat" else f"context {out['context_len']:,}"
    results = [("accelerator-seconds / 1K tokens", f"{number(out['seconds_per_1k_tokens'])} s"),
               ("tokens/s per accelerator", number(out["tokens_per_s_per_accelerator"])),
               ("$ / 1K tokens", usd(out["usd_per_1k_tokens"])), ("$ / 1M tokens", usd(out["usd_per_1m_tokens"]))]
    if out.get("energy"):
        results += [("kWh / 1K tokens", number(out["kwh_per_1k_tokens"])),
                    ("energy $ / 1K tokens", usd(out["usd_energy_per_1k_tokens"]))]
    formula = ["seconds/1K tokens = FLOPs/token x 1,000 / (peak x MFU)",
               "$/1K tokens = seconds/1K tokens / 3,600 x $/accelerator-hour",
               f"= {si(out['flops_per_token'] * 1e3, 'FLOP')} / ({si(out['peak_flops_per_s'], 'FLOP/s')} x "
               f"{number(out['mfu'])}) / 3,600 x {number(out['usd_per_accelerator_hour'])}"]
    _print(f"inference{_basis(out)}", out, what, formula, results)


@estimate.command("training")
@_options
@click.option("--tokens", metavar="D", help="Training tokens: 300e9, 300B, 1.4T [default: the preset's, if known].")
@click.option("--num-accelerators", metavar="K", help="Accelerators in the run (wall-clock days = "
                                                      f"accelerator-hours / K / 24) [default: "
                                                      f"{tr.DEFAULT_NUM_ACCELERATORS}].")
@click.option("--seq-len", metavar="L", help=f"Sequence length [default: {tr.DEFAULT_SEQ_LEN}].")
@click.option("--bytes-per-param", metavar="B", help="Training state per parameter [default: "
                                                     f"{tr.DEFAULT_BYTES_PER_PARAM}, the article's: Adam, mixed precision].")
@click.option("--batch-size", metavar="B", help="Sequences per step per accelerator (with --parallel tp: shared by "
                                                "the K), the step time and its communication are predicted at "
                                                f"[default: {tr.DEFAULT_BATCH_SIZE}].")
@click.option("--parallel", metavar="P", help="With K > 1: how the K share the work, ddp | fsdp | tp; sets the "
                                              f"bytes each step communicates [default: {tr.DEFAULT_PARALLEL}].")
@click.option("--busbw", metavar="GB/S", help="With K > 1: a measured bus bandwidth (nccl-tests busbw, GB/s) instead "
                                              "of the hardware sheet's NVLink / network figure.")
def training(as_json: bool, **options) -> None:
    """Accelerator-hours, $, wall-clock days, and the fewest accelerators that hold the training state.

    \b
    cost = FLOPs/token x tokens / (dense peak x MFU) / 3,600 x $/accelerator-hour

    \b
    Examples:
      llmecon estimate training --model gpt3-175b --tokens 300B --hardware tpu-v4 --usd-per-hour 2.03 \\
          --mfu 46.2% --num-accelerators 4096
      llmecon estimate training --model llama-3-8b --tokens 15T --hardware h100-sxm \\
          --price aws-p5.48xlarge-od-2026 --mfu 0.4 --num-accelerators 1024 --usd-per-kwh 0.08 --pue 1.1
      llmecon estimate training --model llama-3-8b --tokens 1T --calibration calibration.json --transfer \\
          --hardware h100-sxm --usd-per-hour 3 --batch-size 4
    """
    out = tr.estimate_training(**_given(options))
    if as_json:
        echo_json(out)
        return
    what = f"{si(out['tokens'])} tokens ({out['tokens_source']}), seq len {out['seq_len']:,}"
    if out["basis"] != "flat":
        what += f", steps of batch {out['batch_size']:,} per accelerator"
    results = [("training FLOPs", f"{si(out['flops_total'], 'FLOP')} ({out['convention']})"),
               ("accelerator-hours", number(out["accelerator_hours"])), ("$ total", usd(out["usd_total"])),
               (f"wall-clock days on {out['num_accelerators']:,}", number(out["wall_clock_days"])),
               ("training state", f"{si(out['state_bytes'], 'B')} ({out['bytes_per_param']:g} B/param)")]
    if out["min_accelerators_for_state"] is not None:
        results.append(("fewest accelerators that hold it", f"{out['min_accelerators_for_state']:,}"))
    if out.get("energy"):
        results += [("energy", f"{number(out['kwh'])} kWh"), ("energy $", usd(out["usd_energy"]))]
    results = _communication(out["communication"], out["num_accelerators"]) + results
    formula = ["accelerator-hours = FLOPs/token x tokens / (peak x MFU) / 3,600",
               "$ = accelerator-hours x $/accelerator-hour; days = accelerator-hours / K / 24",
               f"= {si(out['flops_total'], 'FLOP')} / ({si(out['peak_flops_per_s'], 'FLOP/s')} x "
               f"{number(out['mfu'])}) / 3,600 x {number(out['usd_per_accelerator_hour'])}"]
    _print(f"training{_basis(out)}", out, what, formula, results)


def _communication(c: dict | None, k: int) -> list[tuple[str, str]]:
    """The step at K split into compute and exposed communication, and the MFU per device it leaves."""
    if not c:
        return []
    moved = ", ".join(f"{op.replace('_', '-')} {si(v, 'B')}" for op, v in c["bytes_by_op"].items())
    return [(f"step at K = {k:,} ({c['parallel']})", f"{si(c['step_time_s'], 's')} = compute {si(c['compute_time_s'], 's')}"
             f" + exposed communication {si(c['exposed_comm_time_s'], 's')}"),
            ("communicated per step per rank", f"{moved} at {si(c['busbw_bytes_per_s'], 'B/s')} ({c['busbw_source']})"),
            ("overlap", f"{pct(c['overlap'])} ({c['overlap_source']})"),
            ("communication share of the step", pct(c["comm_share"])),
            (f"MFU per device at K = {k:,}", f"{pct(c['mfu_per_device'])} (one device: {pct(c['mfu_compute'])})")]


def _basis(out: dict) -> str:
    return {"flat": "", "calibrated": " (calibrated)", "published": " (published reference)"}[out["basis"]]


def _heldout(out: dict) -> str:
    """'by shape 2.1 % median, 4.0 % max; by model 9.5 % median, 20 % max' (by model only with two or more models)."""
    text = f"by shape {pct(out['heldout_median_rel_error'])} median, {pct(out['heldout_max_rel_error'])} max"
    if out.get("heldout_by_model_median_rel_error") is not None:
        text += (f"; by model {pct(out['heldout_by_model_median_rel_error'])} median, "
                 f"{pct(out['heldout_by_model_max_rel_error'])} max")
    return text


def _print(title: str, out: dict, workload: str, formula: list[str], results: list[tuple[str, str]]) -> None:
    """Inputs, formula, results and notes of an estimate payload."""
    inputs = [("model", f"{out['model']} ({si(out['params_total'], 'params')})"), ("workload", workload),
              ("accelerator", f"{out['hardware_id']}: {si(out['peak_flops_per_s'], 'FLOP/s')} dense {out['dtype']}"
                              + (f" ({out['peak_source'].replace('_', ' ')})" if out.get("peak_source") else ""))]
    if out["basis"] == "published":
        inputs += [("published reference", out["reference"]),
                   *((f"source {i}", s) for i, s in enumerate(out["sources"], 1)),
                   ("held-out error of the fit", _heldout(out))]
    elif out["basis"] == "calibrated":
        inputs += [("calibration", f"{out['calibration']} ({out['mfu_source']})"),
                   ("held-out error of the fit", _heldout(out))]
    if out["basis"] != "flat":
        overhead = "overhead" + (f" (t0 + {out['layers']} layers x {si(out['tau_s_per_layer'], 's')})"
                                 if out.get("tau_s_per_layer") else "")
        terms = ", ".join(f"{overhead if k == 'overhead' else k} {si(v, 's')}" for k, v in out["terms_s"].items()
                          if v > 0 or k == "overhead")
        results = [("step time (predicted)", f"{si(out['step_time_s'], 's')} = {terms}"), ("regime", out["regime"]),
                   ("effective MFU", f"{pct(out.get('mfu_one_device', out['mfu']))} ({out['convention']} FLOPs, one "
                                     "device)" if out.get("communication") else
                    f"{pct(out['mfu'])} ({out['convention']} FLOPs)"), *results]
    else:
        inputs.append(("utilization", f"{pct(out.get('mfu_one_device', out['mfu']))} ({out['mfu_source']}, "
                                      f"{out['convention']} FLOPs)"))
    inputs.append(("price", f"{usd(out['usd_per_accelerator_hour'])}/accelerator-hour ({out['price']['source']})"))
    if out.get("energy"):
        e = out["energy"]
        inputs.append(("energy", f"{e['tdp_w']:g} W ({e['tdp_source']}), PUE {e['pue']:g}, {usd(e['usd_per_kwh'])}/kWh"))
    con = console()
    con.print(table(f"{title}: inputs", ["input", "value"], inputs))
    con.print("[bold]formula[/bold]")
    for line in formula:
        con.print(f"  {line}")
    con.print(table(f"{title}: result", ["quantity", "value"], results))
    for line in out["notes"]:
        con.print(f"[dim]{line}[/dim]")


COMMAND = estimate
