"""What a bench run measures: the sweep (`BenchSpec`, validated and nothing else), the default suite per
device kind, and the plan of configurations it expands to.

Timing knobs left as None take the device kind's defaults (timing.DEFAULT_KNOBS), so the CLI, the default
suite and the Python API time alike unless told otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from llmecon.measure.timing import DEFAULT_KNOBS
from llmecon.measure.models import built_shape
from llmecon.errors import UserError, require_count, require_positive
from llmecon.records.schema import Knobs
from llmecon.records.store import make_config_id
from llmecon.vocab import (ATTN_IMPLEMENTATIONS, BENCH_DTYPES, BENCH_PHASES, GENERATE, PARALLEL_PHASES, PARALLELS, PHASES,
                           WEIGHTS)

DEFAULT_TIMEOUT_S = 900.0
# torch threads on a CPU unless told otherwise: one, as torch.utils.benchmark does. On a shared host a second
# OpenMP thread waits at every barrier for a sibling the hypervisor or a neighbour preempted: on the 2-core
# development VM, four identical runs with two threads differed by up to 1.87x, five right after with one thread
# by up to 1.15x, and the tiny model was no faster with two (benchmarks/noise.py --threads). Measure a big CPU
# with --threads N.
DEFAULT_CPU_THREADS = 1


def _device_ok(device: str) -> bool:
    d = device.strip().lower()
    return d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit())


def default_dtype(device_kind: str) -> str:
    """bf16 on a GPU (what LLMs are served and trained in), fp32 on a CPU (no fast bf16 matmuls there)."""
    return "bf16" if device_kind == "cuda" else "fp32"


@dataclass(frozen=True)
class BenchSpec:
    """One sweep: every combination of models x phases x seq_lens x batch_sizes.

    ``phases`` are any of vocab.BENCH_PHASES (default the three calibrate fits). ``new_tokens``: decode's steps timed
    per pass; generate's output tokens per sequence (at least 2: the first token and one decode step).

    ``name`` names the model in records and tables when there is one model (default: the preset's name, a
    config's ``_name_or_path``, or its folder's name). ``dtype`` None is the device kind's default; timing
    knobs None are ``timing.DEFAULT_KNOBS`` for the device kind. ``memory_check`` False runs configurations the
    memory model predicts not to fit (measure.memcheck) instead of recording them as skipped."""

    models: tuple[str, ...]
    phases: tuple[str, ...] = PHASES
    batch_sizes: tuple[int, ...] = (1,)
    seq_lens: tuple[int, ...] = (128,)
    dtype: str | None = None
    device: str = "auto"
    new_tokens: int = 16
    attn_implementation: str = "sdpa"
    layers: int | None = None
    compile: bool = False
    static_cache: bool = False
    activation_checkpointing: bool = False
    warmup_iters: int | None = None
    min_iters: int | None = None
    min_time_s: float | None = None
    max_time_s: float | None = None
    rounds: int | None = None
    target_rel_ci: float | None = None  # the stopping rule's precision; 0 turns it off (stop at the minimums)
    timeout_s: float = DEFAULT_TIMEOUT_S
    isolate: bool = True
    weights: str = "random"
    threads: int | None = None  # CPU: torch.set_num_threads for the ceilings and the workers (None: DEFAULT_CPU_THREADS)
    name: str | None = None
    memory_check: bool = True  # skip configurations the memory model predicts not to fit (measure.memcheck)
    # beyond one device (measure.distributed): how each configuration is spread over torchrun's ranks, and whether
    # the same configuration also runs on one device (rank 0 alone), the baseline of the scaling efficiency
    parallel: str = "none"
    baseline: bool = True

    def __post_init__(self):
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise UserError("at least one model is needed (a preset, a config.json or a local model folder)")
        if self.name is not None and (len(set(self.models)) != 1 or not str(self.name).strip()):
            raise UserError("--name names the model of a sweep with exactly one --model")
        if not self.phases:
            raise UserError(f"at least one phase is needed: {', '.join(BENCH_PHASES)}")
        for p in self.phases:
            if p not in BENCH_PHASES:
                raise UserError(f"unknown phase {p!r}; choose from {', '.join(BENCH_PHASES)}")
        if self.dtype is not None and self.dtype not in BENCH_DTYPES:
            raise UserError(f"dtype {self.dtype!r} cannot be benchmarked; choose one of {', '.join(BENCH_DTYPES)}")
        if not isinstance(self.device, str) or not _device_ok(self.device):
            raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise UserError(f"attention implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, "
                            f"got {self.attn_implementation!r}")
        if self.weights not in WEIGHTS:
            raise UserError(f"weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        for name, values in (("--batch-size", self.batch_sizes), ("--seq-len", self.seq_lens)):
            if not values:
                raise UserError(f"at least one {name} is needed")
            for v in values:
                require_count(name, v)
        require_count("--new-tokens", self.new_tokens)
        if GENERATE in self.phases and self.new_tokens < 2:
            raise UserError(f"--phase generate needs --new-tokens >= 2 (the first token and at least one decode "
                            f"step), got {self.new_tokens}")
        if GENERATE in self.phases and self.compile:
            raise UserError("--phase generate runs eager (a compiled prefill and decode are not measured yet): "
                            "drop --compile or measure generate in a sweep of its own")
        for name in ("layers", "threads", "min_iters", "rounds"):
            if getattr(self, name) is not None:
                require_count(f"--{name.replace('_', '-')}", getattr(self, name))
        if self.warmup_iters is not None:
            require_count("--warmup", self.warmup_iters, allow_zero=True)
        if self.min_time_s is not None:
            require_positive("--min-time", self.min_time_s, allow_zero=True)
        if self.max_time_s is not None:
            require_positive("--max-time", self.max_time_s)
        if self.target_rel_ci is not None:
            require_positive("--precision", self.target_rel_ci, allow_zero=True)
        require_positive("--timeout", self.timeout_s)
        if not isinstance(self.memory_check, bool):
            raise UserError(f"memory_check must be true or false, got {self.memory_check!r}")
        if self.parallel not in PARALLELS:
            raise UserError(f"--parallel must be one of {', '.join(PARALLELS)}, got {self.parallel!r}")
        if self.parallel != "none":
            allowed = PARALLEL_PHASES[self.parallel]
            wrong = [p for p in self.phases if p not in allowed]
            if wrong:
                raise UserError(f"--parallel {self.parallel} measures {', '.join(allowed)}, not {', '.join(wrong)}: "
                                f"{'data parallelism is for training' if self.parallel != 'tp' else 'tensor parallelism is measured for inference'}")
            if self.compile:
                raise UserError(f"--parallel {self.parallel} runs eager (a compiled distributed step is not measured "
                                "yet): drop --compile")
            if self.static_cache:
                raise UserError("--parallel tp decodes with a dynamic cache (a StaticCache sized for all heads does "
                                "not fit a rank's share of them): drop --static-cache")

    def knobs(self, device_kind: str) -> Knobs:
        """The timing knobs: the device kind's defaults, with the ones this spec sets."""
        given = {k: getattr(self, k) for k in ("warmup_iters", "min_iters", "min_time_s", "max_time_s", "rounds",
                                               "target_rel_ci") if getattr(self, k) is not None}
        if given.get("target_rel_ci") == 0:
            given["target_rel_ci"] = None  # no precision target: each round stops at its minimums
        knobs = Knobs.model_validate(DEFAULT_KNOBS[device_kind].model_dump() | given)
        if knobs.min_time_s > knobs.max_time_s:
            raise UserError(f"--min-time ({knobs.min_time_s:g} s) exceeds --max-time ({knobs.max_time_s:g} s), the "
                            "cap on one timed window: every row would be invalid; raise --max-time or lower --min-time")
        return knobs

    def resolved_threads(self, device_kind: str) -> int | None:
        """torch threads for the ceilings and the workers: --threads, else one on a CPU (None: torch's own)."""
        return self.threads or (DEFAULT_CPU_THREADS if device_kind == "cpu" else None)

    def resolved_dtype(self, device_kind: str) -> str:
        return self.dtype or default_dtype(device_kind)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "BenchSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def default_suite(device_kind: str) -> BenchSpec:
    """A sweep sized for the device: the tiny preset on a CPU (seconds); a ~1B and an ~8B Llama on a GPU."""
    if device_kind == "cpu":
        return BenchSpec(models=("tiny",), batch_sizes=(1, 4), seq_lens=(64, 256), device="cpu",
                         timeout_s=300.0)
    if device_kind == "cuda":
        return BenchSpec(models=("llama-3.2-1b", "llama-3-8b"), batch_sizes=(1, 8, 32), seq_lens=(512, 2048),
                         device="cuda", new_tokens=32, timeout_s=600.0)
    raise UserError(f"no default suite for device kind {device_kind!r} (cpu or cuda)")


