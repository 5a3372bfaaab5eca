"""Does the serving plan's step-time model predict a real generate loop? (issue "Serving economics", item 3)

One bench run on this machine measures prefill, decode and generate of the tiny model together, its rounds
interleaved so that a shared machine's load falls on all three alike. The calibration is fitted on the prefill and
decode rows of batch {1, 4, 8} x sequence {32, 128}; the generate rows whose batch (2, 6) or prompt (64) is outside
that set are predicted from it (TTFT = the prefill step, TPOT = the decode step at the mean context, request =
TTFT + (O - 1) x TPOT) and compared with what was measured. Prints the rows and the median errors.

    PYTHONPATH=src python benchmarks/serving_check.py [--new-tokens 16] [--out /tmp/serving-check]

About 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import tempfile

from llmecon.api import bench
from llmecon.estimate.generate_check import held_out_check

FIT_BATCHES, FIT_SEQS = (1, 4, 8), (32, 128)
ALL_BATCHES, ALL_SEQS = (1, 2, 4, 6, 8), (32, 64, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="serving-check-")
    res = bench("tiny", phases=("prefill", "decode", "generate"), batch_sizes=ALL_BATCHES, seq_lens=ALL_SEQS,
                device="cpu", new_tokens=args.new_tokens, out=out, progress=True)
    checked, totals, calib = held_out_check(res.frame, FIT_BATCHES, FIT_SEQS)
    print(calib.describe())
    cols = ["batch_size", "prompt_tokens", "output_tokens", "ttft_s", "ttft_predicted_s", "ttft_rel_error", "tpot_s",
            "tpot_predicted_s", "tpot_rel_error", "request_rel_error"]
    print(checked[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for q, v in totals.items():
        print(f"{q}: median error {v['median_rel_error']:.1%}, max {v['max_rel_error']:.1%} over {v['n']} "
              f"held-out generate configurations")
    print(f"runs in {res.paths[0]}")


if __name__ == "__main__":
    main()
