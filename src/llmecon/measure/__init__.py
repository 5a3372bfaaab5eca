"""Measure real decoder-only models on the local accelerator (`llmecon bench`).

The only subpackage that imports torch, transformers and pynvml (inside functions, so that planning a
sweep needs none of them):

- `spec`      the sweep: BenchSpec (validated), the default suite per device kind, the plan of configurations;
- `timing`    one `measure()` function: cold call kept apart, warm-up, sync, minimum count AND minimum time
              with a cap, raw samples and their verdict; the timing defaults per device kind;
- `probe`     the device, its driver and clocks, its own GEMM and copy ceilings, telemetry during a window;
- `collectives` all-reduce / all-gather time, algbw and busbw between the ranks of a process group (nccl-tests);
- `commcount` the collectives one step issues, calls and full-buffer bytes per op (a dispatch mode);
- `models`    build a model from a config, random weights, on the target device and dtype;
- `workloads` prefill, decode (KV cache) and train steps, each timed;
- `record`    what a configuration's record says (the format itself: records/schema.py);
- `worker`    the process that runs a model's configurations; `runner` the parent: isolation, OOM and
              timeouts as statuses, resume; `progress` the bar.
"""
