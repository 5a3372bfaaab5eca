"""What inference and training cost: FLOPs -> accelerator-seconds -> dollars, energy.

The article's framework (docs/article.md §3.5, the article's figure 12, "Inference & Training Cost of
Densely Activated Decoder-Only Transformer LLMs"):

    accelerator-seconds = FLOPs / (dense peak FLOP/s x utilization)
    cost                = accelerator-seconds / 3,600 x price per accelerator-hour

with FLOPs = 2N per generated token (Kaplan et al. 2020, §2.1) and 6N per trained token
(idem), N the parameter count. Which FLOP count to use is the caller's choice (see
`costmodel.flops.CONVENTIONS`); this module takes FLOPs as a number.

What the model leaves out, as the article does: utilization is ONE flat number per phase (no batch,
sequence or memory-bandwidth dependence: decode at small batch is bandwidth-bound, so a flat MFU
overstates it there); idle time, networking, storage and host CPUs are not priced; wall-clock time
on K accelerators assumes the utilization holds at K (perfect scaling).

Each formula is written ONCE, on plain arithmetic (+ - * / and `//`), so that the same function
serves Python floats (`inference_cost`, `training_cost`, `energy_cost`, which validate scalars with
`errors.require_*`) and numpy arrays / pandas Series (`inference_grid`, `training_grid`, which
validate whole columns at once). There is no second copy of any formula.

No pandas or numpy at import time: `llmecon estimate` must answer in well under a second.
"""

from __future__ import annotations

from typing import Any

from llmecon.errors import UserError, require_count, require_fraction, require_positive

SECONDS_PER_HOUR = 3600.0
HOURS_PER_DAY = 24.0
WATTS_PER_KILOWATT = 1000.0


# ---------------------------------------------------------------------------------------------
# The formulas. Arguments may be floats, numpy arrays or pandas Series (broadcasting as usual).
# ---------------------------------------------------------------------------------------------

def effective_flops_per_s(peak_flops_per_s, mfu):
    """FLOP/s one accelerator delivers: dense datasheet peak x model FLOPs utilization.

    Source: the MFU definition of PaLM (Chowdhery et al. 2022, appendix B): MFU = observed model
    FLOP/s / theoretical peak FLOP/s. Inverting it gives the delivered FLOP/s.
    """
    return peak_flops_per_s * mfu


def achieved_utilization(work_per_step, step_time_s, peak_per_s):
    """The share of a peak a step reached: work / (time x peak). With FLOPs and a FLOP/s peak this is
    MFU, model FLOPs utilization (PaLM, Chowdhery et al. 2022, appendix B); with bytes and a bandwidth it
    is the bandwidth use of a memory-bound step (MBU). The inverse of `accelerator_seconds`."""
    return work_per_step / (step_time_s * peak_per_s)


def utilization_problem(value) -> str | None:
    """Why a utilization cannot be physical (not a finite number in (0, 1]), or None. Every derived MFU or
    bandwidth use is checked with this before it reaches a cost or a fit (docs/measuring.md)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "not a number"
    if not 0 < value <= 1:
        return f"{value:.6g} is outside (0, 1]" if abs(value - 1) > 1e-3 else f"{value!r} is outside (0, 1]"
    return None


def accelerator_seconds(flops, peak_flops_per_s, mfu):
    """Accelerator-seconds to execute `flops` model FLOPs (docs/article.md §3.3: time = FLOPs / (peak x MFU))."""
    return flops / effective_flops_per_s(peak_flops_per_s, mfu)


def usd_for_accelerator_seconds(seconds, usd_per_accelerator_hour):
    """Dollars for accelerator-seconds at an hourly price (docs/article.md §3.3: cost = time / 3,600 x $/hour)."""
    return seconds / SECONDS_PER_HOUR * usd_per_accelerator_hour


def price_per_accelerator_hour(instance_usd_per_hour, accelerators_per_instance):
    """An instance's hourly price spread over its accelerators (docs/article.md §3.3: p4d $19.22 / 8 A100s)."""
    return instance_usd_per_hour / accelerators_per_instance


