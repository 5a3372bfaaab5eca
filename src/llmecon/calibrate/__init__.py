"""Fit and apply efficiency models: measured step times -> per-(hardware, dtype, phase) η's and overhead.

    from llmecon.calibrate import calibrate_runs, save_calibration, load_calibration, predict
    calib, problems = calibrate_runs(["results/"])          # fit (UserError if nothing can be fitted)
    save_calibration(calib, "calibration.json")
    t, regime = predict(load_calibration("calibration.json"), "Intel Xeon ...", "fp32", "decode", F, B)

model.py: the step-time model; fit.py: fitting and held-out error; schema.py: the file; apply.py:
prediction and calibrated estimates; article.py: the article's tables at measured efficiency;
compare.py: regression check between runs.
"""

from llmecon.calibrate.apply import (
    calibrated_hardware,
    effective_mfu,
    estimate_inference,
    estimate_training,
    find_fit,
    predict,
    predict_detail,
)
from llmecon.calibrate.fit import calibrate_runs, fit_calibration
from llmecon.calibrate.model import REGIMES, StepModel
from llmecon.calibrate.schema import SCHEMA_VERSION, load_calibration, save_calibration

__all__ = [
    "REGIMES", "SCHEMA_VERSION", "StepModel", "calibrate_runs", "calibrated_hardware", "effective_mfu",
    "estimate_inference", "estimate_training", "find_fit", "fit_calibration", "load_calibration", "predict",
    "predict_detail", "save_calibration",
]
