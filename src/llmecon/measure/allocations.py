"""Peak bytes allocated while a function runs, on a CPU as well as on CUDA.

torch keeps allocator statistics for CUDA only (`torch.cuda.max_memory_allocated`); a process's max RSS on a
CPU mixes in the Python and library pages and the C allocator's caching. On a CPU this module therefore
reads torch.profiler with ``profile_memory=True``, which records every allocation and free of torch's CPU
allocator (kernels' own scratch included, from any thread) as a signed byte count with a timestamp: the
running sum's maximum is the peak. It is what tests/measure/test_footprint_validation.py and
benchmarks/memory_model.py check the memory model (costmodel.footprint) against.
"""

from __future__ import annotations

from typing import Callable

from llmecon.measure.probe import device_kind


def peak_allocated_bytes(fn: Callable[[], object], device: str = "cpu") -> dict:
    """Run ``fn()`` once and return {"peak_bytes": the most allocated at once above what was allocated
    when it started, "end_bytes": allocated at its end minus at its start, "method": how it was read}."""
    import torch

    if device_kind(device) == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return {"peak_bytes": torch.cuda.max_memory_allocated(device) - start,
                "end_bytes": torch.cuda.memory_allocated(device) - start,
                "method": "torch.cuda.max_memory_allocated"}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return {"peak_bytes": peak, "end_bytes": current,
            "method": "torch.profiler(profile_memory=True): running sum of the CPU allocator's events"}
