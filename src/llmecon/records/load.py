"""Results into one tidy pandas DataFrame: one row per record, derived numbers computed on load.

The loader reads records of any schema through ``store.read_record`` (migrated, validated), recomputes
the statistics from the raw samples of every round (``stats.summarize_rounds``: the median over rounds of
each round's mean step time, and the spread between rounds as the noise) and derives tokens/s, achieved FLOP/s, MFU and
bandwidth use from the samples and the hardware sheet as it is *now* (a corrected datasheet peak
re-derives old runs). Files that cannot be used are reported as ``"<file>: <reason>"`` problems and the
rest still loads.

Extrapolation (``--layers k``): FLOPs and bytes per step are the full model's (``work.full_model``); the
measured time, first call and energy per token are multiplied by ``model.time_scale``.

The datasheet peak is the sheet's dense peak for the record's dtype: an fp32 run is compared with the fp32
peak, never the tf32 one. A run whose git checkout was dirty gives its rows the warning ``dirty_build``.
Bandwidth use (``bandwidth_util``, ``bandwidth_util_vs_ceiling``; decode only) is model bandwidth utilisation, MBU:
``bytes_per_step`` (weights read + one read of the KV cache attended, the MBU numerator of Agarwal et al., "LLM
Inference Performance Engineering: Best Practices", Databricks blog, 2023) per second over the datasheet (or the
run's measured copy) bandwidth. Like MFU it counts the model's work, not the implementation's traffic, so it is a
lower bound: a dynamic cache's ``torch.cat`` copies and a compiled static cache's ``repeat_kv`` copies are not in
it (docs/measuring.md §8.5 measures them).

Generate rows (one timed call = one batched request, measure.workloads): the step is the request (tokens per step =
batch x new_tokens generated tokens, FLOPs its prefill plus its decode steps), so step_time_s, tokens_per_s and MFU
are per request as usual; ``ttft_s`` / ``ttft_p90_s`` are the median / 90th percentile of the time to first token
and ``tpot_s`` / ``tpot_p90_s`` those of the time per output token (one decode step: every sequence of the batch
gets one token), pooled over the samples of all rounds (``stats.median_p90``: linear interpolation, numpy's
default), seconds, times ``time_scale`` like every time. They are NaN for the other phases. ``bytes_per_step``
is the request's decode bytes; bandwidth use is left NaN (the request's time includes its compute-bound prefill).

Every MFU and bandwidth use of the ``executed`` convention (the FLOPs the kernels ran) must lie in (0, 1]
where it is defined, or the row is invalid; the other conventions may count work that never ran (the
article's 2N includes the embedding lookup), so their MFU is kept but not gated, and columns() says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from llmecon.costmodel.estimate import achieved_utilization, utilization_problem
from llmecon.costmodel.hardware import get_accelerator
from llmecon.costmodel.memory import BYTES_PER_ELEMENT
from llmecon.errors import UserError
from llmecon.records.schema import MIN_ENERGY_WINDOW_S, Record, Run
from llmecon.records.store import existing_folders, find_runs, read_record, read_run, record_files
from llmecon.stats import median_p90, summarize_rounds
from llmecon.vocab import CONVENTIONS, GENERATE

# Columns whose numbers are bounded by physics (the FLOPs the kernels ran, the bytes a decode step reads).
GATED = ("mfu_executed", "mfu_executed_vs_ceiling", "bandwidth_util")


def columns() -> list[str]:
    """The tidy frame's columns, in order."""
    return [
        "run_id", "config_id", "created_utc", "model", "model_spec", "hardware", "hardware_id", "device_name",
        "device_kind", "dtype", "phase", "status", "reason", "warnings",
        "batch_size", "seq_len", "new_tokens", "attn_implementation", "compile", "static_cache",
        "activation_checkpointing", "num_hidden_layers", "layer_scale", "time_scale",
        "parallel", "world_size", "nnodes", "slowest_rank", "rank_imbalance", "comm_bytes_per_step",
        "allreduce_busbw_bytes_per_s", "allgather_busbw_bytes_per_s", "scaling_efficiency", "scaling_baseline",
        "step_time_s", "step_time_spread", "round_means_s", "n_rounds", "n_samples", "first_call_s",
        "ttft_s", "ttft_p90_s", "tpot_s", "tpot_p90_s",
        "device_step_s", "device_busy_fraction", "launch_bound",
        "tokens_per_step", "tokens_per_s",
        *[f"flops_per_step_{c}" for c in CONVENTIONS], "bytes_per_step",
        "peak_flops_per_s", "peak_reason", "ceiling_flops_per_s", "peak_bytes_per_s", "ceiling_bytes_per_s",
        *[f"achieved_flops_per_s_{c}" for c in CONVENTIONS],
        *[f"mfu_{c}" for c in CONVENTIONS],
        *[f"mfu_{c}_vs_ceiling" for c in CONVENTIONS],
        "bytes_per_s", "bandwidth_util", "bandwidth_util_vs_ceiling",
        "weight_bytes", "peak_memory_bytes", "energy_j_per_token", "mean_power_w", "power_capped_fraction",
        "aten_ops_per_step", "aten_op_counts", "cuda_kernels_per_step", "valid", "path",
    ]  # fmt: skip


