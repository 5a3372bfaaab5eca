"""`llmecon calibrate`: fit step-time models to measured runs and write a calibration file."""

from __future__ import annotations

import click

from llmecon.cli._common import console, echo_json, table

_CONVENTIONS = ("article", "non_embedding", "causal", "executed")   # = costmodel.flops.CONVENTIONS (fast startup)


@click.command("calibrate")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="calibration.json", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the calibration file (JSON).")
@click.option("--convention", type=click.Choice(_CONVENTIONS), default="executed", show_default=True,
              help="FLOP convention F is counted in (η is relative to it; estimates count the same way).")
@click.option("--max-heldout-error", default="50%", show_default=True,
              help="Refuse a fit whose median held-out relative error is above this.")
@click.option("--force", is_flag=True, help="Keep fits whose held-out error is above --max-heldout-error.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
def calibrate(runs, output, convention, max_heldout_error, force, as_json) -> None:
    """Fit time per step = F/(P·η_compute) + B/(W·η_memory) + t0 per (hardware, dtype, phase).

    RUNS are run folders or folders of runs written by `llmecon bench`. Only valid rows are used. Each
    fit is checked on shapes held out of it (leave-one-shape-out) and refused when there are fewer than
    3 distinct shapes or the held-out error is too high. P and W are the datasheet peaks when the
    device is in the hardware sheet, else the ceilings measured on the device.

    \b
    Example:
      llmecon bench --model tiny --out results/
      llmecon calibrate results/ -o calibration.json
      llmecon estimate inference --model llama-3-8b --calibration calibration.json --batch-size 8 --usd-per-hour 2
    """
    from llmecon.calibrate.compare import parse_fraction
    from llmecon.calibrate.fit import calibrate_runs
    from llmecon.calibrate.schema import save_calibration

    threshold = parse_fraction(max_heldout_error, "--max-heldout-error")
    calib, problems = calibrate_runs(runs, convention=convention, max_heldout_error=threshold, force=force)
    for problem in problems:
        click.echo(f"llmecon: warning: {problem}", err=True)
    path = save_calibration(calib, output)
    if as_json:
        echo_json(calib)
    else:
        print_calibration(calib)
    for entry in calib["refused"]:
        click.echo(f"llmecon: warning: not fitted: {entry['hardware']} {entry['dtype']} {entry['phase']}: "
                   f"{entry['refused']}", err=True)
    click.echo(f"wrote {path}", err=as_json)


def print_calibration(calib: dict) -> None:
    """The fits as one rich table (also used by `llmecon run`)."""
    from llmecon.units import pct, si

    rows = []
    src = {"datasheet": "sheet", "measured_ceiling": "meas."}
    for f in calib["fits"]:
        rows.append([
            f["hardware"], f["dtype"], f["phase"], f"{f['n_shapes']}", pct(f["eta_compute"]), pct(f["eta_memory"]),
            f"{f['t0_s'] * 1e3:.3g} ms", f"{si(f['peak_flops_per_s'], 'FLOP/s')} {src[f['peak_flops_source']]}",
            f"{si(f['peak_bytes_per_s'], 'B/s')} {src.get(f.get('peak_bytes_source'), '')}"
            if f.get("eta_memory") else "—",
            f"{pct(f['heldout']['median_rel_error'])} / {pct(f['heldout']['max_rel_error'])}",
        ])
    caption = (f"F counted in the {calib['flop_convention']} FLOP convention. η against P and W: the datasheet "
               f"(sheet) or the ceiling measured on the device (meas.). Held-out error: each shape predicted "
               f"by a fit without it (median / max of |predicted - measured| / measured).")
    cols = ["hardware", "dtype", "phase", "shapes", "η compute", "η memory", "overhead t0", "P", "W",
            "held-out error"]
    import os

    out = console()
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = max(out.width, 150)      # into a pipe or a log: no cropped numbers at rich's 80 columns
    out.print(table("Calibration: step time = F/(P·η_c) + B/(W·η_m) + t0", cols, rows, caption=caption))
    click.echo("held-out error (median / max): " + "; ".join(
        f"{f['hardware']} {f['dtype']} {f['phase']} {pct(f['heldout']['median_rel_error'])} / "
        f"{pct(f['heldout']['max_rel_error'])}" for f in calib["fits"]))
    for f in calib["fits"]:
        for w in f.get("warnings") or ():
            click.echo(f"llmecon: warning: {f['hardware']} {f['dtype']} {f['phase']}: {w}", err=True)


COMMANDS = [calibrate]


# --- `llmecon estimate ... --calibration` and `llmecon article --calibration` (called from those commands) ---

def _target(calib: dict, hardware_id: str | None, phase: str):
    """(hardware, the sheet's Accelerator or None when the calibrated device is not in the sheet)."""
    from llmecon.calibrate.apply import calibrated_hardware
    from llmecon.costmodel.hardware import get_accelerator, load_hardware

    hardware = hardware_id or calibrated_hardware(calib, phase)
    own = next((f for f in calib["fits"] if hardware in (f["hardware"], f.get("hardware_id"))), None)
    sheet_id = (own or {}).get("hardware_id") or hardware
    if own is not None and sheet_id not in load_hardware():
        return hardware, None          # e.g. a CPU: priced only with --usd-per-hour, peak = its measured ceiling
    return hardware, get_accelerator(sheet_id)


def _price(price_id, usd_per_hour, accelerator, hardware: str):
    from llmecon.cli.estimate import resolve_price
    from llmecon.errors import UserError, require_positive

    if accelerator is not None:
        return resolve_price(price_id, usd_per_hour, accelerator)
    if price_id is not None or usd_per_hour is None:
        raise UserError(f"{hardware} is not in the hardware sheet, so no --price applies to it: give --usd-per-hour X")
    value = require_positive("--usd-per-hour", usd_per_hour)
    return value, {"usd_per_accelerator_hour": value, "source": "--usd-per-hour"}


def _check_no_mfu(mfu) -> None:
    from llmecon.errors import UserError

    if mfu is not None:
        raise UserError("--mfu and --calibration do not go together: the calibration gives the utilization")


def _check_convention(convention, calib: dict, calibration) -> None:
    """A --convention the user gave must be the calibration's own: its η's are relative to that FLOP count."""
    from llmecon.errors import UserError

    if convention is not None and convention != calib["flop_convention"]:
        raise UserError(f"--convention {convention}: {calibration} counts FLOPs in the {calib['flop_convention']} "
                        f"convention (its efficiencies are relative to it); leave --convention out, or calibrate "
                        f"again with --convention {convention}")


def _calibrated_lines(est: dict, calibration: str) -> tuple[list, list, list]:
    from llmecon.units import pct, si

    def seconds(t: float) -> str:
        return f"{t:.4g} s" if t >= 1 else f"{t * 1e3:.4g} ms"

    terms = ", ".join(f"{k} {seconds(v)}" for k, v in est["terms_s"].items() if v > 0 or k == "overhead")
    inputs = [("calibration", f"{calibration} ({est['label']})"),
              ("held-out error of the fit", f"{pct(est['heldout_median_rel_error'])} median, "
                                            f"{pct(est['heldout_max_rel_error'])} max")]
    results = [("step time (predicted)", f"{seconds(est['step_time_s'])} = {terms}"),
               ("regime", est["regime"]),
               ("effective MFU", f"{pct(est['effective_mfu'])} of {si(est['peak_flops_per_s'], 'FLOP/s')} "
                                 f"({est['peak_source'].replace('_', ' ')}; {est['flop_convention']} FLOPs)")]
    notes = ["Calibrated: t = F/(P·η_compute) + B/(W·η_memory) + t0 at this phase, batch and context "
             "(llmecon calibrate); the effective MFU replaces a flat --mfu in the same cost formula."]
    if est["transferred"]:
        notes.append(f"TRANSFERRED: {est['label']} — the measured η and overhead applied to another accelerator's "
                     "datasheet peaks; an assumption, not a measurement of that accelerator.")
    if est["extrapolated"]:
        notes.append("Extrapolated: this step's FLOPs lie outside the range the calibration measured.")
    return inputs, results, notes


def calibrated_inference(*, model, hardware_id, price_id, usd_per_hour, mfu, convention=None, dtype, usd_per_kwh,
                         pue, tdp_w, as_json, context_len, batch_size, phase, calibration, transfer) -> None:
    """`llmecon estimate inference --calibration FILE`: the step predicted at this batch and context."""
    from llmecon.calibrate.apply import calibrated_dtype, estimate_inference
    from llmecon.calibrate.schema import load_calibration
    from llmecon.cli.estimate import _load_model, _print, _whole, add_energy, resolve_energy
    from llmecon.costmodel import estimate as est_mod
    from llmecon.units import si, usd

    _check_no_mfu(mfu)
    calib = load_calibration(calibration)
    _check_convention(convention, calib, calibration)
    hardware, accelerator = _target(calib, hardware_id, phase)
    dtype = dtype or calibrated_dtype(calib, hardware, phase, transfer=transfer)
    price, price_info = _price(price_id, usd_per_hour, accelerator, hardware)
    shape = _load_model(model)
    est = estimate_inference(calib, shape, hardware=hardware, dtype=dtype, phase=phase,
                             batch_size=_whole("--batch-size", batch_size),
                             context_len=_whole("--context-len", context_len),
                             usd_per_accelerator_hour=price, transfer=transfer)
    result = est["cost"]
    energy = None
    if usd_per_kwh is not None and accelerator is None and tdp_w is None:
        from llmecon.errors import UserError

        raise UserError(f"{hardware} is not in the hardware sheet: give --tdp-w W to price energy")
    energy = resolve_energy(result["seconds_per_1k_tokens"] / est_mod.SECONDS_PER_HOUR, accelerator, usd_per_kwh,
                            pue, tdp_w)
    flops_per_token = est["flops_per_step"] / est["tokens_per_step"]
    payload = {
        "model": shape.name, "hardware_id": hardware, "dtype": dtype, "convention": calib["flop_convention"],
        "params_total": shape.params_total, "phase": phase, "batch_size": est["batch_size"],
        "context_len": est["context_len"], "flops_per_token": flops_per_token,
        "flops_per_step": est["flops_per_step"], "bytes_per_step": est["bytes_per_step"],
        "peak_flops_per_s": est["peak_flops_per_s"], "peak_source": est["peak_source"],
        "mfu": est["effective_mfu"], "mfu_source": est["label"], "regime": est["regime"],
        "step_time_s": est["step_time_s"], "terms_s": est["terms_s"], "transferred": est["transferred"],
        "extrapolated": est["extrapolated"], "heldout_median_rel_error": est["heldout_median_rel_error"],
        "calibration": str(calibration), "usd_per_accelerator_hour": price, "price": price_info, **result,
    }
    add_energy(payload, energy, "_per_1k_tokens")
    if as_json:
        echo_json(payload)
        return
    extra_in, extra_res, notes = _calibrated_lines(est, calibration)
    inputs = [("model", f"{shape.name} ({si(shape.params_total, 'params')})"),
              ("workload", f"{phase}, batch {est['batch_size']:,}, context {est['context_len']:,}, {dtype}"),
              ("FLOPs / bytes per step", f"{si(est['flops_per_step'], 'FLOP')} / "
                                         f"{si(est['bytes_per_step'], 'B') if est['bytes_per_step'] else '—'}"),
              ("accelerator", hardware), *extra_in,
              ("price", f"{usd(price)}/accelerator-hour ({price_info['source']})")]
    results = [*extra_res, ("accelerator-seconds / 1K tokens", f"{result['seconds_per_1k_tokens']:.4g} s"),
               ("tokens/s per accelerator", f"{result['tokens_per_s_per_accelerator']:,.1f}"),
               ("$ / 1K tokens", usd(result["usd_per_1k_tokens"])), ("$ / 1M tokens", usd(result["usd_per_1m_tokens"]))]
    if energy is not None:
        results += [("kWh / 1K tokens", f"{energy['kwh']:.4g}"), ("energy $ / 1K tokens", usd(energy["usd_energy"]))]
    _print("inference (calibrated)", inputs, [
        "seconds/1K tokens = step time / tokens per step x 1,000 = FLOPs/token x 1,000 / (peak x effective MFU)",
        "$/1K tokens = seconds/1K tokens / 3,600 x $/accelerator-hour",
    ], results, notes)


def calibrated_training(*, model, hardware_id, price_id, usd_per_hour, mfu, convention=None, dtype, usd_per_kwh, pue,
                        tdp_w, as_json, tokens, num_accelerators, seq_len, bytes_per_param, batch_size, calibration,
                        transfer) -> None:
    """`llmecon estimate training --calibration FILE`: the training step predicted at this batch x seq_len."""
    from llmecon.calibrate.apply import calibrated_dtype, estimate_training
    from llmecon.calibrate.schema import load_calibration
    from llmecon.cli.estimate import _load_model, _print, _whole, parse_count, add_energy, resolve_energy
    from llmecon.costmodel.memory import training_memory_bytes
    from llmecon.errors import UserError, require_positive
    from llmecon.units import si, usd

    _check_no_mfu(mfu)
    calib = load_calibration(calibration)
    _check_convention(convention, calib, calibration)
    hardware, accelerator = _target(calib, hardware_id, "train")
    dtype = dtype or calibrated_dtype(calib, hardware, "train", transfer=transfer)
    price, price_info = _price(price_id, usd_per_hour, accelerator, hardware)
    shape = _load_model(model)
    if tokens is None:
        if not shape.training_tokens:
            raise UserError(f"--tokens is required: {shape.name} has no published training token count")
        n_tokens = float(shape.training_tokens)
    else:
        n_tokens = parse_count("--tokens", tokens)
    k = _whole("--num-accelerators", num_accelerators)
    state_bytes = float(training_memory_bytes(shape, bytes_per_param=require_positive("--bytes-per-param",
                                                                                      bytes_per_param))["total_bytes"])
    est = estimate_training(calib, shape, n_tokens, hardware=hardware, dtype=dtype,
                            batch_size=_whole("--batch-size", batch_size), seq_len=_whole("--seq-len", seq_len),
                            usd_per_accelerator_hour=price, num_accelerators=k, transfer=transfer,
                            state_bytes=state_bytes if accelerator is not None else None,
                            memory_bytes=accelerator.memory_bytes if accelerator is not None else None)
    result = est["cost"]
    if usd_per_kwh is not None and accelerator is None and tdp_w is None:
        raise UserError(f"{hardware} is not in the hardware sheet: give --tdp-w W to price energy")
    energy = resolve_energy(result["accelerator_hours"], accelerator, usd_per_kwh, pue, tdp_w)
    payload = {
        "model": shape.name, "hardware_id": hardware, "dtype": dtype, "convention": calib["flop_convention"],
        "params_total": shape.params_total, "tokens": n_tokens, "batch_size": est["batch_size"],
        "seq_len": est["seq_len"], "flops_per_step": est["flops_per_step"], "flops_total": est["flops_total"],
        "peak_flops_per_s": est["peak_flops_per_s"], "peak_source": est["peak_source"], "mfu": est["effective_mfu"],
        "mfu_source": est["label"], "regime": est["regime"], "step_time_s": est["step_time_s"],
        "terms_s": est["terms_s"], "transferred": est["transferred"], "extrapolated": est["extrapolated"],
        "heldout_median_rel_error": est["heldout_median_rel_error"], "calibration": str(calibration),
        "usd_per_accelerator_hour": price, "price": price_info, "num_accelerators": k, "state_bytes": state_bytes,
        **result,
    }
    add_energy(payload, energy)
    if as_json:
        echo_json(payload)
        return
    extra_in, extra_res, notes = _calibrated_lines(est, calibration)
    inputs = [("model", f"{shape.name} ({si(shape.params_total, 'params')})"), ("tokens", si(n_tokens)),
              ("step", f"batch {est['batch_size']:,} x seq {est['seq_len']:,} per accelerator, {dtype}, "
                       f"{si(est['flops_per_step'], 'FLOP')}"),
              ("accelerator", hardware), *extra_in,
              ("price", f"{usd(price)}/accelerator-hour ({price_info['source']})"), ("accelerators", f"{k:,}")]
    results = [*extra_res, ("training FLOPs", f"{si(est['flops_total'], 'FLOP')} ({calib['flop_convention']})"),
               ("accelerator-hours", f"{result['accelerator_hours']:,.4g}"), ("$ total", usd(result["usd_total"])),
               (f"wall-clock days on {k:,}", f"{result['wall_clock_days']:,.4g}")]
    if result.get("min_accelerators_for_state") is not None:
        results.append(("fewest accelerators that hold the state", f"{result['min_accelerators_for_state']:,}"))
    if energy is not None:
        results += [("energy", f"{energy['kwh']:,.4g} kWh"), ("energy $", usd(energy["usd_energy"]))]
    notes.append("Wall-clock assumes K accelerators scale perfectly (no communication term).")
    _print("training (calibrated)", inputs, [
        "accelerator-hours = steps x predicted step time / 3,600 = FLOPs / (peak x effective MFU) / 3,600",
        "$ = accelerator-hours x $/accelerator-hour; days = accelerator-hours / K / 24",
    ], results, notes)


def print_calibrated_article(doc: dict) -> None:
    """The article's inference and training figures beside the same figures at calibrated efficiency."""
    from llmecon.calibrate.article import describe_source
    from llmecon.cli.article import format_value
    from llmecon.units import pct

    out = console()
    for t in doc["tables"]:
        rows = [(r["label"], format_value(r["article"], r["unit"]), format_value(r["calibrated"], r["unit"]),
                 f"{r['difference']:+.1%}", f"{pct(r['mfu_article'])} → {pct(r['mfu_calibrated'])}", r["regime"],
                 "transferred" if r["transferred"] else "measured")
                for r in t["rows"]]
        caption = "Calibrated MFU in the article's FLOP count (2N / 6N). " + " ".join(
            f"{line}." for line in describe_source(t["rows"]))
        out.print(table(t["title"], ["figure", "article", "calibrated", "difference", "MFU", "regime", "basis"],
                        rows, caption=caption))
        out.print()
    a = doc["assumptions"]
    out.print(f"Calibrated from runs {', '.join(doc['calibration']['run_ids'])} on "
              f"{', '.join(doc['calibration']['device_names'])}; {a['note']}.")
    for reason in doc["skipped"]:
        click.echo(f"llmecon: warning: not calibrated: {reason}", err=True)
