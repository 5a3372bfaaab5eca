"""Measure real decoder-only models on the local accelerator.

The only subpackage that imports torch, transformers and pynvml (lazily, inside functions):

- `probe`     the device, its driver and clocks, and its own GEMM and copy ceilings;
- `models`    build a model from a config, random weights, on the target device and dtype;
- `workloads` prefill, decode (KV cache) and train steps as zero-argument callables;
- `timing`    one `measure()` function: cold call kept apart, warm-up, sync, minimum count AND
              minimum time with a cap, raw samples, median and IQR, a validity verdict;
- `runner`    sweeps, one process per configuration, OOM/timeouts as statuses, resume.

Records are written and read by `llmecon.results`.
"""