_INT = ("batch_size", "seq_len", "new_tokens", "num_hidden_layers", "n_rounds", "n_samples", "tokens_per_step",
        "aten_ops_per_step", "cuda_kernels_per_step", "world_size", "nnodes", "slowest_rank")
_OBJECT = ("round_means_s", "aten_op_counts")  # a list of seconds per round; {operator: calls per step}
_TEXT = ("run_id", "config_id", "created_utc", "model", "model_spec", "hardware", "hardware_id", "device_name",
         "device_kind", "dtype", "phase", "status", "reason", "warnings", "attn_implementation", "peak_reason",
         "path", "parallel", "scaling_baseline")
_BOOL = ("compile", "static_cache", "activation_checkpointing", "launch_bound")  # nullable: launch_bound on a CPU


def hardware_key(hardware_id: str | None, device_name: str | None) -> str:
    """The device a row was measured on: its hardware-sheet id, else the name the device reported."""
    return hardware_id or device_name or "unknown device"


def _add(into: list[str], items: Iterable[str]) -> None:
    into.extend(i for i in dict.fromkeys(items) if i not in into)


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den <= 0 else num / den


class _Sheet:
    """Datasheet entries looked up once per hardware id during one load: (Accelerator | None, reason)."""

    def __init__(self):
        self._cache: dict = {}

    def accelerator(self, hardware_id: str):
        if hardware_id not in self._cache:
            try:
                self._cache[hardware_id] = (get_accelerator(hardware_id), None)
            except UserError as exc:
                self._cache[hardware_id] = (None, str(exc))
        return self._cache[hardware_id]


def _peaks(run: Run | None, dtype: str, sheet: _Sheet) -> dict:
    """Datasheet peak (with the reason when there is none) and the run's own measured ceilings."""
    out: dict[str, Any] = {"peak_flops_per_s": None, "peak_bytes_per_s": None, "peak_reason": None,
                           "ceiling_flops_per_s": None, "ceiling_bytes_per_s": None}
    if run is None:
        out["peak_reason"] = "run.json unreadable: device and ceilings unknown"
        return out
    if run.device.hardware_id is None:
        out["peak_reason"] = run.device.hardware_match_reason or "device not in the hardware sheet"
    else:
        accel, why = sheet.accelerator(run.device.hardware_id)
        if accel is not None:
            out["peak_flops_per_s"] = accel.peak(dtype)
            out["peak_bytes_per_s"] = accel.memory_bytes_per_s
            if out["peak_flops_per_s"] is None:
                why = f"no dense {dtype} peak for {accel.id} in the hardware sheet"
        out["peak_reason"] = None if out["peak_flops_per_s"] is not None else why
    own = run.ceilings.get(dtype)
    if own is not None:
        out["ceiling_flops_per_s"] = own.gemm_flops_per_s
    # copy bandwidth does not depend on the dtype: any dtype's measurement serves
    copy = own or next(iter(run.ceilings.values()), None)
    out["ceiling_bytes_per_s"] = copy.copy_bytes_per_s if copy is not None else None
    return out