def _check_tp(full, world_size: int) -> None:
    """Tensor parallelism splits heads, KV heads and the MLP's width evenly across the ranks."""
    for what, n in (("attention heads", full.num_attention_heads), ("KV heads", full.num_key_value_heads),
                    ("intermediate_size", full.intermediate_size)):
        if n % world_size:
            raise UserError(f"--parallel tp on {world_size} ranks: {full.name}'s {n} {what} do not split evenly")


def plan(spec: BenchSpec, device: str, device_kind: str, world_size: int = 1) -> list[dict]:
    """Every configuration of the sweep, ordered model, phase, seq_len, then increasing batch.

    With a parallelism, every configuration runs on ``world_size`` ranks (its config gains ``parallel`` and
    ``world_size``), each kind preceded by the same configurations on one device when ``spec.baseline``.

    UserError (before anything runs) for an unknown model or a shape beyond the model's context length."""
    if spec.parallel == "none":
        return _plan_one(spec, device, device_kind, {})
    if world_size < 2:
        raise UserError(f"--parallel {spec.parallel} needs several ranks: start it with torchrun, or with "
                        "llmecon bench --nproc N")
    for model in dict.fromkeys(spec.models):
        if spec.parallel == "tp":
            _check_tp(built_shape(model, spec.layers)[1], world_size)
    spread = _plan_one(spec, device, device_kind, {"parallel": spec.parallel, "world_size": world_size})
    if not spec.baseline:
        return spread
    alone = _plan_one(spec, device, device_kind, {})
    out = []
    for model in dict.fromkeys(spec.models):  # per model: the baselines, then the same configurations spread
        out += [c for c in alone if c["model"] == model] + [c for c in spread if c["model"] == model]
    return out


