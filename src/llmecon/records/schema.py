"""The record format, declared once: ``run.json`` and one record per configuration, schema version 5.

A run folder::

    <out>/<run_id>/run.json                  Run: who measured what, where, with which software
    <out>/<run_id>/records/<config_id>.json  Record: one configuration, its raw samples and its outcome
    <out>/<run_id>/logs/worker-NNN.log       what the worker processes printed

Every field is declared here (and published as JSON Schema in docs/record.schema.json and
docs/run.schema.json, which a test keeps equal to these models). A new field bumps SCHEMA_VERSION and
``migrate.py`` learns to lift the old layout; nothing else in llmecon reads an old layout. Units are in the
names (``_s`` seconds, ``_bytes``, ``_per_s``, ``_w`` watts, ``_j`` joules). Derived numbers (MFU,
bandwidth use) are not stored: the loader derives them from the raw samples and the sheets as they are now.

Work and time with ``--layers k`` (k of L layers built): ``work`` counts the model as built and
``work.full_model`` the whole model, both exact from the cost model; ``model.time_scale`` is the full/built
ratio of the work that dominates the phase (executed FLOPs for prefill and train, bytes read for decode),
by which the loader extrapolates measured time; ``model.layer_scale`` (L/k) is information only.

Timing (schema 3): a configuration is measured in ``rounds``, interleaved with the other configurations of
its model (docs/measuring.md §3). Each round keeps its raw samples; the configuration's estimate is the
median over rounds of each round's mean step time, and its noise the spread between rounds. ``work.ops`` holds the counts timing
cannot move (operator calls per step).

Schema 4 (the GPU path): each round keeps the device's own clock beside the host's (``device_samples_s``, CUDA
events), the timing block the kernels' busy share of the step and the ``launch_bound`` flag, ``work.ops`` the
kernels' busy time, the telemetry ``power_capped_fraction`` (holding the power limit is not throttling),
the most processes NVML saw on the GPU, the time left out of the window (``excluded_s``: decode's re-prefills)
and why energy per token is missing; run.json's device block gains ``compute_mode`` and a ceiling its
``timing_method``.

Schema 5 (serving): the bench-only phase ``generate`` (measure.workloads): one timed call is one batched request, a
prefill of ``seq_len`` prompt tokens then ``new_tokens - 1`` greedy decode steps. Its rounds keep beside the request
times (``samples_s``) the raw ``ttft_samples_s`` (one per timed call: time to first token, seconds) and
``tpot_samples_s`` (``new_tokens - 1`` per timed call, call by call in order: each decode step's time, seconds).
Both are null for the other phases; older records load unchanged.

Schema 6 (beyond one device, measure.distributed): a configuration's ``config`` gains ``parallel`` (none, ddp, fsdp
or tp) and ``world_size``; a distributed record's ``distributed`` block holds the world (size, nodes, backend,
mesh), every rank's own samples, step time, peak memory and energy, and the collectives counted in one step.
Its ``timing`` samples are the step as the job saw it: per timed call, the slowest rank's time; its ``work`` is the
whole job's (every rank's tokens and FLOPs; tensor parallelism shares one batch). run.json's ``distributed``
block holds the world and the interconnect measured at the start (all-reduce and all-gather bus bandwidth).
Older records are single-device: parallel none, world size 1, no distributed block.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from llmecon.formats import Strict
from llmecon.records.distributed import Distributed, DistributedRun

SCHEMA_VERSION = 6

# NVML refreshes its power reading about every 100 ms and, on A100 and H100, averages only part of each period
# (Yang et al. 2024, "Part-time Power Measurements: nvidia-smi's Lack of Attention", arXiv:2312.02741): energy from
# a telemetry window shorter than this (over all rounds) can be off by tens of percent, so no energy per token is
# derived from one.
MIN_ENERGY_WINDOW_S = 2.0
CONFIG_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+=,@-]{0,199}$"

Phase = Literal["prefill", "decode", "train"]
BenchPhase = Literal["prefill", "decode", "train", "generate"]  # vocab.BENCH_PHASES
BenchDtype = Literal["fp32", "tf32", "bf16", "fp16"]
Convention = Literal["article", "non_embedding", "causal", "executed"]
Status = Literal["ok", "invalid", "oom", "error", "timeout", "skipped", "interrupted"]
Parallel = Literal["none", "ddp", "fsdp", "tp"]  # vocab.PARALLELS


# ------------------------------------------------------------------------------------------------ run.json

class Environment(Strict):
    """What produced the numbers. A field that could not be determined is null and ``unavailable`` says why."""

    python: str
    tool_version: str
    platform: str | None = None
    cpu_model: str | None = None
    cpu_count: PositiveInt | None = None
    torch: str | None = None
    cuda: str | None = None
    transformers: str | None = None
    driver: str | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    unavailable: dict[str, str] = Field(default_factory=dict)


class GpuProcess(Strict):
    pid: int
    used_memory_bytes: NonNegativeInt | None = None


class Device(Strict):
    """The probed device. ``hardware_id`` is the hardware sheet's id when the reported name matches one
    exactly, else null with ``hardware_match_reason`` (no datasheet peak is then borrowed)."""

    kind: Literal["cpu", "cuda"]
    device: str
    name: str
    hardware_id: str | None
    hardware_match_reason: str | None
    count: PositiveInt = 1
    memory_bytes: NonNegativeInt | None = None
    cpu_model: str | None = None
    cpu_count: PositiveInt | None = None
    torch_threads: PositiveInt | None = None
    telemetry_available: bool = False
    telemetry_reason: str | None = None
    # CUDA only (torch's device properties, then NVML)
    index: NonNegativeInt | None = None
    multiprocessors: PositiveInt | None = None
    compute_capability: str | None = None
    cuda: str | None = None
    cuda_visible_devices: str | None = None
    nvml_name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    driver: str | None = None
    nvml_memory_bytes: NonNegativeInt | None = None
    sm_clock_mhz: NonNegativeInt | None = None
    memory_clock_mhz: NonNegativeInt | None = None
    max_sm_clock_mhz: NonNegativeInt | None = None
    max_memory_clock_mhz: NonNegativeInt | None = None
    power_limit_w: NonNegativeFloat | None = None
    temperature_c: float | None = None
    persistence_mode: int | None = None
    ecc_enabled: bool | int | None = None
    mig_enabled: bool | int | None = None
    energy_counter_available: bool | None = None
    compute_mode: str | None = None       # NVML: default, exclusive_process, prohibited, exclusive_thread
    # Processes NVML listed on the GPU while the probe ran (the probe's own included). NVML reports PIDs of the
    # host's namespace, which in a container are not this process's: foreign_gpu_pids (those not equal to the
    # probe's PID) is then unreliable; the telemetry counts processes during every round instead.
    gpu_processes: list[GpuProcess] = Field(default_factory=list)
    foreign_gpu_pids: list[int] = Field(default_factory=list)


class Ceiling(Strict):
    """The device's own ceilings in one dtype: the best large-GEMM FLOP/s and copy bandwidth measured."""

    gemm_flops_per_s: PositiveFloat
    copy_bytes_per_s: PositiveFloat
    gemm_shape: list[PositiveInt] | None = None
    gemm_dtype: str | None = None
    gemm_best_s: PositiveFloat | None = None
    gemm_median_s: PositiveFloat | None = None
    gemm_samples: NonNegativeInt | None = None
    copy_bytes: PositiveInt | None = None
    copy_best_s: PositiveFloat | None = None
    copy_samples: NonNegativeInt | None = None
    statistic: str | None = None
    timing_method: str | None = None      # CUDA events around back-to-back calls (GPU), or the host clock
    torch_threads: PositiveInt | None = None


