"""llmecon: measure how well real decoder-only LLMs use an accelerator, and price it.

    import llmecon
    llmecon.estimate_inference("llama-3-8b", hardware="h100-sxm", usd_per_hour=2.5, mfu="40%")
    llmecon.estimate_inference("llama-3-8b", hardware="h100-sxm", usd_per_hour=2.5, batch_size=32)  # published basis
    llmecon.run(device="cpu")                      # bench, calibrate, price, report

The names are imported lazily (PEP 562): ``import llmecon`` itself pulls in none of torch, pandas or
matplotlib. See llmecon/api.py for where each one lives.
"""

import importlib

from llmecon._version import __version__

_API = {
    "model_info": "llmecon.costmodel.info", "list_models": "llmecon.costmodel.info",
    "estimate_inference": "llmecon.estimate.inference", "estimate_training": "llmecon.estimate.training",
    "article": "llmecon.estimate.article",
    "bench": "llmecon.api", "calibrate": "llmecon.api", "compare": "llmecon.api", "report": "llmecon.api",
    "run": "llmecon.api", "bench_plan": "llmecon.api",
    "load_results": "llmecon.records.load", "Results": "llmecon.records.load", "list_runs": "llmecon.records.store",
    "Calibration": "llmecon.calibration.document", "UserError": "llmecon.errors",
    "list_calibrations": "llmecon.calibration.reference", "plan_serve": "llmecon.estimate.serving", "load_published": "llmecon.costmodel.published",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'llmecon' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
