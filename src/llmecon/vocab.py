"""The words llmecon's options, files and tables share, each list written once.

Every module that names a phase, a dtype, a FLOP convention, a status or a price term takes it from here,
so that the CLI's choices, the record format and the sheets' validation can never disagree.
"""

# The phases calibrate fits and estimates price.
PHASES = ("prefill", "decode", "train")
INFERENCE_PHASES = ("prefill", "decode")
# A bench-only phase: a whole batched request (prefill, then greedy decode steps), timed end to end for its time to
# first token and time per output token (measure.workloads). Calibrate never fits it: it is predicted from the
# prefill and decode fits, which is what measuring it checks.
GENERATE = "generate"
BENCH_PHASES = PHASES + (GENERATE,)

# Every dtype a datasheet peak may be given for (int8 in OP/s), and the subset bench can run
# (tf32 = float32 storage with TF32 tensor-core matmuls allowed).
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
BENCH_DTYPES = ("fp32", "tf32", "bf16", "fp16")

# FLOP conventions (costmodel.flops says what each counts). Flat estimates default to the article's (2N, 6N: the
# article's own MFUs are in it). Calibrations default to `executed`, because a reader takes η_compute for "the
# share of the peak the kernels reached", so F must count the work the kernels ran (docs/measuring.md §12.3):
# - `executed` is exact for eager attention and the CPU math path, and for decode on any kernel (a decode query
#   attends every position); it overcounts a fused sdpa/flash prefill, which skips the masked half of the
#   scores, by +1.7 / +6.4 / +21.6 % at seq 512 / 2048 / 8192 for llama-3.2-1b (+1.0 / +3.7 / +13.3 % for
#   llama-3-8b), so a long-prefill GPU η comes out that much low;
# - `causal` matches the fused prefill exactly, but leaves out the LM head, which runs on every decode step and
#   every trained position: -21 % of a llama-3.2-1b decode step, -7 % for llama-3-8b, -20 % of a 1B training step;
# - `non_embedding` is PaLM's appendix-B "model FLOPs" (the MFU papers report): the LM head left out AND the
#   masked half counted, off in both directions;
# - `executed` is also the one convention the loader holds to 0 < MFU <= 1 (records.load.GATED).
# Decode, the phase that dominates serving cost, is exact under `executed` whatever the kernel; prefill-only
# calibrations of long sequences on fused kernels can pass --convention causal.
CONVENTIONS = ("article", "non_embedding", "causal", "executed")
ESTIMATE_CONVENTION = "article"
CALIBRATION_CONVENTION = "executed"

# Outcomes of one benchmarked configuration. Final ones are not retried by `bench --resume`.
STATUSES = ("ok", "invalid", "oom", "error", "timeout", "skipped", "interrupted")
FINAL_STATUSES = frozenset({"ok", "invalid", "oom", "skipped"})

# How a configuration spreads over several devices (measure.distributed): none (one device), ddp (DistributedDataParallel:
# a replica per rank, gradients all-reduced), fsdp (FSDP2 fully_shard: parameters, gradients and optimizer state
# sharded), tp (tensor parallelism: each layer's projections split across ranks, activations all-reduced). Data
# parallelism is for training; tensor parallelism for prefill, decode and generate.
PARALLELS = ("none", "ddp", "fsdp", "tp")
DATA_PARALLELS = ("ddp", "fsdp")
PARALLEL_PHASES = {"ddp": ("train",), "fsdp": ("train",), "tp": ("prefill", "decode", GENERATE)}

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
WEIGHTS = ("random", "local")
DEVICE_KINDS = ("cpu", "cuda")

# What dominates a predicted step time (calibration.model).
REGIMES = ("compute-bound", "memory-bound", "overhead-bound")

# Price terms on the price sheet, and the spellings accepted for them on the command line.
PRICE_TERMS = ("on_demand", "1_year", "3_year", "spot")
PRICE_TERM_ALIASES = {"od": "on_demand", "on-demand": "on_demand", "ondemand": "on_demand", "1yr": "1_year",
                      "1-year": "1_year", "3yr": "3_year", "3-year": "3_year"}
DEFAULT_PRICE_TERM = "on_demand"

# Where bench and run write when no folder is given (git-ignored); runs go into its runs/ folder.
DEFAULT_OUT = "llmecon-out"
RUNS_FOLDER = "runs"