class Run(Strict):
    """``run.json``: one bench run. ``config`` is the bench's own description of the sweep (what
    ``bench --resume`` reruns); it is validated by the bench when it resumes, not here."""

    schema_version: Literal[6]
    kind: Literal["llmecon-run"] = "llmecon-run"
    run_id: str
    created_utc: str
    tool_version: str
    environment: Environment
    device: Device
    ceilings: dict[BenchDtype, Ceiling]
    config: dict[str, Any]
    distributed: DistributedRun | None = None
    nonfinite_fields: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------------------------------------ records

class BenchConfig(Strict):
    """What was asked for: the configuration as planned (its hash is in the config id)."""

    model: str                    # as given: a preset name, a config.json or a local model folder
    phase: BenchPhase
    batch_size: PositiveInt
    seq_len: PositiveInt             # generate: the prompt length
    # decode: steps timed per pass; generate: output tokens per sequence (the first, from the prefill, included);
    # null for prefill and train
    new_tokens: PositiveInt | None
    dtype: BenchDtype
    device: str
    attn_implementation: Literal["sdpa", "eager"]
    compile: bool
    static_cache: bool
    layers: PositiveInt | None
    activation_checkpointing: bool
    weights: Literal["random", "local"]
    # beyond one device (schema 6): ddp and fsdp: batch_size is per rank; tp: the ranks share one batch
    parallel: Parallel = "none"
    world_size: PositiveInt = 1