def ceil_(x):
    """Ceiling that works on floats, numpy arrays and pandas Series alike (no numpy import)."""
    return -((-x) // 1)


def min_accelerators_for_state(state_bytes, memory_bytes_per_accelerator):
    """Fewest accelerators whose memory holds the training state: ceil(state / memory per accelerator).

    Source: the article's §1.8 (docs/article.md §3.8): GPT-3 needs 175e9 x 20 B = 3.5 TB, / 80 GB = 43.75
    -> at least 44 H100s. A lower bound: activations, fragmentation and framework buffers are ignored.
    """
    return ceil_(state_bytes / memory_bytes_per_accelerator)


def _inference_columns(flops_per_token, peak_flops_per_s, mfu, usd_per_accelerator_hour) -> dict:
    """docs/article.md §3.3: cost per 1K tokens = (FLOPs per token x 1,000) / (peak x MFU) / 3,600 x $/hour."""
    seconds_per_token = accelerator_seconds(flops_per_token, peak_flops_per_s, mfu)
    return {
        "effective_flops_per_s": effective_flops_per_s(peak_flops_per_s, mfu),
        "seconds_per_1k_tokens": 1e3 * seconds_per_token,
        "tokens_per_s_per_accelerator": 1.0 / seconds_per_token,
        "usd_per_1k_tokens": usd_for_accelerator_seconds(1e3 * seconds_per_token, usd_per_accelerator_hour),
        "usd_per_1m_tokens": usd_for_accelerator_seconds(1e6 * seconds_per_token, usd_per_accelerator_hour),
    }


def _training_columns(flops_total, peak_flops_per_s, mfu, usd_per_accelerator_hour, num_accelerators) -> dict:
    """docs/article.md §3.4: cost = FLOPs / (peak x MFU) / 3,600 x $/accelerator-hour; days = hours / K / 24."""
    accelerator_hours = accelerator_seconds(flops_total, peak_flops_per_s, mfu) / SECONDS_PER_HOUR
    return {
        "accelerator_hours": accelerator_hours,
        "usd_total": accelerator_hours * usd_per_accelerator_hour,
        "wall_clock_days": accelerator_hours / num_accelerators / HOURS_PER_DAY,
    }


def _energy_columns(accelerator_hours, tdp_w, usd_per_kwh, pue) -> dict:
    """kWh = accelerator-hours x TDP / 1,000 x PUE; $ = kWh x $/kWh.

    TDP (board power limit) stands in for the power drawn: an upper bound for the accelerator alone
    (Epoch AI's cost analysis uses ~75% of TDP as the average for GPUs). Host CPUs, memory, network
    and cooling beyond the PUE factor are not counted. Measured power replaces TDP once a benchmark
    has recorded it.
    """
    kwh = accelerator_hours * tdp_w / WATTS_PER_KILOWATT * pue
    return {"kwh": kwh, "usd_energy": kwh * usd_per_kwh}


# ---------------------------------------------------------------------------------------------
# Scalar API: validate, then call the formulas above.
# ---------------------------------------------------------------------------------------------

def require_pue(value, name: str = "pue") -> float:
    """Power usage effectiveness: a finite number >= 1 (1.0 counts the accelerator alone)."""
    value = require_positive(name, value)
    if value < 1:
        raise UserError(f"{name} must be >= 1 (1.0 = accelerator power only), got {value:g}")
    return value


def inference_cost(flops_per_token, peak_flops_per_s, mfu, usd_per_accelerator_hour) -> dict:
    """Cost of generating tokens at a flat utilization (the article's §3.3 framework).

    Returns effective_flops_per_s, seconds_per_1k_tokens (accelerator-seconds), tokens_per_s_per_accelerator,
    usd_per_1k_tokens and usd_per_1m_tokens. All inputs must be finite and > 0; mfu in (0, 1].
    """
    return _inference_columns(
        require_positive("flops_per_token", flops_per_token),
        require_positive("peak_flops_per_s", peak_flops_per_s),
        require_fraction("mfu", mfu),
        require_positive("usd_per_accelerator_hour", usd_per_accelerator_hour),
    )


def training_cost(flops_total, peak_flops_per_s, mfu, usd_per_accelerator_hour, num_accelerators=1,
                  state_bytes=None, memory_bytes=None) -> dict:
    """Cost of a training run (the article's §3.4 framework).

    Returns accelerator_hours, usd_total, wall_clock_days (on num_accelerators, assuming the utilization
    holds at that scale) and min_accelerators_for_state (None unless state_bytes and memory_bytes, the
    memory of one accelerator, are both given).
    """
    out = _training_columns(
        require_positive("flops_total", flops_total),
        require_positive("peak_flops_per_s", peak_flops_per_s),
        require_fraction("mfu", mfu),
        require_positive("usd_per_accelerator_hour", usd_per_accelerator_hour),
        require_count("num_accelerators", num_accelerators),
    )
    if (state_bytes is None) != (memory_bytes is None):
        raise UserError("state_bytes and memory_bytes go together: give both or neither")
    out["min_accelerators_for_state"] = None
    if state_bytes is not None:
        out["min_accelerators_for_state"] = int(min_accelerators_for_state(
            require_positive("state_bytes", state_bytes), require_positive("memory_bytes", memory_bytes)))
    return out


def energy_cost(accelerator_hours, tdp_w, usd_per_kwh, pue) -> dict:
    """Energy of accelerator-hours at board power (TDP, for now), facility PUE and an electricity price.

    Returns kwh and usd_energy. pue >= 1 (1.0 counts the accelerator alone); usd_per_kwh may be 0.
    """
    return _energy_columns(
        require_positive("accelerator_hours", accelerator_hours),
        require_positive("tdp_w", tdp_w),
        require_positive("usd_per_kwh", usd_per_kwh, allow_zero=True),
        require_pue(pue),
    )


# ---------------------------------------------------------------------------------------------
# Vectorised API over pandas frames: validate whole columns, then call the SAME formulas.
# ---------------------------------------------------------------------------------------------

INFERENCE_INPUTS = ("flops_per_token", "peak_flops_per_s", "mfu", "usd_per_accelerator_hour")
TRAINING_INPUTS = ("flops_total", "peak_flops_per_s", "mfu", "usd_per_accelerator_hour")
ENERGY_INPUTS = ("tdp_w", "usd_per_kwh", "pue")


def _column(frame, name: str, rule: str):
    """Column `name` as float64, after checking every row against `rule`; UserError naming the field.

    rule: "positive" (finite, > 0), "nonnegative" (finite, >= 0), "fraction" (in (0, 1]),
    "count" (whole number >= 1), "pue" (finite, >= 1).
    """
    import numpy as np
    import pandas as pd

    if name not in frame.columns:
        raise UserError(f"grid is missing column {name!r}; it needs {', '.join(_needed(name))}")
    column = frame[name]
    if not (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)):
        raise UserError(f"grid column {name!r} must be numeric, got dtype {column.dtype}")
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        if rule == "positive":
            ok, bound = np.isfinite(values) & (values > 0), "finite and > 0"
        elif rule == "nonnegative":
            ok, bound = np.isfinite(values) & (values >= 0), "finite and >= 0"
        elif rule == "fraction":
            ok, bound = (values > 0) & (values <= 1), "in (0, 1]"
        elif rule == "count":
            ok, bound = np.isfinite(values) & (values >= 1) & (values == np.floor(values)), "a whole number >= 1"
        elif rule == "pue":
            ok, bound = np.isfinite(values) & (values >= 1), "finite and >= 1"
        else:  # pragma: no cover - programming error
            raise AssertionError(rule)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        first = bad[0]
        raise UserError(f"grid column {name!r} must be {bound}: {len(bad):,} bad row(s), first at row "
                        f"{frame.index[first]!r} (value {values[first]!r})")
    return pd.Series(values, index=frame.index, name=name)


