"""`llmecon estimate inference|training`: price a model on an accelerator at a utilization.

Thin: resolve the model, the accelerator, the price and the utilization, call
`costmodel.estimate`, print. Numbers are taken as text and validated by the library, so that a bad one
(negative, zero, NaN, mfu outside (0, 1]) is one line on stderr and exit status 2.
No pandas, numpy or torch here: the command answers in well under a second.
"""

from __future__ import annotations

import re
from typing import Any

import click

from llmecon.errors import UserError, require_fraction, require_positive

# Literal copies (importing the library modules here would slow down `llmecon --help`); a test checks
# they equal costmodel.hardware.DTYPES and costmodel.flops.CONVENTIONS.
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
CONVENTIONS = ("article", "non_embedding", "causal", "executed")

_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_COUNT = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$")


def parse_count(name: str, text) -> float:
    """'300e9', '300B', '1.4T', '2.5M', '10k', '300_000_000' -> a positive float; UserError otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return require_positive(name, text)
    m = _COUNT.match(str(text))
    if not m:
        raise UserError(f"{name} must be a count such as 300e9, 300B or 1.4T, got {text!r}")
    value = float(m.group(1).replace("_", "")) * _SUFFIXES.get(m.group(2).lower(), 1.0)
    return require_positive(name, value)


def _whole(name: str, text) -> int:
    value = require_positive(name, text)
    if value != int(value):
        raise UserError(f"{name} must be a whole number, got {value:g}")
    return int(value)


# --- resolving inputs (each in one place) -----------------------------------------------------

def resolve_accelerator(hardware_id: str):
    from llmecon.costmodel.hardware import get_accelerator

    return get_accelerator(hardware_id)


def resolve_peak(accelerator, dtype: str) -> float:
    peak = accelerator.peak(dtype)
    if peak is None:
        have = [d for d in DTYPES if accelerator.peak(d) is not None]
        raise UserError(f"the hardware sheet has no dense {dtype} peak for {accelerator.id}; it has: "
                        f"{', '.join(have) or 'none'} (choose one with --dtype)")
    return float(peak)


def resolve_price(price_id: str | None, usd_per_hour, accelerator) -> tuple[float, dict[str, Any]]:
    """Price per accelerator-hour, from --price ID (instance price / its accelerator count) or --usd-per-hour."""
    if (price_id is None) == (usd_per_hour is None):
        raise UserError("give exactly one of --price ID (see `llmecon prices`) or --usd-per-hour X (per accelerator)")
    if usd_per_hour is not None:
        value = require_positive("--usd-per-hour", usd_per_hour)
        return value, {"usd_per_accelerator_hour": value, "source": "--usd-per-hour"}
    from llmecon.costmodel import estimate
    from llmecon.costmodel.prices import get_price

    price = get_price(price_id)
    if price.accelerator_id != accelerator.id:
        raise UserError(f"price {price.id!r} is for {price.accelerator_id}, not {accelerator.id}; "
                        f"pick a price for {accelerator.id} or change --hardware")
    value = estimate.price_per_accelerator_hour(price.usd_per_hour, price.count)
    return value, {"usd_per_accelerator_hour": value, "source": f"--price {price.id}", "price_id": price.id,
                   "provider": price.provider, "instance": price.instance, "term": price.term,
                   "instance_usd_per_hour": price.usd_per_hour, "accelerators_per_instance": price.count,
                   "date": price.date}


def resolve_utilization(mfu, *, phase: str, accelerator, dtype: str) -> tuple[float, str]:
    """THE place the utilization comes from: today a flat --mfu, as in the article.

    (A calibration file, when one is supported, is read here and nowhere else; `phase`, `accelerator`
    and `dtype` are the keys it would be looked up by.)
    """
    if mfu is None:
        raise UserError(f"--mfu is required (the {phase} utilization, in (0, 1]; the article used 0.213 for "
                        "inference, 0.462 for training)")
    return require_fraction("--mfu", mfu), "flat --mfu"


def add_energy(payload: dict, energy: dict | None, suffix: str = "") -> None:
    """Put the energy estimate (when asked for) into a JSON payload: kwh<suffix>, usd_energy<suffix>, energy."""
    if energy is not None:
        payload.update({f"kwh{suffix}": energy["kwh"], f"usd_energy{suffix}": energy["usd_energy"], "energy": energy})


def resolve_energy(accelerator_hours: float, accelerator, usd_per_kwh, pue, tdp_w) -> dict[str, Any] | None:
    """kWh and $ of energy when --usd-per-kwh is given (TDP from the sheet unless --tdp-w)."""
    from llmecon.costmodel import estimate

    if usd_per_kwh is None:
        if tdp_w is not None:
            raise UserError("--tdp-w only matters with --usd-per-kwh (energy is priced only when asked)")
        estimate.energy_cost(1.0, 1.0, 0.0, pue)  # a bad --pue is refused even when energy is not priced
        return None

    if tdp_w is None:
        if accelerator.tdp_w is None:
            raise UserError(f"the hardware sheet has no TDP for {accelerator.id}; give --tdp-w W to price energy")
        watts, source = float(accelerator.tdp_w), "hardware sheet TDP"
    else:
        watts, source = require_positive("--tdp-w", tdp_w), "--tdp-w"
    out = estimate.energy_cost(accelerator_hours, watts, usd_per_kwh, pue)
    return {**out, "tdp_w": watts, "tdp_source": source, "usd_per_kwh": float(usd_per_kwh), "pue": float(pue)}


# --- shared options ----------------------------------------------------------------------------

def _common(fn):
    options = [
        click.option("--model", "model", required=True, metavar="M",
                     help="Preset name (see `llmecon model-info`), config.json, or a local HF model folder."),
        click.option("--hardware", "hardware_id", metavar="H",
                     help="Accelerator id from the hardware sheet (`llmecon hardware`), e.g. a100-sxm4-40gb "
                          "(with --calibration: default the calibrated one)."),
        click.option("--price", "price_id", metavar="ID",
                     help="Price id from the price sheet (`llmecon prices`); instance price / accelerator count."),
        click.option("--usd-per-hour", metavar="X", help="Price per ACCELERATOR-hour, in USD."),
        click.option("--mfu", metavar="U", help="Model FLOPs utilization in (0, 1] (flat, as in the article)."),
        click.option("--dtype", default="bf16", show_default=True, type=click.Choice(DTYPES),
                     help="Which dense peak of the accelerator to use."),
        click.option("--convention", default="article", show_default=True, type=click.Choice(CONVENTIONS),
                     help="FLOP convention (article = 2N / 6N over all parameters)."),
        click.option("--usd-per-kwh", metavar="X",
                     help="Electricity price; when given, energy is priced (from TDP). No default."),
        click.option("--pue", default="1.0", show_default=True, metavar="P",
                     help="Power usage effectiveness for energy (1.0 = the accelerator alone; hyperscalers ~1.1)."),
        click.option("--tdp-w", metavar="W", help="Board power in watts, instead of the sheet's TDP."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON (raw SI/USD values) instead of tables."),
        click.option("--calibration", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Calibration file (`llmecon calibrate`): the utilization predicted at this workload's "
                          "phase, batch and context replaces --mfu."),
        click.option("--transfer", is_flag=True,
                     help="Apply the calibration to another accelerator than the one measured (labelled)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _given(value, name: str):
    """value if the user gave the option, None if it is click's default (the calibration then decides)."""
    source = click.get_current_context().get_parameter_source(name)
    return None if source is click.core.ParameterSource.DEFAULT else value


