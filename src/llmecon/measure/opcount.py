"""Counts that timing noise cannot move: the operator calls of one step.

`count_ops(step, device)` runs ``step()`` once more, untimed, and counts

- every ATen operator call, through a ``TorchDispatchMode`` (the mechanism torch's own
  ``FlopCounterMode`` uses): the total and the count per operator (``aten.mm``: 12, ...). An attention
  implementation that falls back to the math kernel, an added ``copy_`` or a dtype conversion changes these
  exactly, however noisy the machine;
- on CUDA, the kernels launched and the time the device was busy running them (the union of their
  intervals), from ``torch.profiler`` (CUDA activity, measure.device.profile_kernels): null with the reason when
  the profiler cannot see kernels (no CUPTI, say). Busy time over the step's host time says how much of the
  step the GPU worked; the rest it waited for the host to launch (rounds.combine flags ``launch_bound``).

A compiled step is not counted: a Python dispatch mode changes what ``torch.compile`` runs (the counts are
null with the reason). The caller runs this outside the timed window; the step changes state as any step
does (a training step updates the weights).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable


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


def count_ops(step: Callable[[], object], be, *, compiled: bool = False) -> dict:
    """The record's ``work.ops`` block for one untimed call of ``step`` on backend ``be`` (measure.device)."""
    if compiled:
        return {"aten_ops_per_step": None, "aten_op_counts": {}, "cuda_kernels_per_step": None,
                "cuda_kernel_time_s_per_step": None,
                "reason": "not counted for a compiled step (a dispatch mode changes what torch.compile runs)"}
    counts = _aten_counts(step, be.synchronize)
    out = {"aten_ops_per_step": sum(counts.values()), "aten_op_counts": dict(sorted(counts.items())),
           "cuda_kernels_per_step": None, "cuda_kernel_time_s_per_step": None, "reason": None}
    if be.kind == "cuda":
        kernels = be.profile_kernels(step)
        out["cuda_kernels_per_step"] = kernels["kernels"]
        out["cuda_kernel_time_s_per_step"] = kernels["kernel_time_s"]
        out["reason"] = kernels["reason"]
    else:
        out["reason"] = "CPU: no kernel launches to count (ATen operator calls only)"
    return out