def _needed(name: str) -> tuple[str, ...]:
    for group in (INFERENCE_INPUTS, TRAINING_INPUTS, ENERGY_INPUTS):
        if name in group:
            return group
    return (name,)


def _with_energy(frame, columns: dict, accelerator_hours) -> dict:
    """Add kwh/usd_energy when the frame carries all of tdp_w, usd_per_kwh and pue."""
    present = [c for c in ENERGY_INPUTS if c in frame.columns]
    if not present:
        return columns
    if len(present) != len(ENERGY_INPUTS):
        missing = [c for c in ENERGY_INPUTS if c not in frame.columns]
        raise UserError(f"grid has {', '.join(present)} but not {', '.join(missing)}: energy needs all of "
                        f"{', '.join(ENERGY_INPUTS)}")
    energy = _energy_columns(accelerator_hours, _column(frame, "tdp_w", "positive"),
                             _column(frame, "usd_per_kwh", "nonnegative"), _column(frame, "pue", "pue"))
    columns.update(energy)
    return columns


def inference_grid(frame) -> Any:
    """Vectorised `inference_cost` over a DataFrame, one row per (model x accelerator x price x utilization).

    Needs columns flops_per_token, peak_flops_per_s, mfu, usd_per_accelerator_hour; with tdp_w,
    usd_per_kwh and pue it adds kwh_per_1k_tokens and usd_energy_per_1k_tokens. Returns a new frame:
    the input columns plus those of `inference_cost`. Every row is checked; a bad one is a UserError
    naming the column and the first offending row.
    """
    columns = _inference_columns(*(_column(frame, name, "fraction" if name == "mfu" else "positive")
                                   for name in INFERENCE_INPUTS))
    energy = _with_energy(frame, {}, columns["seconds_per_1k_tokens"] / SECONDS_PER_HOUR)
    if energy:
        columns["kwh_per_1k_tokens"] = energy["kwh"]
        columns["usd_energy_per_1k_tokens"] = energy["usd_energy"]
    return frame.assign(**columns)


