"""compare decides on statistics: a confidence interval of the step-time ratio across rounds, verdicts regression,
improvement, no change or inconclusive; failed configurations fail; work changes are reported exactly; what cannot
be compared is refused. Planted round means, no wall clock."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llmecon.calibration.compare import compare, decide, min_rounds, work_change
from llmecon.errors import UserError

SMALL = {"phases": ("prefill", "decode"), "batches": (1, 4), "seqs": (32, 128)}


def _verdicts(result):
    return {(r["phase"], r["batch_size"], r["seq_len"]): r["verdict"] for r in result["rows"]}


def _slow(frame, factor, where=None):
    """The frame with its step times (and round means) multiplied by ``factor`` where ``where`` holds."""
    frame = frame.copy()
    mask = np.ones(len(frame), bool) if where is None else where(frame).to_numpy()
    frame.loc[mask, "step_time_s"] *= factor
    frame.loc[mask, "tokens_per_s"] /= factor
    frame["round_means_s"] = [[m * factor for m in ms] if hit else ms
                                for ms, hit in zip(frame["round_means_s"], mask)]
    return frame


def test_compare_two_like_runs_show_no_change(plant):
    result = compare(plant.frame(seed=0, **SMALL), plant.frame(seed=1, **SMALL), max_drop=0.10)
    assert result["matched"] == 8 and result["regressions"] == 0
    assert set(_verdicts(result).values()) == {"no change"}
    row = result["rows"][0]
    assert row["change_low"] < row["change"] < row["change_high"] and row["coverage"] >= 0.95
    assert (row["base_rounds"], row["new_rounds"]) == (5, 5)


def test_compare_a_planted_slowdown_is_a_regression_only_where_it_happened(plant):
    base = plant.frame(seed=0, **SMALL)
    new = _slow(plant.frame(seed=1, **SMALL), 1.25,
                lambda f: (f.phase == "decode") & (f.batch_size == 4) & (f.seq_len == 128))
    result = compare(base, new, max_drop=0.10)
    verdicts = _verdicts(result)
    assert verdicts.pop(("decode", 4, 128)) == "regression" and result["regressions"] == 1
    assert set(verdicts.values()) == {"no change"}
    row = next(r for r in result["rows"] if r["verdict"] == "regression")
    assert row["change_low"] < row["change"] < row["change_high"] < -0.10
    assert row["change"] == pytest.approx(1 / 1.25 - 1, abs=0.04)
    assert compare(base, new, max_drop=0.30)["regressions"] == 0  # the same drop under a 30 % threshold


def test_compare_improvement_and_a_drop_below_the_threshold(plant):
    base = plant.frame(seed=0, **SMALL)
    assert set(_verdicts(compare(base, _slow(plant.frame(seed=1, **SMALL), 1 / 1.3))).values()) == {"improvement"}
    assert set(_verdicts(compare(base, _slow(plant.frame(seed=1, **SMALL), 1.03), max_drop=0.10)).values()) == {
        "no change"}


def test_compare_a_change_on_the_threshold_is_inconclusive_and_says_how_many_rounds_would_decide(plant):
    base = plant.frame(seed=0, round_noise=0.04, **SMALL)
    new = _slow(plant.frame(seed=1, round_noise=0.04, **SMALL), 1.08)   # 7 % slower, threshold 10 %
    rows = compare(base, new, max_drop=0.10)["rows"]
    undecided = [r for r in rows if r["verdict"] == "inconclusive"]
    assert undecided and all(r["rounds_needed"] is None or r["rounds_needed"] > 5 for r in undecided)
    assert any(r["rounds_needed"] for r in undecided)


def test_compare_one_round_per_side_is_inconclusive(plant):
    base, new = plant.frame(seed=0, rounds=1, **SMALL), plant.frame(seed=1, rounds=1, **SMALL)
    result = compare(base, new)
    assert set(_verdicts(result).values()) == {"inconclusive"} and result["regressions"] == 0
    assert {r["rounds_needed"] for r in result["rows"]} == {min_rounds(0.95)} == {4}
    # folders of runs pool their rounds: four one-round runs per side decide
    pooled = [plant.frame(seed=s, rounds=1, run_id=f"r{s}", **SMALL) for s in range(8)]
    result = compare(pd.concat(pooled[:4]), pd.concat(pooled[4:]), max_drop=0.10)
    assert result["rows"][0]["base_rounds"] == 4 and result["inconclusive"] < 8


def test_compare_a_large_slowdown_is_found_through_a_large_noise(plant):
    base = plant.frame(seed=0, round_noise=0.5, **SMALL)
    new = _slow(plant.frame(seed=1, round_noise=0.5, **SMALL), 12)
    assert set(_verdicts(compare(base, new)).values()) == {"regression"}


def test_compare_no_shift_gives_no_regression_at_the_stated_rate():
    """Identical distributions, 5 rounds a side, max-drop 0: a regression needs the whole interval above 1,
    which happens with probability at most (1 - coverage) / 2."""
    rng = np.random.default_rng(7)
    trials = 2000
    hits = sum(decide(rng.lognormal(0, 0.1, 5), rng.lognormal(0, 0.1, 5), 0.0)["verdict"] == "regression"
               for _ in range(trials))
    assert hits / trials < (1 - 0.968) / 2 + 0.01


def test_compare_a_known_shift_is_found_at_its_power():
    """A 30 % slowdown with 5 % round noise and max-drop 10 %: found nearly always."""
    rng = np.random.default_rng(8)
    found = sum(decide(rng.lognormal(0, 0.05, 5), 1.3 * rng.lognormal(0, 0.05, 5), 0.10)["verdict"] == "regression"
                for _ in range(500))
    assert found / 500 > 0.95


def test_compare_failed_missing_and_new_configurations(plant):
    base, new = plant.frame(seed=0, **SMALL), plant.frame(seed=0, **SMALL)
    new.loc[0, ["status", "valid"]] = ["oom", False]
    new = new.drop(index=1)
    extra = plant.frame(seed=0, phases=("train",), batches=(1,), seqs=(32,))
    result = compare(base, pd.concat([new, extra], ignore_index=True))
    verdicts = [r["verdict"] for r in result["rows"]]
    assert "failed in new (oom)" in verdicts and "missing in new" in verdicts and "new" in verdicts
    assert result["regressions"] == 1


def test_compare_normalized_to_the_ceiling_sees_through_a_faster_machine(plant):
    base = plant.frame(seed=0, **SMALL)
    new = _slow(plant.frame(seed=1, **SMALL), 0.5)            # a machine twice as fast, same efficiency
    new["ceiling_flops_per_s"] *= 2
    new["ceiling_bytes_per_s"] *= 2
    assert set(_verdicts(compare(base, new)).values()) == {"improvement"}
    assert set(_verdicts(compare(base, new, normalize="ceiling", max_drop=0.10)).values()) == {"no change"}
    new["ceiling_flops_per_s"] = None
    with pytest.raises(UserError, match="no measured GEMM ceiling"):
        compare(base, new, normalize="ceiling")


def test_compare_reports_a_change_of_work_exactly(plant):
    base, new = plant.frame(seed=0, **SMALL), plant.frame(seed=1, **SMALL)
    for frame, copies in ((base, 0), (new, 24)):
        frame["aten_ops_per_step"] = 400 + copies
        frame["aten_op_counts"] = [{"aten.mm": 400, **({"aten.copy_": copies} if copies else {})}] * len(frame)
    result = compare(base, new, max_drop=0.10)
    assert result["work_changed"] == 8 and result["regressions"] == 0
    assert result["rows"][0]["work_changed"] == "aten ops 400 -> 424 (aten.copy_ +24)"
    assert work_change({"flops_per_step_executed": 1e9}, {"flops_per_step_executed": 1.5e9}) == \
        "executed FLOPs 1e+09 -> 1.5e+09"
    assert work_change({"aten_ops_per_step": None}, {"aten_ops_per_step": 5}) is None  # unrecorded: no claim


def test_compare_nothing_in_common_and_bad_settings(plant):
    with pytest.raises(UserError, match="no configuration in common"):
        compare(plant.frame(model="a", **SMALL), plant.frame(model="b", **SMALL))
    for bad in (-0.01, 1.5):
        with pytest.raises(UserError, match="--max-drop"):
            compare(plant.frame(**SMALL), plant.frame(**SMALL), max_drop=bad)
    with pytest.raises(UserError, match="--confidence"):
        compare(plant.frame(**SMALL), plant.frame(**SMALL), confidence=0.8)
    with pytest.raises(UserError, match="--normalize"):
        compare(plant.frame(**SMALL), plant.frame(**SMALL), normalize="gemm")


def test_compare_a_partial_model_run_is_not_matched_to_a_whole_one(plant):
    """--layers k measures 1/k-th of the model: its rows must not be compared with whole-model rows."""
    base, new = plant.frame(seed=0, **SMALL), plant.frame(seed=0, **SMALL)
    base["layer_scale"], new["layer_scale"] = 1.0, 4.0
    with pytest.raises(UserError, match="no configuration in common"):
        compare(base, new)
    new["layer_scale"] = 1.0
    assert compare(base, new)["matched"] == 8


def test_compare_decide_band_is_symmetric_in_log():
    """A 10 % drop and an 11.1 % rise are the two edges of the same band."""
    base = [1.0, 1.0, 1.0, 1.0, 1.0]
    assert decide(base, [1 / 0.89] * 5, 0.10)["verdict"] == "regression"
    assert decide(base, [1 / 0.91] * 5, 0.10)["verdict"] == "no change"
    assert decide(base, [0.89] * 5, 0.10)["verdict"] == "improvement"
    assert math.isclose(decide(base, [1.25] * 5, 0.10)["ratio"], 1.25)
