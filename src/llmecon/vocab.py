"""The words llmecon's options, files and tables share, each list written once.

Every module that names a phase, a dtype, a FLOP convention, a status or a price term takes it from here,
so that the CLI's choices, the record format and the sheets' validation can never disagree.
"""

PHASES = ("prefill", "decode", "train")
INFERENCE_PHASES = ("prefill", "decode")

# Every dtype a datasheet peak may be given for (int8 in OP/s), and the subset bench can run
# (tf32 = float32 storage with TF32 tensor-core matmuls allowed).
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
BENCH_DTYPES = ("fp32", "tf32", "bf16", "fp16")

# FLOP conventions (costmodel.flops says what each counts). Flat estimates default to the article's;
# calibrations to what the kernels executed, so that a fitted efficiency is a hardware efficiency.
CONVENTIONS = ("article", "non_embedding", "causal", "executed")
ESTIMATE_CONVENTION = "article"
CALIBRATION_CONVENTION = "executed"

# Outcomes of one benchmarked configuration. Final ones are not retried by `bench --resume`.
STATUSES = ("ok", "invalid", "oom", "error", "timeout", "skipped", "interrupted")
FINAL_STATUSES = frozenset({"ok", "invalid", "oom", "skipped"})

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