class ModelInfo(Strict):
    """The model that ran, from the cost model's shapes (no torch needed to read it)."""

    name: str                     # a preset's name, a config's _name_or_path, or its folder's name
    model_type: str
    params_total: NonNegativeInt
    params_non_embedding: NonNegativeInt
    params_active: NonNegativeInt
    num_hidden_layers: PositiveInt
    layers_built: PositiveInt
    layer_scale: PositiveFloat
    params_built: NonNegativeInt
    weights: Literal["random", "local"]
    attn_implementation: Literal["sdpa", "eager"]
    extrapolated: bool
    time_scale: PositiveFloat
    extrapolation_basis: str


class ValidityBlock(Strict):
    valid: bool
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class RoundBlock(Strict):
    """One round: the cold call, a warm-up on the same shapes, then timed calls until the stopping rule
    (measure.timing). Raw samples in seconds per timed call (null for a non-finite sample sanitised on
    write); the loader recomputes every statistic from them."""

    samples_s: list[float | None]
    device_samples_s: list[float | None] | None = None  # CUDA events around each timed call (null on a CPU)
    first_call_s: NonNegativeFloat | None
    warmup_iters: NonNegativeInt
    n_samples: NonNegativeInt
    total_s: NonNegativeFloat | None      # wall clock of the timed window
    stop: Literal["precision", "minimums", "max_time", "max_iters"] | None = None  # null: not recorded
    cap_s: NonNegativeFloat | None = None  # the window's cap, scaled to the step time
    mean_s: float | None = None            # the round's statistic: its throughput is work / mean step
    median_s: float | None = None
    ci_low_s: float | None = None          # the median's distribution-free 95 % interval (the stopping rule's)
    ci_high_s: float | None = None
    validity: ValidityBlock
    context_positions: list[PositiveInt] | None = None  # decode: the context length of each sample
    # generate (null otherwise): per timed call (one request), its time to first token (fresh cache, prompt prefill,
    # greedy token, synchronised), seconds; and each of its new_tokens - 1 decode steps (each ending synchronised),
    # seconds, call by call in order. samples_s[i] = ttft_samples_s[i] + the sum of call i's steps.
    ttft_samples_s: list[float | None] | None = None
    tpot_samples_s: list[float | None] | None = None


class TimingBlock(Strict):
    """The configuration's rounds and what bench computed from them: ``step_s`` is the median over rounds of
    each round's mean step time, ``spread`` the round means' (max - min) / 2 over it (null with one round)."""

    rounds: list[RoundBlock]
    step_s: float | None = None
    spread: NonNegativeFloat | None = None
    validity: ValidityBlock
    statistic: str | None = None
    # the device's side (null on a CPU): device_step_s is the CUDA events' step time (the same statistic as
    # step_s); device_busy_s the kernels' busy time in one profiled step; launch_bound when that is under half of
    # step_s (measure.rounds)
    device_step_s: float | None = None
    device_busy_s: NonNegativeFloat | None = None
    device_busy_fraction: NonNegativeFloat | None = None
    launch_bound: bool | None = None
    # decode
    prompt_prefill_s: NonNegativeFloat | None = None
    protocol: str | None = None
    cache: Literal["static", "dynamic"] | None = None
    # train
    master_dtype: str | None = None
    autocast_dtype: str | None = None
    final_loss: float | None = None


class FullModelWork(Strict):
    flops_per_step: dict[Convention, NonNegativeFloat]
    bytes_per_step: NonNegativeFloat | None
    hardware_flops_per_step: NonNegativeFloat | None = None


class OpCounts(Strict):
    """Operator calls in one untimed step, counted on the device: work that timing noise cannot move (a
    different attention kernel or an added copy changes it). Null counts carry ``reason``."""

    aten_ops_per_step: NonNegativeInt | None
    aten_op_counts: dict[str, NonNegativeInt] = Field(default_factory=dict)
    cuda_kernels_per_step: NonNegativeInt | None = None
    cuda_kernel_time_s_per_step: NonNegativeFloat | None = None  # union of the kernels' intervals (busy time)
    reason: str | None = None