def _row(rec: Record, run: Run | None, sheet: _Sheet) -> dict:
    cfg, model, work = rec.config, rec.model, rec.work
    device = run.device if run is not None else None
    row: dict[str, Any] = {
        "run_id": rec.run_id, "config_id": rec.config_id, "created_utc": rec.created_utc, "model": model.name,
        "model_spec": cfg.model, "hardware_id": device.hardware_id if device else None,
        "device_name": device.name if device else None, "device_kind": device.kind if device else None,
        "dtype": cfg.dtype, "phase": cfg.phase, "status": rec.status, "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len, "new_tokens": cfg.new_tokens, "attn_implementation": cfg.attn_implementation,
        "compile": cfg.compile, "static_cache": cfg.static_cache,
        "activation_checkpointing": cfg.activation_checkpointing,
        "num_hidden_layers": model.num_hidden_layers,   # of the full model, which the time refers to
        "layer_scale": model.layer_scale, "time_scale": model.time_scale,
        "peak_memory_bytes": rec.memory.peak_bytes, "mean_power_w": rec.telemetry.mean_power_w,
        "weight_bytes": float(model.params_total * BYTES_PER_ELEMENT[cfg.dtype]),
        "parallel": cfg.parallel, "world_size": cfg.world_size,
    }
    row.update(_distributed(rec, run))
    devices = cfg.world_size  # utilisation per device: the job's work over its devices' peaks
    row["hardware"] = hardware_key(row["hardware_id"], row["device_name"])
    reasons = list(rec.reasons)
    warnings = ["dirty_build"] if run is not None and run.environment.git_dirty else []
    row.update(_peaks(run, cfg.dtype, sheet))
    ops = work.ops
    if ops is not None:
        row.update(aten_ops_per_step=ops.aten_ops_per_step, aten_op_counts=dict(ops.aten_op_counts) or None,
                   cuda_kernels_per_step=ops.cuda_kernels_per_step)
    if rec.status in ("ok", "invalid"):
        scale = model.time_scale
        rounds = rec.timing.rounds
        stats, verdict = summarize_rounds([r.samples_s for r in rounds])
        stored = rec.timing.validity
        if not stored.valid and not stored.reasons:
            reasons.append("timing_invalid")
        _add(reasons, [*stored.reasons, *verdict.reasons])
        for r in rounds:
            _add(reasons, r.validity.reasons)
        noise_words = ("noisy", "very_noisy") if len(rounds) > 1 else ()  # between rounds: the verdict's
        _add(warnings, [w for w in stored.warnings if w not in noise_words])
        _add(warnings, verdict.warnings)
        step = stats["step_s"] * scale if stats["step_s"] is not None else None
        tokens = work.tokens_per_step
        n_samples = sum(len(r.samples_s) for r in rounds)
        first = rounds[0].first_call_s if rounds else None
        row.update(step_time_s=step, step_time_spread=stats["spread"],
                   round_means_s=[m * scale for m in stats["round_means_s"]], n_rounds=len(rounds),
                   n_samples=n_samples, tokens_per_step=tokens, tokens_per_s=_ratio(tokens, step),
                   first_call_s=first * scale if first is not None else None)
        full = work.full_model
        for c in CONVENTIONS:
            flops = full.flops_per_step.get(c)
            row[f"flops_per_step_{c}"] = flops
            row[f"achieved_flops_per_s_{c}"] = _ratio(flops, step)
            row[f"mfu_{c}"] = _utilization(flops, step, _times(row["peak_flops_per_s"], devices))
            row[f"mfu_{c}_vs_ceiling"] = _utilization(flops, step, _times(row["ceiling_flops_per_s"], devices))
        row["bytes_per_step"] = full.bytes_per_step if cfg.phase in ("decode", GENERATE) else None
        moved = row["bytes_per_step"] if cfg.phase == "decode" else None   # bandwidth use: decode steps only
        row["bytes_per_s"] = _ratio(moved, step)
        row["bandwidth_util"] = _utilization(moved, step, _times(row["peak_bytes_per_s"], devices))
        row["bandwidth_util_vs_ceiling"] = _utilization(moved, step, _times(row["ceiling_bytes_per_s"], devices))
        if cfg.phase == GENERATE:
            _add(reasons, _generate_problems(rounds, cfg.new_tokens))
            for name, key in (("ttft", "ttft_samples_s"), ("tpot", "tpot_samples_s")):
                pooled = [s for r in rounds for s in (getattr(r, key) or [])]
                median, p90 = median_p90(pooled)
                row[f"{name}_s"] = median * scale if median is not None else None
                row[f"{name}_p90_s"] = p90 * scale if p90 is not None else None
        energy, window = rec.telemetry.energy_j, rec.telemetry.window_s
        if energy is not None and n_samples and window is not None and window >= MIN_ENERGY_WINDOW_S:
            row["energy_j_per_token"] = energy / (tokens * n_samples) * scale
        timing = rec.timing
        row.update(device_step_s=timing.device_step_s * scale if timing.device_step_s is not None else None,
                   device_busy_fraction=timing.device_busy_fraction, launch_bound=timing.launch_bound,
                   power_capped_fraction=rec.telemetry.power_capped_fraction)
        if step is None or not step > 0:
            reasons.append("no_step_time")
        for column in GATED:
            if column == "bandwidth_util" and cfg.phase != "decode":
                continue
            value = row.get(column)
            if value is not None and utilization_problem(value):
                reasons.append(f"{column}_out_of_range ({value:.3g})")
        if rec.status == "ok" and reasons:
            row["status"] = "invalid"
    row["reason"] = "; ".join(reasons) or None
    row["warnings"] = "; ".join(warnings) or None
    row["valid"] = row["status"] == "ok"
    return row