def _require_hardware(hardware_id, transfer: bool) -> None:
    if transfer:
        raise UserError("--transfer only applies with --calibration FILE")
    if hardware_id is None:
        raise UserError("--hardware is required (or --calibration FILE, whose accelerator is then the default)")


def _load_model(spec: str):
    from llmecon.costmodel.architecture import load_model_shape

    return load_model_shape(spec)


def _beyond_context(shape, length: int, flag: str) -> list[str]:
    """A note when the priced length exceeds what the model can attend (the arithmetic still holds)."""
    if length <= shape.max_position_embeddings:
        return []
    return [f"{flag} {length:,} exceeds {shape.name}'s max_position_embeddings {shape.max_position_embeddings:,}: "
            "arithmetic only, the model cannot run this shape."]


def _print(title: str, inputs: list[tuple[str, str]], formula: list[str], results: list[tuple[str, str]],
           notes: list[str]) -> None:
    from llmecon.cli._common import console, table

    out = console()
    out.print(table(f"{title}: inputs", ["input", "value"], inputs))
    out.print("[bold]formula[/bold]")
    for line in formula:
        out.print(f"  {line}")
    out.print(table(f"{title}: result", ["quantity", "value"], results))
    for line in notes:
        out.print(f"[dim]{line}[/dim]")