class Work(Strict):
    """Work per timed call, from the cost model, for the model as built (and the full model)."""

    tokens_per_step: PositiveInt
    flops_per_step: dict[Convention, NonNegativeFloat]
    bytes_per_step: NonNegativeFloat | None
    bytes_definition: str | None = None
    flops_definition: str | None = None
    hardware_flops_per_step: NonNegativeFloat | None = None
    hardware_flops_definition: str | None = None
    full_model: FullModelWork
    ops: OpCounts | None = None


class MemoryBlock(Strict):
    peak_bytes: NonNegativeFloat | None
    peak_reserved_bytes: NonNegativeFloat | None = None
    process_max_rss_bytes: NonNegativeFloat | None = None
    reason: str | None = None


class HostCpu(Strict):
    other_cpu_cores: NonNegativeFloat | None
    window_s: NonNegativeFloat | None
    busy: bool
    reason: str | None


class Telemetry(Strict):
    """NVML samples during the timed window (nulls with ``reason`` on a CPU or without NVML)."""

    energy_j: NonNegativeFloat | None = None
    mean_power_w: NonNegativeFloat | None = None
    reason: str | None = None
    max_temp_c: float | None = None
    sm_clock_mhz_median: float | None = None
    sm_clock_mhz_min: float | None = None
    throttle_reasons: list[str] = Field(default_factory=list)  # clock-event reasons but the power cap
    power_capped_fraction: NonNegativeFloat | None = None      # share of samples holding the power limit
    gpu_processes_max: NonNegativeInt | None = None            # most compute processes NVML saw on the GPU
    n_samples: NonNegativeInt = 0
    window_s: NonNegativeFloat | None = None                   # telemetry window, paused parts left out
    excluded_s: NonNegativeFloat | None = None                 # paused: untimed work inside the window
    window_energy_j: NonNegativeFloat | None = None
    energy_source: str | None = None
    energy_method: str | None = None
    tokens_in_samples: NonNegativeInt | None = None
    energy_j_per_token: NonNegativeFloat | None = None
    energy_reason: str | None = None                           # why energy per token is null
    host_cpu: HostCpu | None = None


class Knobs(Strict):
    """How one configuration is timed (measure.timing.measure): ``rounds`` rounds, interleaved with the other
    configurations of the model; in each, at least ``warmup_iters`` warm-up calls after the cold one, then timed
    calls until ``min_iters`` samples and ``min_time_s`` of summed sample time are reached and the median is
    known to ``target_rel_ci`` (relative half-width of its 95 % interval; null: stop at the minimums), or a cap
    hits first: ``max_iters`` samples, or ``max_time_s`` of wall clock, raised to what ``min_iters`` calls of the
    warm step need. measure.timing.DEFAULT_KNOBS holds the defaults per device kind; a record keeps its knobs."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    warmup_iters: NonNegativeInt
    min_iters: PositiveInt
    min_time_s: NonNegativeFloat
    max_time_s: PositiveFloat
    max_iters: PositiveInt = 10_000
    rounds: PositiveInt = 1
    target_rel_ci: PositiveFloat | None = None


class ErrorBlock(Strict):
    type: str
    message: str
    traceback: str | None = None


class HostLoad(Strict):
    loadavg_1m_before: NonNegativeFloat | None
    loadavg_1m_after: NonNegativeFloat | None
    cpu_count: PositiveInt | None


class Record(Strict):
    """One configuration's outcome. ``status`` ok and invalid carry samples; oom, error, timeout, skipped
    and interrupted carry ``reasons`` (and ``error`` with the traceback for error)."""

    schema_version: Literal[6]
    kind: Literal["llmecon-record"] = "llmecon-record"
    run_id: str
    created_utc: str
    config_id: str = Field(pattern=CONFIG_ID_PATTERN)
    config: BenchConfig
    model: ModelInfo
    status: Status
    reasons: list[str] = Field(default_factory=list)
    timing: TimingBlock
    work: Work
    memory: MemoryBlock
    telemetry: Telemetry
    measure: Knobs
    error: ErrorBlock | None = None
    torch_threads: PositiveInt | None = None
    host: HostLoad | None = None
    wall_s: NonNegativeFloat | None = None
    distributed: Distributed | None = None
    nonfinite_fields: list[str] = Field(default_factory=list)


def json_schemas() -> dict[str, dict]:
    """{file name: JSON Schema} of the two documents, as published under docs/."""
    return {"run.schema.json": Run.model_json_schema(), "record.schema.json": Record.model_json_schema()}
