"""What the interconnect delivers: time, algorithm bandwidth and bus bandwidth of all-reduce and all-gather.

`measure_collectives(device, dtype)` is called by EVERY rank of an initialised process group (gloo on CPU,
NCCL on GPU) and returns the same dict on every rank. It follows nccl-tests (github.com/NVIDIA/nccl-tests):

- sizes are full buffers (doc/PERFORMANCE.md): all-reduce S = the buffer each rank reduces, all-gather S = the
  gathered output (``sendcount * sizeof(dtype) * n``); each size is rounded down to a whole number of elements
  per rank and the size that ran is reported;
- warm-up calls, then a barrier, then back-to-back calls timed as one batch (src/common.cu, ``BenchTime``: a
  barrier, ``iters`` calls, the elapsed time over ``iters``; all-reduce runs in place, all-gather out of place,
  where nccl-tests times both). On a GPU the batch sits between two CUDA events
  (as probe.py times GEMMs); on a CPU between two reads of the host clock, the calls being synchronous;
- a rank's time is the median over ``samples`` such batches (nccl-tests runs one batch; several show the
  noise); across ranks the MEAN of the ranks' times, nccl-tests' default (``-a 1``: "report average iteration
  time", common.cu ``static int average = 1`` and ``Allreduce(args, &deltaSec, average)``). The per-rank times
  are gathered with a collective, so every rank computes the same numbers from the same list;
- ``algbw = S / t`` and ``busbw = algbw * bus_factor(op, n)`` (doc/PERFORMANCE.md).

`costmodel.communication.bus_factor(op, n)` is the one definition of the bus-bandwidth correction; the cost
model's times and these measurements share it.
"""

from __future__ import annotations

import statistics
import time
from typing import Sequence

from llmecon.costmodel.communication import bus_factor
from llmecon.errors import UserError
from llmecon.measure.device import backend
from llmecon.measure.models import torch_dtype

NCCL_TESTS_PERFORMANCE = "https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md"
DEFINITION = (
    "nccl-tests convention (" + NCCL_TESTS_PERFORMANCE + "): S is the full buffer (all-reduce: the buffer; "
    "all-gather: the gathered output); t is the mean over ranks of each rank's median, over samples, of the "
    "time per call of back-to-back calls after a barrier; algbw = S/t; busbw = algbw * 2(n-1)/n (all-reduce), "
    "algbw * (n-1)/n (all-gather, reduce-scatter, all-to-all), algbw * 1 (broadcast, reduce)"
)

OPS = ("all_reduce", "all_gather")
# full-buffer sizes per device kind: 1 MiB (latency-bound) to 128 MiB (bandwidth-bound) on a GPU; on a CPU
# small enough that 2 gloo processes on 2 cores finish in a few seconds
DEFAULT_SIZES = {"cuda": (1 << 20, 16 << 20, 128 << 20), "cpu": (64 << 10, 1 << 20, 4 << 20)}
# (warm-up calls, back-to-back calls per sample, samples) per device kind; nccl-tests' defaults are
# warmup_iters = 1 (we take more: NCCL sets up its channels on the first calls) and iters = 20 (common.cu)
DEFAULT_COUNTS = {"cuda": (5, 20, 5), "cpu": (2, 5, 3)}

def _barrier(dist, group, be) -> None:
    """A host-side barrier; NCCL's needs the rank's device (its barrier is an all-reduce on it)."""
    import torch

    if dist.get_backend(group) == "nccl":
        dist.barrier(group=group, device_ids=[torch.device(be.torch_device).index or 0])
    else:
        dist.barrier(group=group)


def _all_gather(dist):
    """torch's single-tensor all-gather: ``all_gather_single`` where torch has it (torch 2.13 deprecates
    ``all_gather_into_tensor``), else ``all_gather_into_tensor``."""
    return getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def _call(dist, op: str, size_bytes: int, world: int, tdtype, dev, group):
    """(the call to time, the full-buffer size it moves in bytes) for ``op`` of about ``size_bytes``."""
    import torch

    elem = torch.empty((), dtype=tdtype).element_size()
    per_rank = size_bytes // (elem * world)
    if per_rank < 1:
        raise UserError(f"{op} of {size_bytes} B: less than one {tdtype} element per rank over {world} ranks")
    count = per_rank * world
    if op == "all_reduce":
        buf = torch.ones(count, dtype=tdtype, device=dev)
        return (lambda: dist.all_reduce(buf, group=group)), count * elem
    inp = torch.ones(per_rank, dtype=tdtype, device=dev)
    out = torch.empty(count, dtype=tdtype, device=dev)
    gather = _all_gather(dist)
    return (lambda: gather(out, inp, group=group)), count * elem


