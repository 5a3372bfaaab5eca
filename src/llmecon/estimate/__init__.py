"""Estimates: what a workload costs, at a flat utilization (the article's way) or at the efficiency a
calibration predicts. Each function returns the dict that `llmecon estimate ... --json` prints.

inputs.py resolves what an estimate needs (model, accelerator, peak, price, energy, calibration);
inference.py and training.py build the estimates; article.py prices the article's scenarios at calibrated
efficiency; costs.py builds the cost table of `llmecon run` and the report.
"""