def _plan_one(spec: BenchSpec, device: str, device_kind: str, extra: dict) -> list[dict]:
    configs = []
    dtype = spec.resolved_dtype(device_kind)
    for model in dict.fromkeys(spec.models):  # a value given twice is one configuration, measured once
        _, full = built_shape(model, spec.layers)
        if spec.weights == "local":
            _require_local_weights(model)
        ctx = full.max_position_embeddings
        for phase in dict.fromkeys(spec.phases):
            for seq in dict.fromkeys(spec.seq_lens):
                # the positions the cache holds: decode's prompt + its steps; generate's prompt + all but its last token
                added = {"decode": spec.new_tokens, GENERATE: spec.new_tokens - 1}.get(phase, 0)
                need = seq + added
                if need > ctx:
                    what = (f"seq_len {seq} + new_tokens {spec.new_tokens}" + (" - 1" if phase == GENERATE else "")
                            + f" = {need}" if added else f"seq_len {seq}")
                    raise UserError(f"{phase}: {what} exceeds {full.name}'s max_position_embeddings {ctx}")
                for batch in sorted(set(spec.batch_sizes)):
                    cfg = {
                        "model": model, "phase": phase, "batch_size": batch, "seq_len": seq,
                        "new_tokens": spec.new_tokens if phase in ("decode", GENERATE) else None,
                        "dtype": dtype, "device": device, "attn_implementation": spec.attn_implementation,
                        "compile": spec.compile, "static_cache": spec.static_cache and phase == "decode",
                        "layers": spec.layers,
                        "activation_checkpointing": spec.activation_checkpointing and phase == "train",
                        "weights": spec.weights,
                        **extra,
                    }
                    name = spec.name or full.name
                    configs.append({**cfg, "config_id": make_config_id(cfg, name), "name": name})
    return configs


def _require_local_weights(model: str) -> None:
    """--weights local needs a model folder holding weight files (read from disk only, never the Hub)."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise UserError(f"--weights local: {model!r} is not a local model folder (real weights are read only "
                        "from one; a preset or a config.json gets random weights)")
    if not any(p.suffix in (".safetensors", ".bin") for p in folder.iterdir() if p.is_file()):
        raise UserError(f"--weights local: {folder} has no weight files (*.safetensors or *.bin)")
