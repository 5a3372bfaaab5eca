"""Fit and apply efficiency models: measured step times -> per-(hardware, dtype, phase) η's and overhead.

model.py: the step-time model; calibration.py: the typed calibration document; fit.py: fitting and
held-out error; apply.py: predictions for a workload; compare.py: the regression check between runs.
"""
