"""compare: like runs pass; a slowdown beyond both the threshold and the noise fails; a change within the
noise passes; a configuration that fails in NEW fails; what cannot be compared is refused."""

from __future__ import annotations

import pandas as pd
import pytest

from llmecon.calibration.compare import compare
from llmecon.errors import UserError

SMALL = {"phases": ("prefill", "decode"), "batches": (1, 4), "seqs": (32, 128)}


def _verdicts(result):
    return {(r["phase"], r["batch_size"], r["seq_len"]): r["verdict"] for r in result["rows"]}


def test_compare_two_like_runs_pass(plant):
    result = compare(plant.frame(seed=0, **SMALL), plant.frame(seed=1, **SMALL), max_drop=0.05)
    assert result["matched"] == 8 and result["regressions"] == 0
    assert all(r["verdict"] in ("within threshold", "faster") for r in result["rows"])


def test_compare_synthetic_slowdown_fails_only_where_it_happened(plant):
    base, new = plant.frame(seed=0, **SMALL), plant.frame(seed=0, **SMALL)
    slow = (new.phase == "decode") & (new.batch_size == 4) & (new.seq_len == 128)
    new.loc[slow, ["step_time_s", "step_time_iqr_s"]] *= 1.25
    new.loc[slow, "tokens_per_s"] /= 1.25
    new.loc[slow, "mfu_executed_vs_ceiling"] /= 1.25
    result = compare(base, new, max_drop=0.05)
    assert result["regressions"] == 1
    verdicts = _verdicts(result)
    assert verdicts.pop(("decode", 4, 128)) == "regression"
    assert set(verdicts.values()) == {"within threshold"}
    row = next(r for r in result["rows"] if r["verdict"] == "regression")
    assert row["change"] == pytest.approx(1 / 1.25 - 1) and row["noise"] == pytest.approx(0.04)
    # the same drop under a 30 % threshold is not a regression
    assert compare(base, new, max_drop=0.30)["regressions"] == 0


def test_compare_a_drop_within_the_noise_passes(plant):
    base, new = plant.frame(seed=0, iqr=0.08, **SMALL), plant.frame(seed=0, iqr=0.08, **SMALL)
    new["step_time_s"] *= 1.10          # 9 % slower: over the 5 % threshold, under the 16 % noise
    new["tokens_per_s"] /= 1.10
    result = compare(base, new, max_drop=0.05)
    assert result["regressions"] == 0 and set(_verdicts(result).values()) == {"within noise"}


def test_compare_a_large_slowdown_is_not_hidden_by_a_large_spread(plant):
    # a busy machine: IQR/median 110 % on each side, and NEW 12x slower. The throughput drop (92 %) is below the
    # summed spread (220 %), but the step time grew 12x, far beyond what spreads of that size allow ((2.1)^2 = 4.4x)
    base, new = plant.frame(seed=0, iqr=1.1, **SMALL), plant.frame(seed=0, iqr=1.1, **SMALL)
    new[["step_time_s", "step_time_iqr_s"]] *= 12
    new["tokens_per_s"] /= 12
    result = compare(base, new, max_drop=0.05)
    assert result["regressions"] == 8 and set(_verdicts(result).values()) == {"regression"}
    assert result["rows"][0]["noise"] == pytest.approx(2.2)
    assert result["rows"][0]["noise_drop"] == pytest.approx(1 - 1 / 2.1**2)     # the drop that noise allows
    # ...while 3x slower is within what those spreads allow
    new = plant.frame(seed=0, iqr=1.1, **SMALL)
    new[["step_time_s", "step_time_iqr_s"]] *= 3
    new["tokens_per_s"] /= 3
    assert set(_verdicts(compare(base, new, max_drop=0.05)).values()) == {"within noise"}


def test_compare_mfu_drop_alone_is_a_regression(plant):
    base, new = plant.frame(seed=0, datasheet=True, **SMALL), plant.frame(seed=0, datasheet=True, **SMALL)
    new["mfu_executed"] *= 0.8          # e.g. the same tokens/s but more FLOPs counted as work
    assert compare(base, new)["regressions"] == 8


def test_compare_failed_missing_and_new_configurations(plant):
    base, new = plant.frame(seed=0, **SMALL), plant.frame(seed=0, **SMALL)
    new.loc[0, ["status", "valid"]] = ["oom", False]
    new = new.drop(index=1)
    extra = plant.frame(seed=0, phases=("train",), batches=(1,), seqs=(32,))
    result = compare(base, pd.concat([new, extra], ignore_index=True))
    verdicts = [r["verdict"] for r in result["rows"]]
    assert "failed in new (oom)" in verdicts and "missing in new" in verdicts and "new" in verdicts
    assert result["regressions"] == 1


def test_compare_nothing_in_common_and_bad_thresholds(plant):
    with pytest.raises(UserError, match="no configuration in common"):
        compare(plant.frame(model="a", **SMALL), plant.frame(model="b", **SMALL))
    for bad in (-0.01, 1.5):
        with pytest.raises(UserError, match="--max-drop"):
            compare(plant.frame(**SMALL), plant.frame(**SMALL), max_drop=bad)


def test_compare_a_partial_model_run_is_not_matched_to_a_whole_one(plant):
    """--layers k measures 1/k-th of the model: its rows must not be compared with whole-model rows."""
    base, new = plant.frame(seed=0, **SMALL), plant.frame(seed=0, **SMALL)
    base["layer_scale"], new["layer_scale"] = 1.0, 4.0
    with pytest.raises(UserError, match="no configuration in common"):
        compare(base, new)
    new["layer_scale"] = 1.0
    assert compare(base, new)["matched"] == 8
