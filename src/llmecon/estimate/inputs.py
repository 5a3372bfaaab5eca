"""What an estimate needs, each resolved in one place: the model, the accelerator and its peak, the price per
accelerator-hour, the utilization or the calibration, the energy. Errors name the CLI option (the Python
API takes the same names: ``--usd-per-hour`` is ``usd_per_hour``)."""

from __future__ import annotations

import os
from typing import Any

from llmecon.calibration import reference
from llmecon.calibration.document import Calibration
from llmecon.calibration.reference import Reference
from llmecon.costmodel import estimate as formulas
from llmecon.costmodel.architecture import ModelShape
from llmecon.costmodel.presets import load_model_shape
from llmecon.costmodel.hardware import Accelerator, get_accelerator, load_hardware
from llmecon.costmodel.prices import get_price
from llmecon.errors import UserError, require_fraction, require_positive
from llmecon.units import parse_fraction
from llmecon.vocab import CONVENTIONS, DTYPES

DEFAULT_DTYPE = "bf16"
DEFAULT_PUE = 1.0
PUBLISHED_NOTE = ("Published reference: the step-time model fitted on measurements others published (their engine, "
                  "settings and rounding; `sources`), not on your machine; `llmecon bench` and `llmecon calibrate` "
                  "measure your own. Held-out errors are of the published points.")


def model_shape(model) -> ModelShape:
    return model if isinstance(model, ModelShape) else load_model_shape(model)


def calibration(value) -> Calibration | None:
    """A Calibration given as itself or as the path of its file (None stays None)."""
    if value is None or isinstance(value, Calibration):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise UserError(f"--calibration must be a calibration file, got {value!r}")
    return Calibration.load(value)


def check_basis(calib: Calibration | None, mfu, transfer: bool, hardware: str | None, engine: str | None = None) -> None:
    """A flat or a published estimate needs --hardware and takes no --transfer; a calibrated one takes no --mfu;
    --engine picks a published reference, so it takes neither."""
    if calib is None:
        if transfer:
            raise UserError("--transfer only applies with --calibration FILE")
        if hardware is None:
            raise UserError("--hardware is required (or --calibration FILE, whose accelerator is then the default)")
    elif mfu is not None:
        raise UserError("--mfu and --calibration do not go together: the calibration gives the utilization")
    if engine is not None and (calib is not None or mfu is not None):
        raise UserError("--engine picks a published reference calibration: it does not go with --mfu or "
                        "--calibration")


def published(hardware: str, phase: str, dtype: str | None, engine: str | None) -> Reference:
    """The published reference for an estimate given neither --mfu nor --calibration (calibration.reference)."""
    return reference.choose(hardware, phase, dtype=dtype, engine=engine, preferred_dtype=DEFAULT_DTYPE)


def published_fields(ref: Reference, given_dtype: str | None, notes: list[str]) -> dict:
    """What a published estimate says of its basis (the engine, the fit's points and their sources) and its notes,
    with where its dtype came from: --dtype, or the reference's (the fit's, or its 16-bit sibling on a target
    without that peak)."""
    dtype_note = [] if given_dtype else [f"dtype {ref.dtype}: the published reference's (give --dtype to ask for "
                                         "another; a reference in it is used, or transferred, if there is one)."]
    return {"basis": "published", "calibration": f"published ({ref.engine})", "engine": ref.engine,
            "reference": ref.describe(), "points": ref.fit.n_rows, "point_ids": list(ref.fit.run_ids),
            "sources": list(ref.fit.sources), "dtype_source": "--dtype" if given_dtype else "the published reference's",
            "notes": [PUBLISHED_NOTE, *dtype_note, *notes]}


def peak(accelerator: Accelerator, dtype: str) -> float:
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r}; known: {', '.join(DTYPES)}")
    value = accelerator.peak(dtype)
    if value is None:
        have = [d for d in DTYPES if accelerator.peak(d) is not None]
        raise UserError(f"the hardware sheet has no dense {dtype} peak for {accelerator.id}; it has: "
                        f"{', '.join(have) or 'none'} (choose one with --dtype)")
    return float(value)


def price(price_id: str | None, usd_per_hour, accelerator: Accelerator | None, hardware: str) -> tuple[float, dict]:
    """USD per accelerator-hour, from ``--price ID`` (the instance's price over its accelerators) or
    ``--usd-per-hour``, with a description of where it came from."""
    if accelerator is None and (price_id is not None or usd_per_hour is None):
        raise UserError(f"{hardware} is not in the hardware sheet, so no --price applies to it: give --usd-per-hour X")
    if (price_id is None) == (usd_per_hour is None):
        raise UserError("give exactly one of --price ID (see `llmecon prices`) or --usd-per-hour X (per accelerator)")
    if usd_per_hour is not None:
        value = require_positive("--usd-per-hour", usd_per_hour)
        return value, {"usd_per_accelerator_hour": value, "source": "--usd-per-hour"}
    offer = get_price(price_id)
    if offer.accelerator_id != accelerator.id:
        raise UserError(f"price {offer.id!r} is for {offer.accelerator_id}, not {accelerator.id}; "
                        f"pick a price for {accelerator.id} or change --hardware")
    value = formulas.price_per_accelerator_hour(offer.usd_per_hour, offer.count)
    return value, {"usd_per_accelerator_hour": value, "source": f"--price {offer.id}", "price_id": offer.id,
                   "provider": offer.provider, "instance": offer.instance, "term": offer.term,
                   "instance_usd_per_hour": offer.usd_per_hour, "accelerators_per_instance": offer.count,
                   "date": offer.date}


