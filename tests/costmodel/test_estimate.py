"""costmodel.estimate: the article's framework (docs/article.md §3.3-3.5, §3.8), validation, and grid == scalar."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from llmecon.costmodel import estimate as est
from llmecon.errors import UserError

GPT3_N = 175e9
A100_PEAK, TPU_V4_PEAK = 312e12, 275e12


# --- the article's numbers through the scalar API ----------------------------------------------

def test_estimate_inference_gpt3_on_aws_p4d():
    # docs/article.md §3.3: 2 x 175e9 x 1,000 = 3.5e14 FLOPs; 8 x 312e12 x 0.213 = 5.316e14 FLOP/s -> 0.658 s
    # per 1K tokens on the instance; x $19.22/h = $0.003515 ~ $0.0035.
    r = est.inference_cost(2 * GPT3_N, A100_PEAK, 0.213, est.price_per_accelerator_hour(19.22, 8))
    assert r["seconds_per_1k_tokens"] / 8 == pytest.approx(0.658, abs=5e-4)
    assert r["usd_per_1k_tokens"] == pytest.approx(0.003515, rel=1e-3)
    assert r["usd_per_1m_tokens"] == pytest.approx(1e3 * r["usd_per_1k_tokens"], rel=1e-12)
    assert r["tokens_per_s_per_accelerator"] == pytest.approx(1e3 / r["seconds_per_1k_tokens"], rel=1e-12)
    assert r["effective_flops_per_s"] == pytest.approx(312e12 * 0.213)


def test_estimate_inference_gpt3_on_tpu_v4():
    # docs/article.md §3.3: 275e12 x 0.213 = 5.8575e13 FLOP/s -> 5.975 chip-seconds per 1K tokens; $2.03 -> $0.00337.
    r = est.inference_cost(2 * GPT3_N, TPU_V4_PEAK, 0.213, 2.03)
    assert r["seconds_per_1k_tokens"] == pytest.approx(5.975, abs=5e-4)
    assert r["usd_per_1k_tokens"] == pytest.approx(0.00337, abs=5e-6)


def test_estimate_training_gpt3_on_tpu_v4():
    # docs/article.md §3.4: 6 x 175e9 x 300e9 = 3.15e23 FLOPs; / 1.2705e14 / 3,600 = 688,705 chip-hours; x $2.03 = $1.398M.
    r = est.training_cost(6 * GPT3_N * 300e9, TPU_V4_PEAK, 0.462, 2.03, num_accelerators=1000,
                          state_bytes=20 * GPT3_N, memory_bytes=80e9)
    assert r["accelerator_hours"] == pytest.approx(688_705, abs=1)
    assert r["usd_total"] == pytest.approx(1.398e6, rel=1e-3)
    assert r["wall_clock_days"] == pytest.approx(688_705.2 / 1000 / 24, rel=1e-6)
    # docs/article.md §3.8: 3.5 TB / 80 GB = 43.75 -> 44 H100s.
    assert r["min_accelerators_for_state"] == 44


def test_estimate_training_palm_on_tpu_v4():
    # docs/article.md §3.4: PaLM 6 x 540e9 x 780e9 = 2.527e24 -> 5,525,384 chip-hours -> $11.22M.
    r = est.training_cost(6 * 540e9 * 780e9, TPU_V4_PEAK, 0.462, 2.03)
    assert r["accelerator_hours"] == pytest.approx(5_525_384, abs=1)
    assert r["usd_total"] == pytest.approx(11.22e6, rel=1e-3)
    assert r["min_accelerators_for_state"] is None


def test_estimate_min_accelerators_exact_multiple_and_above():
    assert est.min_accelerators_for_state(160e9, 80e9) == 2
    assert est.min_accelerators_for_state(160e9 + 1, 80e9) == 3
    assert est.min_accelerators_for_state(1.0, 80e9) == 1


def test_estimate_energy_from_tdp():
    # 100 accelerator-hours at 700 W, PUE 1.1: 77 kWh; at $0.10/kWh: $7.70.
    r = est.energy_cost(100, 700, 0.10, 1.1)
    assert r["kwh"] == pytest.approx(77.0)
    assert r["usd_energy"] == pytest.approx(7.7)
    assert est.energy_cost(100, 700, 0, 1.0)["usd_energy"] == 0  # free electricity is allowed


# --- achieved utilization: the inverse of the framework ---------------------------------------------

def test_estimate_achieved_utilization_inverts_accelerator_seconds():
    # docs/article.md §3.3: 3.5e14 FLOPs per 1K tokens at 312e12 x 0.213 take 5.267 s; so that step's MFU is 0.213
    seconds = est.accelerator_seconds(2 * GPT3_N * 1e3, A100_PEAK, 0.213)
    assert seconds == pytest.approx(5.267, abs=5e-4)
    assert est.achieved_utilization(2 * GPT3_N * 1e3, seconds, A100_PEAK) == pytest.approx(0.213, rel=1e-12)


def test_estimate_achieved_utilization_of_bytes_is_bandwidth_use():
    # 16 GB read in 8 ms from a 3.35 TB/s HBM: 16e9 / (8e-3 x 3.35e12) = 59.7 %
    assert est.achieved_utilization(16e9, 8e-3, 3.35e12) == pytest.approx(0.5970, abs=1e-4)


def test_estimate_achieved_utilization_works_on_arrays():
    work = np.array([1e12, 2e12, 4e12])
    out = est.achieved_utilization(work, np.array([1.0, 1.0, 2.0]), 1e13)
    assert np.allclose(out, [0.1, 0.2, 0.2])


@pytest.mark.parametrize("value", [1e-9, 0.213, 1, 1.0])
def test_estimate_utilization_problem_accepts_the_unit_interval(value):
    assert est.utilization_problem(value) is None


@pytest.mark.parametrize("value, problem", [
    (None, "not a number"), (float("nan"), "not a number"), ("0.5", "not a number"), (True, "not a number"),
    (0, "0 is outside (0, 1]"), (-0.2, "-0.2 is outside (0, 1]"), (1.5, "1.5 is outside (0, 1]"),
    (float("inf"), "inf is outside (0, 1]"), (1.0000001, "1.0000001 is outside (0, 1]"),
])
def test_estimate_utilization_problem_says_why(value, problem):
    assert est.utilization_problem(value) == problem


def test_estimate_utilization_problem_refuses_just_above_one():
    assert est.utilization_problem(1.0000001) is not None


# --- validation ----------------------------------------------------------------------------------

GOOD_INFERENCE = dict(flops_per_token=3.5e11, peak_flops_per_s=312e12, mfu=0.213, usd_per_accelerator_hour=2.4)
BAD_NUMBERS = [0, -1, float("nan"), float("inf"), "abc", None]


@pytest.mark.parametrize("field", sorted(GOOD_INFERENCE))
@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_estimate_inference_rejects_bad_numbers_naming_the_field(field, bad):
    with pytest.raises(UserError, match=field):
        est.inference_cost(**{**GOOD_INFERENCE, field: bad})


@pytest.mark.parametrize("mfu", [0, 1.2, 1.0000001, -0.5, float("nan")])
def test_estimate_mfu_outside_unit_interval(mfu):
    with pytest.raises(UserError, match="mfu"):
        est.inference_cost(**{**GOOD_INFERENCE, "mfu": mfu})
    with pytest.raises(UserError, match="mfu"):
        est.training_cost(1e20, 312e12, mfu, 2.0)


def test_estimate_mfu_of_one_is_allowed():
    assert est.inference_cost(**{**GOOD_INFERENCE, "mfu": 1})["usd_per_1k_tokens"] > 0


@pytest.mark.parametrize("kw, field", [
    (dict(flops_total=-1), "flops_total"), (dict(num_accelerators=0), "num_accelerators"),
    (dict(num_accelerators=2.5), "num_accelerators"), (dict(num_accelerators=float("nan")), "num_accelerators"),
    (dict(state_bytes=1e12, memory_bytes=0), "memory_bytes"), (dict(state_bytes=-1, memory_bytes=8e10), "state_bytes"),
    (dict(state_bytes=1e12), "memory_bytes"), (dict(memory_bytes=8e10), "state_bytes"),
])
def test_estimate_training_rejects(kw, field):
    args = dict(flops_total=1e21, peak_flops_per_s=312e12, mfu=0.4, usd_per_accelerator_hour=2.0)
    args.update(kw)
    with pytest.raises(UserError, match=field):
        est.training_cost(**args)


@pytest.mark.parametrize("kw, field", [
    (dict(accelerator_hours=0), "accelerator_hours"), (dict(tdp_w=float("nan")), "tdp_w"),
    (dict(usd_per_kwh=-0.1), "usd_per_kwh"), (dict(pue=0.9), "pue"), (dict(pue=0), "pue"),
])
def test_estimate_energy_rejects(kw, field):
    args = dict(accelerator_hours=10, tdp_w=700, usd_per_kwh=0.1, pue=1.1)
    args.update(kw)
    with pytest.raises(UserError, match=field):
        est.energy_cost(**args)


# --- grids: the same formulas, vectorised --------------------------------------------------------

def _inference_frame(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "model": rng.choice(["a", "b", "c"], n),
        "flops_per_token": rng.uniform(1e8, 2e12, n),
        "peak_flops_per_s": rng.choice([312e12, 275e12, 989e12], n),
        "mfu": rng.uniform(0.01, 1.0, n),
        "usd_per_accelerator_hour": rng.uniform(0.5, 12, n),
        "tdp_w": rng.choice([400.0, 700.0], n),
        "usd_per_kwh": rng.uniform(0, 0.2, n),
        "pue": rng.uniform(1.0, 1.5, n),
    })


def test_estimate_inference_grid_equals_scalar_on_every_row():
    frame = _inference_frame()
    out = est.inference_grid(frame)
    assert list(out.columns[: len(frame.columns)]) == list(frame.columns)
    for i in range(len(frame)):
        row = frame.iloc[i]
        ref = est.inference_cost(row.flops_per_token, row.peak_flops_per_s, row.mfu, row.usd_per_accelerator_hour)
        for key, value in ref.items():
            assert out[key].iloc[i] == value  # bit-identical: one formula, not two
        energy = est.energy_cost(ref["seconds_per_1k_tokens"] / 3600, row.tdp_w, row.usd_per_kwh, row.pue)
        assert out["kwh_per_1k_tokens"].iloc[i] == pytest.approx(energy["kwh"], rel=1e-15)
        assert out["usd_energy_per_1k_tokens"].iloc[i] == pytest.approx(energy["usd_energy"], rel=1e-15)


def test_estimate_training_grid_equals_scalar_on_every_row():
    rng = np.random.default_rng(1)
    n = 48
    frame = pd.DataFrame({
        "flops_total": rng.uniform(1e18, 1e25, n), "peak_flops_per_s": rng.choice([312e12, 989e12], n),
        "mfu": rng.uniform(0.05, 0.9, n), "usd_per_accelerator_hour": rng.uniform(1, 5, n),
        "num_accelerators": rng.integers(1, 10_000, n), "state_bytes": rng.uniform(1e9, 1e13, n),
        "memory_bytes": rng.choice([40e9, 80e9], n), "tdp_w": 700.0, "usd_per_kwh": 0.08, "pue": 1.1,
    })
    out = est.training_grid(frame)
    for i in range(n):
        r = frame.iloc[i]
        ref = est.training_cost(r.flops_total, r.peak_flops_per_s, r.mfu, r.usd_per_accelerator_hour,
                                num_accelerators=int(r.num_accelerators), state_bytes=r.state_bytes,
                                memory_bytes=r.memory_bytes)
        for key, value in ref.items():
            assert out[key].iloc[i] == value
        energy = est.energy_cost(ref["accelerator_hours"], 700.0, 0.08, 1.1)
        assert out["kwh"].iloc[i] == pytest.approx(energy["kwh"], rel=1e-15)


def test_estimate_training_grid_defaults_to_one_accelerator_and_no_state():
    frame = pd.DataFrame({"flops_total": [3.15e23], "peak_flops_per_s": [275e12], "mfu": [0.462],
                          "usd_per_accelerator_hour": [2.03]})
    out = est.training_grid(frame)
    assert out["wall_clock_days"].iloc[0] == pytest.approx(out["accelerator_hours"].iloc[0] / 24)
    assert "min_accelerators_for_state" not in out and "kwh" not in out


@pytest.mark.parametrize("column, bad, message", [
    ("mfu", 1.2, "in \\(0, 1\\]"), ("mfu", 0.0, "in \\(0, 1\\]"), ("mfu", np.nan, "in \\(0, 1\\]"),
    ("flops_per_token", -5.0, "> 0"), ("peak_flops_per_s", 0.0, "> 0"),
    ("usd_per_accelerator_hour", np.nan, "> 0"), ("usd_per_accelerator_hour", np.inf, "> 0"),
    ("pue", 0.5, ">= 1"), ("usd_per_kwh", -1.0, ">= 0"), ("tdp_w", np.nan, "> 0"),
])
def test_estimate_grid_rejects_a_bad_row_naming_column_and_row(column, bad, message):
    frame = _inference_frame(10)
    frame.loc[7, column] = bad
    with pytest.raises(UserError, match=f"'{column}' must be .*{message}.*1 bad row.*row 7"):
        est.inference_grid(frame)


def test_estimate_grid_structural_errors():
    frame = _inference_frame(4)
    with pytest.raises(UserError, match="missing column 'mfu'"):
        est.inference_grid(frame.drop(columns="mfu"))
    with pytest.raises(UserError, match="'mfu' must be numeric"):
        est.inference_grid(frame.assign(mfu="0.5"))
    with pytest.raises(UserError, match="energy needs all of"):
        est.inference_grid(frame.drop(columns="pue"))
    train = pd.DataFrame({"flops_total": [1e21], "peak_flops_per_s": [1e15], "mfu": [0.4],
                          "usd_per_accelerator_hour": [2.0]})
    with pytest.raises(UserError, match="num_accelerators"):
        est.training_grid(train.assign(num_accelerators=2.5))
    with pytest.raises(UserError, match="state_bytes and memory_bytes"):
        est.training_grid(train.assign(state_bytes=1e12))


def test_estimate_grid_scales_to_many_rows_quickly():
    # The benchmark (benchmarks/estimate_grid.py) times 1M rows; here 200k rows must not take seconds.
    frame = pd.concat([_inference_frame(1000)] * 200, ignore_index=True).drop(columns="model")
    import time

    t0 = time.perf_counter()
    out = est.inference_grid(frame)
    assert time.perf_counter() - t0 < 2.0
    assert len(out) == 200_000 and np.isfinite(out["usd_per_1k_tokens"]).all()


# --- import hygiene ------------------------------------------------------------------------------

@pytest.mark.slow
def test_estimate_costmodel_imports_neither_torch_nor_transformers():
    code = ("import sys, llmecon.costmodel.estimate, llmecon.costmodel.article, llmecon.costmodel.architecture, "
            "llmecon.costmodel.flops, llmecon.costmodel.memory, llmecon.costmodel.hardware, "
            "llmecon.costmodel.prices; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; "
            "assert 'pandas' not in sys.modules, 'pandas imported at module level (CLI startup)'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_estimate_grid_results_are_finite_and_positive():
    out = est.inference_grid(_inference_frame(200, seed=3))
    for column in ("seconds_per_1k_tokens", "tokens_per_s_per_accelerator", "usd_per_1k_tokens", "usd_per_1m_tokens"):
        assert (out[column] > 0).all() and np.isfinite(out[column]).all()
