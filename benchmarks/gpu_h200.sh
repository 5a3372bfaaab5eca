#!/usr/bin/env bash
# The prepared GPU check: on one H200, in under 8 minutes in the worst case, the GPU tests, the memory plan of
# the sweep, the device's ceilings (measured by every `llmecon bench` run, in a short-lived child), and prefill,
# decode and train of a ~1B and an ~8B model at several batch sizes:
#
#   llama-3.2-1b  prefill + decode  batch 1, 8, 32   seq 2048 (decode: 32 steps after the 2048 prompt)
#   llama-3.2-1b  train             batch 1, 4, 8    seq 2048
#   llama-3-8b    prefill + decode  batch 1, 4, 8    seq 2048 (prefill b8: 16k tokens, ~0.4 s a forward)
#   llama-3-8b    train, 8 of 32 layers at full width (--layers 8, extrapolated x4), batch 1, 2, seq 2048
#                 (the whole 8B in fp32-master AdamW needs ~128 GB of state alone: the memory plan skips it)
#
# Worst case, every step running into its limit (seconds): gpu-tests 45, plan 15, 1b-prefill-decode 90,
# 1b-train 70, 8b-prefill-decode 95, 8b-train 60, calibrate 25, summary 25 = 425, plus 5 s of SIGKILL grace
# after each SIGINT (8 x 5 = 40) and ~10 s for nvidia-smi, the version line and the tar: 475 s = 7.9 min.
# Expected (estimates from the H200's 790 TFLOP/s and 4.8 TB/s, not yet measured): about 5 minutes.
#
# Runs from the repository root with no install (the GPU image has torch 2.11, transformers 5.17, but no
# pydantic, which llmecon's record format needs): fetch its wheels here first with `bash benchmarks/gpu_wheels.sh`
# (into the git-ignored .whl/), carry ".whl" to the GPU machine, then
#   bash benchmarks/gpu_h200.sh
# Writes under $OUT (default /tmp/llmecon-gpu-out): runs.tar.gz (every run folder), plan.json, calibration.json,
# summary.csv, log.txt; prints a short table last. Each step runs under `timeout` (SIGINT first: bench records
# the configuration in flight as interrupted and keeps the rest) and each round has bench's own --timeout.
set -u -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if ! python3 -c "import pydantic" 2>/dev/null; then  # the image lacks it: install the carried wheels aside
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "pydantic is missing and no wheels were carried: run bash benchmarks/gpu_wheels.sh here first"; exit 2; }
  export PYTHONPATH="src:/tmp/site"
fi
OUT="${OUT:-/tmp/llmecon-gpu-out}"
RUNS="${RUNS:-/tmp/llmecon-gpu-runs}"
mkdir -p "$OUT"
rm -rf "$RUNS" && mkdir -p "$RUNS"
LOG="$OUT/log.txt"
START=$(date +%s)

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu \
  --format=csv 2>&1 | tee -a "$LOG"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')" 2>&1 | tee -a "$LOG"

step() {  # name, limit_s, command...
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s, t=$(( $(date +%s) - START ))s)" | tee -a "$LOG"
  local tmp rc
  tmp=$(mktemp)
  timeout --signal=INT --kill-after=5 "$limit" "$@" >"$tmp" 2>&1
  rc=$?
  cat "$tmp" >>"$LOG"
  [ "$rc" -ne 0 ] && grep -v -i "warn" "$tmp" | tail -n 12
  grep -E "^[0-9]+ (passed|failed|skipped)|passed|skipped" "$tmp" | tail -n 1
  rm -f "$tmp"
  echo "=== $name: exit $rc (t=$(( $(date +%s) - START ))s)" | tee -a "$LOG"
}

# overridable only to rehearse the plumbing on a CPU: M1=tiny M8=tiny L8=1 SEQ=64 DEVICE=cpu DTYPE=fp32 (about 2 min
# on 2 cores; the plan is always for an H200)
M1="${M1:-llama-3.2-1b}" M8="${M8:-llama-3-8b}" L8="${L8:-8}" SEQ="${SEQ:-2048}" DEVICE="${DEVICE:-cuda}"
DTYPE="${DTYPE:-bf16}"
# three interleaved rounds a configuration (five by default): enough for compare's 90 % interval and a spread, within
# the budget; --min-time 0.7 x 3 rounds gives the 2 s of telemetry window energy per token needs
COMMON=(--dtype "$DTYPE" --device "$DEVICE" --out "$RUNS" --rounds 3 --min-iters 10 --min-time 0.7 --max-time 3
        --precision 2% --warmup 3 --timeout 80)