def _time_rank(dist, group, be, fn, warmup: int, iters: int, samples: int) -> list[float]:
    """Seconds per call on this rank: ``samples`` batches of ``iters`` back-to-back calls, each after a barrier."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(samples):
        be.synchronize()
        _barrier(dist, group, be)
        timer = be.event_timer()
        if timer is not None:
            timer.start()
            for _ in range(iters):
                fn()
            timer.stop()
            be.synchronize()
            out.append(timer.elapsed_s() / iters)
        else:
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            be.synchronize()
            out.append((time.perf_counter() - t0) / iters)
    return out


def _gather_times(dist, group, per_rank: list[float], dev) -> list[list[float]]:
    """Every rank's list of times, in rank order, on every rank (one all-gather of float64)."""
    import torch

    world = dist.get_world_size(group)
    mine = torch.tensor(per_rank, dtype=torch.float64, device=dev)
    every = torch.empty(world * len(per_rank), dtype=torch.float64, device=dev)
    _all_gather(dist)(every, mine, group=group)
    return every.view(world, len(per_rank)).cpu().tolist()


def measure_collectives(device: str, dtype: str, sizes_bytes: Sequence[int] | None = None, *, group=None,
                        iters: int | None = None, warmup: int | None = None, samples: int | None = None) -> dict:
    """{results: [{op, size_bytes, time_s, algbw_bytes_per_s, busbw_bytes_per_s, time_s_by_rank}], world_size,
    backend, timing_method, ...}: the same dict on every rank of ``group`` (default: the world).

    ``sizes_bytes`` defaults to DEFAULT_SIZES of the device kind; ``warmup``, ``iters`` (back-to-back calls per
    sample) and ``samples`` to DEFAULT_COUNTS. Every rank must call it with the same arguments.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise UserError("measure_collectives needs an initialised process group (torch.distributed."
                        "init_process_group, gloo on CPU, nccl on GPU) and must be called by every rank")
    be = backend(device)
    d_warm, d_iters, d_samples = DEFAULT_COUNTS[be.kind]
    warmup = d_warm if warmup is None else warmup
    iters = d_iters if iters is None else iters
    samples = d_samples if samples is None else samples
    if warmup < 0 or iters < 1 or samples < 1:
        raise UserError(f"need warmup >= 0, iters >= 1 and samples >= 1; got {warmup}, {iters}, {samples}")
    sizes = tuple(DEFAULT_SIZES[be.kind] if sizes_bytes is None else sizes_bytes)
    if not sizes or any(int(s) <= 0 for s in sizes):
        raise UserError(f"sizes_bytes must be positive byte counts, got {sizes!r}")
    tdtype, dev = torch_dtype(dtype), be.torch_device
    world = dist.get_world_size(group)
    events = be.event_timer() is not None
    runs = []  # (op, size moved, this rank's median seconds per call)
    for op in OPS:
        for size in sizes:
            fn, moved = _call(dist, op, int(size), world, tdtype, dev, group)
            runs.append((op, moved, statistics.median(_time_rank(dist, group, be, fn, warmup, iters, samples))))
            fn = None  # free the buffers before the next size
    by_rank = _gather_times(dist, group, [t for _, _, t in runs], dev)
    results = []
    for i, (op, moved, _) in enumerate(runs):
        times = [row[i] for row in by_rank]
        t = statistics.fmean(times)
        algbw = moved / t
        results.append({"op": op, "size_bytes": moved, "time_s": t, "algbw_bytes_per_s": algbw,
                        "busbw_bytes_per_s": algbw * bus_factor(op, world), "time_s_by_rank": times})
    return {
        "results": results,
        "world_size": world,
        "backend": dist.get_backend(group),
        "dtype": dtype,
        "device_kind": be.kind,
        "warmup": warmup,
        "calls_per_sample": iters,
        "samples": samples,
        "statistic": "per rank: median over samples of the mean time per call; across ranks: the mean",
        "timing_method": (f"CUDA events around {iters} back-to-back calls after a barrier" if events else
                          f"host clock around {iters} back-to-back (synchronous) calls after a barrier"),
        "definition": DEFINITION,
    }