def _times(value: float | None, n: int) -> float | None:
    return value * n if value is not None else None


def _largest_busbw(run: Run | None, op: str) -> float | None:
    """The bus bandwidth the run measured for ``op`` at its largest size (None: not measured)."""
    inter = run.distributed.interconnect if run is not None and run.distributed is not None else None
    rows = [c for c in (inter.collectives if inter is not None else []) if c.op == op]
    return max(rows, key=lambda c: c.size_bytes).busbw_bytes_per_s if rows else None


def _distributed(rec: Record, run: Run | None) -> dict:
    """The distributed columns: the world, the slowest rank and how far the others were from it, the bytes one
    step's collectives moved (counted), and the interconnect's measured bus bandwidth."""
    d = rec.distributed
    out: dict[str, Any] = {"nnodes": d.nnodes if d is not None else 1}
    if d is None:
        return out
    steps = [r.step_s for r in d.ranks if r.step_s is not None]
    out.update(slowest_rank=d.slowest_rank,
               rank_imbalance=(max(steps) / min(steps) - 1.0) if steps and min(steps) > 0 else None,
               comm_bytes_per_step=float(sum(c.bytes for c in d.comm_counted.values())) if d.comm_counted else None,
               allreduce_busbw_bytes_per_s=_largest_busbw(run, "all_reduce"),
               allgather_busbw_bytes_per_s=_largest_busbw(run, "all_gather"))
    return out


# what makes a distributed row and its one-device baseline the same measurement but for the devices
_SCALING_KEY = ("model", "hardware", "dtype", "phase", "batch_size", "seq_len", "new_tokens", "attn_implementation",
                "compile", "static_cache", "activation_checkpointing", "layer_scale")


def _scaling(rows: list[dict]) -> None:
    """Each distributed row's scaling efficiency: its tokens/s over world_size x the tokens/s of the same model,
    shape and per-device batch on one device (ddp, fsdp: ideal is the same step for world_size times the tokens;
    tp: the same tokens in 1/world_size of the time). The baseline from the same run is preferred, else the newest
    valid one loaded, labelled with its run."""
    alone: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["world_size"] == 1 and r["valid"] and r.get("tokens_per_s"):
            alone.setdefault(tuple(r[k] for k in _SCALING_KEY), []).append(r)
    for r in rows:
        if r["world_size"] == 1 or not r.get("tokens_per_s"):
            continue
        found = alone.get(tuple(r[k] for k in _SCALING_KEY), [])
        same = [b for b in found if b["run_id"] == r["run_id"]]
        base = same[0] if same else max(found, key=lambda b: b["created_utc"] or "", default=None)
        if base is not None:
            r["scaling_efficiency"] = r["tokens_per_s"] / (r["world_size"] * base["tokens_per_s"])
            r["scaling_baseline"] = "same run" if same else f"run {base['run_id']}"