def flat_mfu(mfu, phase: str) -> float:
    """The flat utilization of an estimate without a calibration: ``--mfu`` in (0, 1], as a fraction or a
    percentage ('0.213' or '21.3%')."""
    if mfu is None:   # an estimate without either goes to a published reference before it gets here
        raise UserError(f"--mfu is required without --calibration (the {phase} utilization in (0, 1], e.g. 21.3%; "
                        "the article used 21.3% for inference, 46.2% for training)")
    return require_fraction("--mfu", parse_fraction("--mfu", mfu))


def convention(given: str | None, calib: Calibration | None) -> str:
    """The FLOP convention: the calibration's own (its η's are relative to it), else --convention, else the
    article's."""
    if given is not None and given not in CONVENTIONS:
        raise UserError(f"unknown --convention {given!r}; known: {', '.join(CONVENTIONS)}")
    if calib is None:
        return given or "article"
    if given is not None and given != calib.flop_convention:
        raise UserError(f"--convention {given}: the calibration counts FLOPs in the {calib.flop_convention} "
                        f"convention (its efficiencies are relative to it); leave --convention out, or calibrate "
                        f"again with --convention {given}")
    return calib.flop_convention


def calibrated_target(calib: Calibration, hardware: str | None, phase: str) -> tuple[str, Accelerator | None]:
    """(hardware, its hardware-sheet entry or None when the calibrated device is not on the sheet, a CPU say)."""
    hardware = hardware or calib.hardware_for(phase)
    own = next((f for f in calib.fits if f.matches(hardware)), None)
    sheet_id = (own.hardware_id if own is not None else None) or hardware
    if own is not None and sheet_id not in load_hardware():
        return hardware, None
    return hardware, get_accelerator(sheet_id)


def dtype(given: str | None, calib: Calibration | None, hardware: str, phase: str, transfer: bool) -> tuple[str, str]:
    """(dtype, where it came from): --dtype, else the calibration's dtype for that phase, else bf16."""
    if given is not None:
        return given, "--dtype"
    if calib is not None:
        return calib.dtype_for(hardware, phase, transfer=transfer), "the calibration's"
    return DEFAULT_DTYPE, "default"


def energy(accelerator_hours: float, accelerator: Accelerator | None, hardware: str, usd_per_kwh, pue,
           tdp_w) -> dict[str, Any] | None:
    """kWh and $ of energy when --usd-per-kwh is given (board power from the sheet's TDP unless --tdp-w)."""
    pue = formulas.require_pue(pue, "--pue")   # a bad --pue is refused even when energy is not priced
    if usd_per_kwh is None:
        if tdp_w is not None:
            raise UserError("--tdp-w only matters with --usd-per-kwh (energy is priced only when asked)")
        return None
    if tdp_w is not None:
        watts, source = require_positive("--tdp-w", tdp_w), "--tdp-w"
    elif accelerator is None:
        raise UserError(f"{hardware} is not in the hardware sheet: give --tdp-w W to price energy")
    elif accelerator.tdp_w is None:
        raise UserError(f"the hardware sheet has no TDP for {accelerator.id}; give --tdp-w W to price energy")
    else:
        watts, source = float(accelerator.tdp_w), "hardware sheet TDP"
    out = formulas.energy_cost(accelerator_hours, watts, require_positive("--usd-per-kwh", usd_per_kwh,
                                                                          allow_zero=True), pue)
    return {**out, "tdp_w": watts, "tdp_source": source, "usd_per_kwh": float(usd_per_kwh), "pue": float(pue)}


def energy_fields(energy_info: dict | None, suffix: str = "") -> dict:
    """The JSON fields of an energy estimate: kwh<suffix>, usd_energy<suffix> and the whole block."""
    if energy_info is None:
        return {}
    return {f"kwh{suffix}": energy_info["kwh"], f"usd_energy{suffix}": energy_info["usd_energy"],
            "energy": energy_info}


def beyond_context(shape: ModelShape, length: int, flag: str) -> list[str]:
    """A note when the priced length exceeds what the model can attend (the arithmetic still holds)."""
    if length <= shape.max_position_embeddings:
        return []
    return [f"{flag} {length:,} exceeds {shape.name}'s max_position_embeddings {shape.max_position_embeddings:,}: "
            "arithmetic only, the model cannot run this shape."]
