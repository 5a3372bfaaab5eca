"""llmecon from Python: the same numbers as the command line, as dicts and DataFrames.

Run from the repository root (it reads the committed CPU run under results/ and writes into a temporary
folder):  python examples/python_api.py
"""

import tempfile
from pathlib import Path

import llmecon

RESULTS = Path(__file__).resolve().parents[1] / "results"
out = Path(tempfile.mkdtemp(prefix="llmecon-example-"))

# 1. The cost model alone: parameters, FLOPs, and the article's flat-utilization price of GPT-3.
info = llmecon.model_info("llama-3-8b", seq_len=2048)
print(f"llama-3-8b: {info['params_total'] / 1e9:.2f} B parameters, "
      f"{info['forward_flops']['article'] / 1e12:.1f} TFLOP per 2,048-token prefill")
flat = llmecon.estimate_inference("gpt3-175b", hardware="a100-sxm4-40gb", price="aws-p4d.24xlarge-1yr-2023",
                                  mfu="21.3%")
print(f"GPT-3 on an A100 at 21.3% MFU: ${flat['usd_per_1k_tokens']:.4f} per 1K tokens (the article: $0.0035)")

# 2. Measurements: load the committed CPU run (any run folder, or llmecon-out/ after `llmecon run`).
res = llmecon.load_results(RESULTS)
print(res.frame[["model", "phase", "batch_size", "seq_len", "tokens_per_s", "mfu_executed_vs_ceiling"]]
      .to_string(index=False))

# 3. Calibrate on them, and price a workload at the efficiency measured instead of a flat MFU.
calib = llmecon.calibrate(RESULTS, out / "calibration.json")
print(calib.describe())
est = llmecon.estimate_inference("tiny", calibration=calib, batch_size=4, context_len=256, usd_per_hour=0.10)
print(f"tiny, decode batch 4 at context 256 on this CPU: {est['regime']}, "
      f"{est['tokens_per_s_per_accelerator']:,.0f} tokens/s, ${est['usd_per_1m_tokens']:.4f} per 1M tokens")

# 4. The same calibration file works from the command line:
#    llmecon estimate inference --model tiny --calibration <out>/calibration.json --usd-per-hour 0.1
assert llmecon.Calibration.load(out / "calibration.json") == calib

# 5. A regression check (a run against itself: nothing regressed) and the report.
check = llmecon.compare(RESULTS, RESULTS, max_drop="5%")
print(f"compare: {check['matched']} configurations matched, {check['regressions']} regression(s)")
page = llmecon.report(RESULTS, out / "report", calibration=calib)
print(f"report: {page}")
