"""How fast is the vectorised cost model? Time `inference_grid` on a 1,000,000-row grid.

The grid is every (model preset x price offer (accelerator + price) x utilization) from the shipped sheets,
with utilizations spread over (0, 1], cut to --rows rows. FLOPs per token are each model's decode FLOPs under
the `article` convention (2N). Prints rows, seconds (median of --repeat timed calls, after one warm-up)
and rows/s; checks a few rows against the scalar `inference_cost`.

    python benchmarks/estimate_grid.py            # target: about a second for 1M rows on one core
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import pandas as pd

from llmecon.costmodel.presets import list_presets, load_model_shape
from llmecon.costmodel.estimate import inference_cost, inference_grid, price_per_accelerator_hour
from llmecon.costmodel.flops import decode_step_flops
from llmecon.costmodel.hardware import load_hardware
from llmecon.costmodel.prices import load_prices


def build_grid(rows: int, dtype: str = "bf16") -> pd.DataFrame:
    models = [(name, decode_step_flops(load_model_shape(name), 1, 1024, "article")) for name in list_presets()]
    hardware = load_hardware()
    offers = [(p.id, p.accelerator_id, hardware[p.accelerator_id].peak(dtype),
               price_per_accelerator_hour(p.usd_per_hour, p.count))
              for p in load_prices() if hardware[p.accelerator_id].peak(dtype) is not None]
    n_util = math.ceil(rows / (len(models) * len(offers)))
    mfu = np.linspace(1.0 / n_util, 1.0, n_util)
    m_idx, o_idx, u_idx = (a.ravel()[:rows] for a in np.meshgrid(
        np.arange(len(models)), np.arange(len(offers)), np.arange(n_util), indexing="ij"))
    return pd.DataFrame({
        "model": pd.Categorical.from_codes(m_idx, [m for m, _ in models]),
        "price_id": pd.Categorical.from_codes(o_idx, [o[0] for o in offers]),
        "hardware_id": pd.Categorical(np.array([o[1] for o in offers])[o_idx]),
        "flops_per_token": np.array([f for _, f in models])[m_idx],
        "peak_flops_per_s": np.array([o[2] for o in offers])[o_idx],
        "usd_per_accelerator_hour": np.array([o[3] for o in offers])[o_idx],
        "mfu": mfu[u_idx],
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    grid = build_grid(args.rows)
    build_s = time.perf_counter() - t0
    inference_grid(grid)  # warm-up (first-call imports and allocations)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = inference_grid(grid)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)

    for i in np.linspace(0, len(out) - 1, 7).astype(int):  # grid == scalar on sample rows
        row = out.iloc[i]
        ref = inference_cost(row.flops_per_token, row.peak_flops_per_s, row.mfu, row.usd_per_accelerator_hour)
        for key, value in ref.items():
            assert math.isclose(row[key], value, rel_tol=1e-12), (i, key, row[key], value)

    print(f"grid: {grid['model'].nunique()} models x {grid['price_id'].nunique()} price offers x "
          f"{grid['mfu'].nunique()} utilizations, cut to {len(grid):,} rows (built in {build_s:.2f} s)")
    print(f"rows: {len(out):,}")
    print(f"seconds: {seconds:.3f} (median of {args.repeat}; min {min(times):.3f}, max {max(times):.3f})")
    print(f"rows/s: {len(out) / seconds:,.0f}")


if __name__ == "__main__":
    main()
