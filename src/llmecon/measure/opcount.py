"""Counts that timing noise cannot move: the operator calls of one step.

`count_ops(step, device)` runs ``step()`` once more, untimed, and counts

- every ATen operator call, through a ``TorchDispatchMode`` (the mechanism torch's own
  ``FlopCounterMode`` uses): the total and the count per operator (``aten.mm``: 12, ...). An attention
  implementation that falls back to the math kernel, an added ``copy_`` or a dtype conversion changes these
  exactly, however noisy the machine;
- on CUDA, the kernels launched, from ``torch.profiler`` (CUDA activity): null with the reason when the
  profiler cannot see kernels (no CUPTI, say).

A compiled step is not counted: a Python dispatch mode changes what ``torch.compile`` runs (the counts are
null with the reason). The caller runs this outside the timed window; the step changes state as any step
does (a training step updates the weights).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from llmecon.measure.probe import device_kind


def _aten_counts(step: Callable[[], object], sync: Callable[[], object]) -> Counter:
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Counter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.counts: Counter = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.counts[str(func.overloadpacket)] += 1
            return func(*args, **(kwargs or {}))

    with _Counter() as counter:
        step()
        sync()
    return counter.counts


def _cuda_kernels(step: Callable[[], object], sync: Callable[[], object]) -> tuple[int | None, str | None]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            sync()
        kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    except Exception as exc:  # the profiler is optional telemetry: never fail the configuration for it
        return None, f"torch.profiler could not count kernels: {type(exc).__name__}: {exc}"[:300]
    if kernels == 0:
        return None, "torch.profiler saw no CUDA kernels (CUPTI unavailable?)"
    return kernels, None


def count_ops(step: Callable[[], object], device: str, *, compiled: bool = False) -> dict:
    """The record's ``work.ops`` block for one untimed call of ``step``."""
    import torch

    if compiled:
        return {"aten_ops_per_step": None, "aten_op_counts": {}, "cuda_kernels_per_step": None,
                "reason": "not counted for a compiled step (a dispatch mode changes what torch.compile runs)"}
    cuda = device_kind(device) == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    counts = _aten_counts(step, sync)
    out = {"aten_ops_per_step": sum(counts.values()), "aten_op_counts": dict(sorted(counts.items())),
           "cuda_kernels_per_step": None, "reason": None}
    if cuda:
        out["cuda_kernels_per_step"], out["reason"] = _cuda_kernels(step, sync)
    else:
        out["reason"] = "CPU: no kernel launches to count (ATen operator calls only)"
    return out