if python3 -c "import pytest" 2>/dev/null; then
  step gpu-tests 45 python3 -m pytest tests/measure/test_gpu.py -q -p no:cacheprovider
else  # the GPU image lists no pytest and has no network: say so rather than fail the step
  echo "=== gpu-tests: skipped, pytest is not installed on this machine" | tee -a "$LOG"
fi
# the memory plan of the whole sweep, predicted before anything runs (no GPU needed; compared with the measured
# peaks in the summary)
step plan 15 sh -c "python3 -m llmecon bench --dry-run --json --hardware h200 --model $M1 --model $M8 \
  --phase prefill,decode,train --batch-size 1,4,8,32 --seq-len $SEQ --new-tokens 32 --dtype $DTYPE --device cuda \
  > $OUT/plan.json"
step 1b-prefill-decode 90 python3 -m llmecon bench --model "$M1" --phase prefill,decode \
  --batch-size 1,8,32 --seq-len "$SEQ" --new-tokens 32 "${COMMON[@]}"
step 1b-train 70 python3 -m llmecon bench --model "$M1" --phase train --batch-size 1,4,8 --seq-len "$SEQ" \
  "${COMMON[@]}"
step 8b-prefill-decode 95 python3 -m llmecon bench --model "$M8" --phase prefill,decode \
  --batch-size 1,4,8 --seq-len "$SEQ" --new-tokens 32 "${COMMON[@]}"
step 8b-train-8-layers 60 python3 -m llmecon bench --model "$M8" --layers "$L8" --phase train \
  --batch-size 1,2 --seq-len "$SEQ" "${COMMON[@]}"

tar czf "$OUT/runs.tar.gz" -C "$RUNS/runs" . 2>>"$LOG"   # bench --out DIR writes DIR/runs/<run id>

# the calibration built from these runs (CPU work, seconds): issue 5 commits it beside the records
step calibrate 25 python3 -m llmecon calibrate "$RUNS" -o "$OUT/calibration.json"

timeout 25 python3 - "$RUNS" "$OUT/summary.csv" <<'PY'
import sys
from llmecon.records.load import load_results

res = load_results(sys.argv[1])
for run_id, run in sorted(res.runs.items()):
    for dtype, c in run.ceilings.items():
        print(f"{run_id}: {run.device.name} ({run.device.hardware_id}) ceilings {dtype}: GEMM "
              f"{c.gemm_flops_per_s / 1e12:.4g} TFLOP/s ({c.gemm_shape}), copy {c.copy_bytes_per_s / 1e12:.3g} TB/s")
for p in res.problems:
    print("problem:", p)
frame = res.frame
frame.to_csv(sys.argv[2], index=False)
cols = ["model", "phase", "batch_size", "seq_len", "status", "tokens_per_s", "step_time_s", "device_step_s",
        "device_busy_fraction", "step_time_spread", "mfu_executed", "mfu_executed_vs_ceiling", "mfu_non_embedding",
        "bandwidth_util", "energy_j_per_token", "power_capped_fraction", "peak_memory_bytes", "aten_ops_per_step",
        "cuda_kernels_per_step"]
f = frame.sort_values(["model", "phase", "batch_size"])[cols].copy()
f["step_ms"] = f.pop("step_time_s") * 1e3
f["dev_ms"] = f.pop("device_step_s") * 1e3
f["busy%"] = (100 * f.pop("device_busy_fraction")).round(0)
f["capped%"] = (100 * f.pop("power_capped_fraction")).round(0)
f["peak_GiB"] = f.pop("peak_memory_bytes") / 2**30
f["noise%"] = (100 * f.pop("step_time_spread")).round(1)
for c in ("mfu_executed", "mfu_executed_vs_ceiling", "mfu_non_embedding", "bandwidth_util"):
    f[c] = (100 * f[c]).round(1)
print(f.rename(columns={"mfu_executed": "mfu_exec%", "mfu_executed_vs_ceiling": "mfu_ceil%",
                        "mfu_non_embedding": "mfu_ne%", "bandwidth_util": "bw%", "batch_size": "b",
                        "seq_len": "seq", "energy_j_per_token": "J/tok", "aten_ops_per_step": "ops",
                        "cuda_kernels_per_step": "kernels"}).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
bad = frame[frame["status"] != "ok"]
for r in bad.itertuples():
    print(f"not ok: {r.model} {r.phase} b={r.batch_size}: {r.status}: {r.reason}")
PY
echo "total $(( $(date +%s) - START ))s"