@click.group("estimate")
def estimate() -> None:
    """Price inference or training of a model on an accelerator at a utilization.

    \b
    Examples (the article's GPT-3 figures, numbers.md §3.3-3.4):
      llmecon estimate inference --model gpt3-175b --hardware a100-sxm4-40gb \\
          --price aws-p4d.24xlarge-1yr-2023 --mfu 0.213
      llmecon estimate training --model gpt3-175b --tokens 300B --hardware tpu-v4 \\
          --usd-per-hour 2.03 --mfu 0.462 --num-accelerators 4096
    """


@estimate.command("inference")
@_common
@click.option("--context-len", default="2048", show_default=True, metavar="L",
              help="Context position of the generated token (conventions with an attention term).")
@click.option("--batch-size", default="1", show_default=True, metavar="B",
              help="Sequences decoded together (with --calibration: the batch the step time is predicted at).")
@click.option("--phase", default="decode", show_default=True, type=click.Choice(["decode", "prefill"]),
              help="With --calibration: price generated tokens (decode) or prompt tokens (prefill).")
def inference(model, hardware_id, price_id, usd_per_hour, mfu, dtype, convention, usd_per_kwh, pue, tdp_w,
              as_json, calibration, transfer, context_len, batch_size, phase) -> None:
    """Seconds and $ per 1K / 1M generated tokens, tokens/s per accelerator.

    \b
    cost per 1K tokens = FLOPs/token x 1,000 / (dense peak x MFU) / 3,600 x $/accelerator-hour
    """
    from llmecon.cli._common import echo_json
    from llmecon.costmodel import estimate as est
    from llmecon.costmodel.flops import decode_step_flops
    from llmecon.units import pct, si, usd

    if calibration:
        from llmecon.cli.calibrate import calibrated_inference

        return calibrated_inference(model=model, hardware_id=hardware_id, price_id=price_id, usd_per_hour=usd_per_hour,
                                    convention=_given(convention, "convention"),
                                    mfu=mfu, dtype=_given(dtype, "dtype"), usd_per_kwh=usd_per_kwh, pue=pue,
                                    tdp_w=tdp_w, as_json=as_json, context_len=context_len, batch_size=batch_size,
                                    phase=phase, calibration=calibration, transfer=transfer)
    _require_hardware(hardware_id, transfer)
    if phase != "decode":
        raise UserError("--phase prefill needs --calibration FILE (a flat --mfu prices every token alike)")
    shape = _load_model(model)
    accelerator = resolve_accelerator(hardware_id)
    peak = resolve_peak(accelerator, dtype)
    price, price_info = resolve_price(price_id, usd_per_hour, accelerator)
    utilization, utilization_source = resolve_utilization(mfu, phase="decode", accelerator=accelerator, dtype=dtype)
    context = _whole("--context-len", context_len)
    _whole("--batch-size", batch_size)  # only the calibrated path uses it; a bad one is still refused
    flops_per_token = float(decode_step_flops(shape, 1, context, convention))
    result = est.inference_cost(flops_per_token, peak, utilization, price)
    energy = resolve_energy(result["seconds_per_1k_tokens"] / est.SECONDS_PER_HOUR, accelerator, usd_per_kwh,
                            pue, tdp_w)
    payload = {
        "model": shape.name, "hardware_id": accelerator.id, "dtype": dtype, "convention": convention,
        "params_total": shape.params_total, "flops_per_token": flops_per_token, "context_len": context,
        "peak_flops_per_s": peak, "mfu": utilization, "mfu_source": utilization_source,
        "usd_per_accelerator_hour": price, "price": price_info, **result,
    }
    add_energy(payload, energy, "_per_1k_tokens")
    if as_json:
        echo_json(payload)
        return
    inputs = [("model", f"{shape.name} ({si(shape.params_total, 'params')})"),
              ("FLOPs/token", f"{si(flops_per_token, 'FLOP')} ({convention}, context {context:,})"),
              ("accelerator", f"{accelerator.id}: {si(peak, 'FLOP/s')} dense {dtype}"),
              ("utilization", f"{pct(utilization)} ({utilization_source})"),
              ("price", f"{usd(price)}/accelerator-hour ({price_info['source']})")]
    results = [("accelerator-seconds / 1K tokens", f"{result['seconds_per_1k_tokens']:.4g} s"),
               ("tokens/s per accelerator", f"{result['tokens_per_s_per_accelerator']:,.1f}"),
               ("$ / 1K tokens", usd(result["usd_per_1k_tokens"])),
               ("$ / 1M tokens", usd(result["usd_per_1m_tokens"]))]
    notes = ["Flat utilization for every batch size and context (as the article); small-batch decode is "
             "memory-bandwidth-bound, so this is optimistic there. Idle time is not priced."]
    notes += _beyond_context(shape, context, "--context-len")
    if energy is not None:
        inputs.append(("energy", f"{energy['tdp_w']:g} W ({energy['tdp_source']}), PUE {energy['pue']:g}, "
                                 f"{usd(energy['usd_per_kwh'])}/kWh"))
        results += [("kWh / 1K tokens", f"{energy['kwh']:.4g}"),
                    ("energy $ / 1K tokens", usd(energy["usd_energy"]))]
        notes.append("Energy from TDP (board power limit) x time x PUE: an upper bound for the accelerator alone.")
    _print("inference", inputs, [
        "seconds/1K tokens = FLOPs/token x 1,000 / (peak x MFU)",
        "$/1K tokens = seconds/1K tokens / 3,600 x $/accelerator-hour",
        f"= {si(flops_per_token * 1e3, 'FLOP')} / ({si(peak, 'FLOP/s')} x {utilization:g}) / 3,600 x {price:g}",
    ], results, notes)