def training_grid(frame) -> Any:
    """Vectorised `training_cost` over a DataFrame.

    Needs flops_total, peak_flops_per_s, mfu, usd_per_accelerator_hour; optional num_accelerators
    (default 1), state_bytes + memory_bytes (-> min_accelerators_for_state), tdp_w + usd_per_kwh + pue
    (-> kwh, usd_energy).
    """
    import pandas as pd

    if "num_accelerators" in frame.columns:
        num = _column(frame, "num_accelerators", "count")
    else:
        num = pd.Series(1.0, index=frame.index)
    columns = _training_columns(*(_column(frame, name, "fraction" if name == "mfu" else "positive")
                                  for name in TRAINING_INPUTS), num)
    has_state = [c in frame.columns for c in ("state_bytes", "memory_bytes")]
    if any(has_state) and not all(has_state):
        raise UserError("grid columns state_bytes and memory_bytes go together: give both or neither")
    if all(has_state):
        columns["min_accelerators_for_state"] = min_accelerators_for_state(
            _column(frame, "state_bytes", "positive"), _column(frame, "memory_bytes", "positive")).astype("int64")
    columns = _with_energy(frame, columns, columns["accelerator_hours"])
    return frame.assign(**columns)


__all__ = [
    "SECONDS_PER_HOUR", "effective_flops_per_s", "accelerator_seconds", "usd_for_accelerator_seconds",
    "min_accelerators_for_state", "price_per_accelerator_hour", "inference_cost", "training_cost",
    "energy_cost", "inference_grid", "training_grid", "INFERENCE_INPUTS", "TRAINING_INPUTS", "ENERGY_INPUTS",
]
