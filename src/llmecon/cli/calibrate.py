"""`llmecon calibrate`: fit step-time models to measured runs and write a calibration file."""

from __future__ import annotations

import click

from llmecon.api import calibrate as fit
from llmecon.calibration.fit import DEFAULT_MAX_HELDOUT_ERROR
from llmecon.cli._output import echo_json, warn
from llmecon.cli._views import print_calibration
from llmecon.vocab import CALIBRATION_CONVENTION, CONVENTIONS


@click.command("calibrate")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="calibration.json", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the calibration file (JSON).")
@click.option("--convention", type=click.Choice(CONVENTIONS), default=CALIBRATION_CONVENTION, show_default=True,
              help="FLOP convention F is counted in (η is relative to it; estimates count the same way).")
@click.option("--max-heldout-error", default=f"{DEFAULT_MAX_HELDOUT_ERROR:.0%}", show_default=True,
              help="Refuse a fit whose median held-out relative error is above this.")
@click.option("--force", is_flag=True, help="Keep fits whose held-out error is above --max-heldout-error.")
@click.option("--per-layer-overhead/--no-per-layer-overhead", default=True, show_default=True,
              help="Fit the overhead as t0 + L·τ (L decoder layers) when the runs hold two or more depths; "
                   "--no-per-layer-overhead fits one t0 whatever the depth.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
def calibrate(runs, output, convention, max_heldout_error, force, per_layer_overhead, as_json) -> None:
    """Fit time per step = F/(P·η_compute) + B/(W·η_memory) + t0 + L·τ per (hardware, dtype, phase).

    RUNS are run folders or folders of runs written by `llmecon bench`. Only valid rows are used. L is the
    model's number of decoder layers; τ, the overhead per layer, is fitted only when the runs hold models
    of two or more depths. Each fit is checked on shapes held out of it (leave-one-shape-out) and refused
    when there are fewer than 3 distinct shapes or that error is above --max-heldout-error; with two or
    more models, each model is also predicted by a fit on the others (leave-one-model-out), and an error
    above the threshold there is a warning: the fit does not carry to other models that well. P and W
    are the datasheet peaks when the device is in the hardware sheet, else the ceilings measured on the
    device.

    \b
    Example:
      llmecon bench --model tiny --batch-size 1,4 --seq-len 64,256
      llmecon calibrate llmecon-out -o calibration.json
      llmecon bench --model tiny,deeper/config.json --batch-size 1,4 --seq-len 64,256   two depths: τ
      llmecon calibrate llmecon-out -o calibration.json
      llmecon estimate inference --model llama-3-8b --calibration calibration.json --batch-size 8 --usd-per-hour 2
    """
    calib = fit(runs, output, convention=convention, max_heldout_error=max_heldout_error, force=force,
                per_layer_overhead=per_layer_overhead)
    for problem in calib.provenance.problems:
        warn(problem)
    if as_json:
        echo_json(calib)
        for r in calib.refused:
            warn(f"not fitted: {r.describe()}")
    else:
        print_calibration(calib)
    click.echo(f"wrote {output}", err=as_json)


COMMAND = calibrate