def _generate_problems(rounds, new_tokens: int | None) -> list[str]:
    """A generate round must keep one TTFT per timed call and new_tokens - 1 steps per call."""
    out = []
    for r in rounds:
        if r.ttft_samples_s is None or r.tpot_samples_s is None:
            out.append("generate_samples_missing")
        elif (len(r.ttft_samples_s) != len(r.samples_s)
              or len(r.tpot_samples_s) != len(r.samples_s) * ((new_tokens or 0) - 1)):
            out.append("generate_samples_mismatch")
    return out


def _utilization(work: float | None, step: float | None, peak: float | None) -> float | None:
    if work is None or step is None or peak is None or not step > 0 or not peak > 0:
        return None
    return achieved_utilization(work, step, peak)


def _run_meta(run_dir: Path, problems: list[str], strict: bool) -> Run | None:
    path = run_dir / "run.json"
    try:
        if not path.is_file():
            raise UserError(f"{path}: missing run.json; device and ceilings unknown (no MFU)")
        return read_run(path)
    except UserError as exc:
        if strict:
            raise
        problems.append(str(exc))
        return None


@dataclass
class Results:
    """Runs loaded once: the tidy ``frame`` (one row per record, columns of `columns()`), the ``problems``
    ("<file>: <reason>" for each file that could not be used), the ``runs`` by run id (their run.json) and
    the ``paths`` they were loaded from."""

    frame: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)

    def require_rows(self) -> pd.DataFrame:
        """The frame, or UserError 'no results in <paths>' naming the first unreadable file (calibrate,
        compare and report need rows; listing them does not)."""
        if len(self.frame):
            return self.frame
        where = ", ".join(str(p) for p in self.paths)
        first = f" ({len(self.problems)} unreadable file(s); first: {self.problems[0]})" if self.problems else ""
        raise UserError(f"no results in {where}{first}")


def load_results(paths, *, strict: bool = False) -> Results:
    """Load run folders, folders of runs (``llmecon-out/`` finds its ``runs/``), or several of either.

    Every record becomes one row of ``Results.frame`` (an empty frame when there is none); a file that
    cannot be used (corrupted, truncated, newer schema, a field of the wrong type) becomes a line in
    ``Results.problems`` and the rest still loads, unless strict=True, which raises UserError on the first
    problem. UserError if a path does not exist.

    >>> res = load_results("results/")                                   # doctest: +SKIP
    >>> res.frame[["model", "phase", "batch_size", "tokens_per_s", "mfu_executed"]]   # doctest: +SKIP
    """
    rows: list[dict] = []
    problems: list[str] = []
    runs: dict[str, Run] = {}
    sheet = _Sheet()
    folders = existing_folders(paths)
    for target in folders:
        for run_dir in find_runs(target):
            run = _run_meta(run_dir, problems, strict)
            if run is not None:
                runs[run.run_id] = run
            for path in record_files(run_dir):
                try:
                    row = _row(read_record(path), run, sheet)
                except UserError as exc:
                    if strict:
                        raise
                    problems.append(str(exc))
                    continue
                row["path"] = str(path)
                rows.append(row)
    _scaling(rows)
    return Results(_typed(pd.DataFrame.from_records(rows, columns=columns())), problems, runs, folders)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if column in _INT:
            frame[column] = frame[column].astype("Int64")
        elif column in _BOOL:
            frame[column] = frame[column].astype("boolean")
        elif column == "valid":
            frame[column] = frame[column].astype(bool)
        elif column in _TEXT:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif column in _OBJECT:
            frame[column] = frame[column].astype(object)
        else:
            frame[column] = frame[column].astype(float)
    return frame
