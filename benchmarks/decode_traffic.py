"""How many bytes does a decode step really move, against the MBU numerator llmecon divides by?

For each model and shape it counts one decode step's forward, operator by operator
(`llmecon.measure.traffic.decode_step_traffic`: every ATen operator charged with its inputs read once and its
outputs written once), over the three cache paths llmecon can run: the eager dynamic cache (``torch.cat``
grows every layer's keys and values), the eager static cache (``index_copy_`` writes one position; attention
reads the whole cache, masked) and the static cache as ``torch.compile`` receives it (``repeat_kv`` copies the
keys and values for every query head). It prints the MBU numerator (weights + one read of the KV cache,
`costmodel.memory.decode_step_bytes`), the weights the count saw read, and each path's bytes as a multiple
of the numerator, with the operators that make the difference.

``--device meta`` (the default) runs the real transformers code on shapes alone, so an 8B model costs nothing;
``--device cpu`` builds real random weights (the tiny preset gives the same counts both ways; the tests check
it). Figures in docs/measuring.md ("Bytes: the MBU numerator and what it leaves out") come from

    PYTHONPATH=src python benchmarks/decode_traffic.py
"""

from __future__ import annotations

import argparse
import warnings

from llmecon.costmodel.memory import (
    decode_step_bytes,
    decode_weight_bytes_read,
    kv_cache_bytes_per_token,
)
from llmecon.measure.models import build_model
from llmecon.measure.traffic import CACHE_PATHS, decode_step_traffic

DEFAULT_CASES = ("tiny:fp32:1:128", "tiny:fp32:8:1024", "llama-3-8b:bf16:1:1024", "llama-3-8b:bf16:8:4096",
                 "llama-3-8b:bf16:64:4096")


def measure_case(model: str, dtype: str, batch_size: int, context_len: int, device: str) -> dict:
    built = build_model(model, device=device, dtype=dtype)
    shape = built.shape
    out = {"model": model, "dtype": dtype, "batch_size": batch_size, "context_len": context_len,
           "mbu_bytes": decode_step_bytes(shape, dtype, batch_size, context_len + 1),
           "mbu_weight_bytes": decode_weight_bytes_read(shape, dtype, batch_size),
           "mbu_kv_bytes": batch_size * (context_len + 1) * kv_cache_bytes_per_token(shape, dtype)}
    for path in CACHE_PATHS:
        traffic = decode_step_traffic(built, batch_size, context_len, path)
        out[path] = traffic
    return out


def _gb(n: float) -> str:
    return f"{n / 1e9:.3f} GB" if n >= 1e8 else f"{n / 1e6:.3f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", default=DEFAULT_CASES, help="MODEL:DTYPE:BATCH:CONTEXT")
    parser.add_argument("--device", default="meta", help="meta (shapes only) or cpu")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print("| model | dtype | batch | context | MBU numerator (weights + KV) | weights read (counted) |"
          " dynamic cache | static cache | static, compiled graph |")
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for case in args.cases:
        model, dtype, b, c = case.split(":")
        r = measure_case(model, dtype, int(b), int(c), args.device)
        cells = [f"{r[p].total_bytes / r['mbu_bytes']:.2f}x" for p in CACHE_PATHS]
        print(f"| {model} | {dtype} | {b} | {c} | {_gb(r['mbu_bytes'])} ({_gb(r['mbu_weight_bytes'])} + "
              f"{_gb(r['mbu_kv_bytes'])}) | {_gb(r['dynamic'].read_by_group['weights'])} | " + " | ".join(cells) + " |")
        for p in CACHE_PATHS:
            top = ", ".join(f"{op} {_gb(rd)} read + {_gb(wr)} written" for op, rd, wr in r[p].by_operator()[:4])
            notes.append(f"{case} {p}: {_gb(r[p].total_bytes)} = {_gb(r[p].read_bytes)} read + "
                         f"{_gb(r[p].written_bytes)} written; largest: {top}")
    print()
    for n in notes:
        print("-", n)


if __name__ == "__main__":
    main()