@estimate.command("training")
@_common
@click.option("--tokens", metavar="D", help="Training tokens: 300e9, 300B, 1.4T (default: the preset's, if known).")
@click.option("--num-accelerators", default="1", show_default=True, metavar="K",
              help="Accelerators in the run (wall-clock days = accelerator-hours / K / 24).")
@click.option("--seq-len", default="2048", show_default=True, metavar="L",
              help="Sequence length (conventions with an attention term).")
@click.option("--bytes-per-param", default="20", show_default=True, metavar="B",
              help="Training state per parameter (the article: 20, Adam with mixed precision).")
@click.option("--batch-size", default="8", show_default=True, metavar="B",
              help="With --calibration: sequences per step per accelerator, the step time is predicted at.")
def training(model, hardware_id, price_id, usd_per_hour, mfu, dtype, convention, usd_per_kwh, pue, tdp_w,
             as_json, calibration, transfer, tokens, num_accelerators, seq_len, bytes_per_param, batch_size) -> None:
    """Accelerator-hours, $, wall-clock days, and the fewest accelerators that hold the training state.

    \b
    cost = FLOPs/token x tokens / (dense peak x MFU) / 3,600 x $/accelerator-hour
    """
    from llmecon.cli._common import echo_json
    from llmecon.costmodel import estimate as est
    from llmecon.costmodel.flops import train_step_flops
    from llmecon.costmodel.memory import training_memory_bytes
    from llmecon.units import pct, si, usd

    if calibration:
        from llmecon.cli.calibrate import calibrated_training

        return calibrated_training(model=model, hardware_id=hardware_id, price_id=price_id, usd_per_hour=usd_per_hour,
                                   convention=_given(convention, "convention"),
                                   mfu=mfu, dtype=_given(dtype, "dtype"), usd_per_kwh=usd_per_kwh, pue=pue, tdp_w=tdp_w,
                                   as_json=as_json, tokens=tokens, num_accelerators=num_accelerators, seq_len=seq_len,
                                   bytes_per_param=bytes_per_param, batch_size=batch_size, calibration=calibration,
                                   transfer=transfer)
    _require_hardware(hardware_id, transfer)
    shape = _load_model(model)
    accelerator = resolve_accelerator(hardware_id)
    peak = resolve_peak(accelerator, dtype)
    price, price_info = resolve_price(price_id, usd_per_hour, accelerator)
    utilization, utilization_source = resolve_utilization(mfu, phase="train", accelerator=accelerator, dtype=dtype)
    if tokens is None:
        if not shape.training_tokens:
            raise UserError(f"--tokens is required: {shape.name} has no published training token count")
        n_tokens, tokens_source = float(shape.training_tokens), "preset"
    else:
        n_tokens, tokens_source = parse_count("--tokens", tokens), "--tokens"
    k = _whole("--num-accelerators", num_accelerators)
    length = _whole("--seq-len", seq_len)
    _whole("--batch-size", batch_size)  # only the calibrated path uses it; a bad one is still refused
    flops_per_token = float(train_step_flops(shape, 1, length, convention)) / length
    flops_total = flops_per_token * n_tokens
    state = training_memory_bytes(shape, bytes_per_param=require_positive("--bytes-per-param", bytes_per_param))
    state_bytes = float(state["total_bytes"])
    result = est.training_cost(flops_total, peak, utilization, price, num_accelerators=k,
                               state_bytes=state_bytes, memory_bytes=accelerator.memory_bytes)
    energy = resolve_energy(result["accelerator_hours"], accelerator, usd_per_kwh, pue, tdp_w)
    payload = {
        "model": shape.name, "hardware_id": accelerator.id, "dtype": dtype, "convention": convention,
        "params_total": shape.params_total, "tokens": n_tokens, "tokens_source": tokens_source, "seq_len": length,
        "flops_per_token": flops_per_token, "flops_total": flops_total, "peak_flops_per_s": peak,
        "mfu": utilization, "mfu_source": utilization_source, "usd_per_accelerator_hour": price,
        "price": price_info, "num_accelerators": k, "state_bytes": state_bytes,
        "memory_bytes_per_accelerator": accelerator.memory_bytes, **result,
    }
    add_energy(payload, energy)
    if as_json:
        echo_json(payload)
        return
    inputs = [("model", f"{shape.name} ({si(shape.params_total, 'params')})"),
              ("tokens", f"{si(n_tokens)} ({tokens_source})"),
              ("FLOPs/token", f"{si(flops_per_token, 'FLOP')} ({convention}, seq len {length:,})"),
              ("accelerator", f"{accelerator.id}: {si(peak, 'FLOP/s')} dense {dtype}, "
                              f"{si(accelerator.memory_bytes, 'B')} memory"),
              ("utilization", f"{pct(utilization)} ({utilization_source})"),
              ("price", f"{usd(price)}/accelerator-hour ({price_info['source']})"),
              ("accelerators", f"{k:,}")]
    results = [("training FLOPs", si(flops_total, "FLOP")),
               ("accelerator-hours", f"{result['accelerator_hours']:,.0f}"),
               ("$ total", usd(result["usd_total"])),
               (f"wall-clock days on {k:,}", f"{result['wall_clock_days']:,.1f}"),
               ("training state", f"{si(state_bytes, 'B')} ({float(bytes_per_param):g} B/param)"),
               ("fewest accelerators that hold it", f"{result['min_accelerators_for_state']:,}")]
    notes = ["Wall-clock assumes the utilization holds at K accelerators; the state bound ignores activations."]
    notes += _beyond_context(shape, length, "--seq-len")
    if k < result["min_accelerators_for_state"]:
        notes.append(f"{k:,} accelerator(s) cannot hold the training state: at least "
                     f"{result['min_accelerators_for_state']:,} are needed.")
    if energy is not None:
        inputs.append(("energy", f"{energy['tdp_w']:g} W ({energy['tdp_source']}), PUE {energy['pue']:g}, "
                                 f"{usd(energy['usd_per_kwh'])}/kWh"))
        results += [("energy", f"{energy['kwh']:,.0f} kWh"), ("energy $", usd(energy["usd_energy"]))]
        notes.append("Energy from TDP (board power limit) x time x PUE: an upper bound for the accelerator alone.")
    _print("training", inputs, [
        "accelerator-hours = FLOPs/token x tokens / (peak x MFU) / 3,600",
        "$ = accelerator-hours x $/accelerator-hour; days = accelerator-hours / K / 24",
        f"= {si(flops_total, 'FLOP')} / ({si(peak, 'FLOP/s')} x {utilization:g}) / 3,600 x {price:g}",
    ], results, notes)


COMMANDS = [estimate]
