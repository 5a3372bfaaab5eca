"""Bus bandwidth of all-reduce and all-gather between the ranks of this machine (nccl-tests' definition).

Run under torchrun, one process per rank (gloo on CPU, nccl with one GPU per rank):

    PYTHONPATH=src python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/collectives.py
    PYTHONPATH=src torchrun --standalone --nproc-per-node 8 benchmarks/collectives.py --device cuda

Rank 0 prints one line per (op, size): time per call, algbw and busbw (`llmecon.measure.collectives`); every rank
returns the same numbers. ``--sizes`` in bytes overrides the device kind's defaults.
"""

from __future__ import annotations

import argparse
import datetime
import os

import torch
import torch.distributed as dist

from llmecon.measure.collectives import measure_collectives


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="full-buffer sizes in bytes")
    args = ap.parse_args()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local}" if args.device == "cuda" else "cpu"
    if args.device == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo", timeout=datetime.timedelta(seconds=120))
    try:
        out = measure_collectives(device, args.dtype, args.sizes)
    finally:
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{out['world_size']} ranks, {out['backend']}, {out['dtype']}; {out['timing_method']}; {out['samples']} "
              f"samples; {out['statistic']}")
        print(f"{'op':<11} {'size_B':>10} {'time_us':>10} {'algbw_GB/s':>11} {'busbw_GB/s':>11}")
        for r in out["results"]:
            print(f"{r['op']:<11} {r['size_bytes']:>10} {r['time_s'] * 1e6:>10.1f} "
                  f"{r['algbw_bytes_per_s'] / 1e9:>11.3f} {r['busbw_bytes_per_s'] / 1e9:>11.3f}")


if __name__ == "__main__":
    main()
