"""`llmecon plan serve`: the cheapest concurrency that meets latency targets on one accelerator, and what it costs.

The two times a server spends come from a calibration (measured, `llmecon calibrate`) or from the published
reference for the accelerator (calibration.reference): the prefill of one request (batch 1, its prompt) and one
decode step at batch C and the mean context the steps attend. The steady-state model of continuous batching
(costmodel.serving) turns them into requests/s, TTFT, TPOT and $, for every concurrency from 1 to the most
whose KV caches fit beside the weights. The cheapest per request of those meeting the targets is the plan, and the
constraint that stops it going further is named: TTFT, TPOT, memory, or the --max-concurrency cap. Feasibility is monotone in the concurrency and the cost per
request falls with it, so the plan is the largest concurrency that meets the targets (`_largest_ok`).

Tensor parallelism (``tensor_parallel`` T > 1): a replica is T accelerators. A step's compute and memory terms (one
device's prediction) divide by T, since the heads, MLP columns, weights and KV cache are split T ways as vLLM and
TensorRT-LLM split them; its overhead (t0 + L·τ) does not; each layer adds two activation all-reduces of
batch x tokens x hidden (costmodel.communication) at the link's bus bandwidth (NVLink within a node, from the
sheet, or ``busbw``), exposed but for the overlap a calibration fitted for tp. The memory check is per device
(weights and KV cache / T) and the price per replica is T accelerator-hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmecon.calibration.apply import predict_workload
from llmecon.costmodel import communication as cc
from llmecon.costmodel import memory as cm
from llmecon.costmodel import serving as sv
from llmecon.costmodel.hardware import get_accelerator
from llmecon.costmodel.footprint import HEADROOM_FRACTION, usable_bytes
from llmecon.costmodel.lengths import Lengths, fixed, read_lengths
from llmecon.errors import UserError
from llmecon.estimate import inputs
from llmecon.stats import quantile
from llmecon.units import parse_count, parse_duration, parse_whole, parse_whole_list

DEFAULT_MAX_CONCURRENCY = 4096   # the scan's end when the accelerator's memory is unknown and no cap is given
TTFT_QUANTILE = 0.9
MODEL_NOTE = ("Steady state of continuous batching at C requests in flight (closed loop, prefill-first, no "
              "queue): λ = C/(C·t_p + (O−1)·t_d), TPOT = t_d + C·t_p/(O−1), TTFT = t_p + t_d/2 "
              "(docs/serving.md).")


@dataclass(frozen=True)
class _Phase:
    """How one phase's step is predicted: a calibration (with one fit for it), whether it is transferred, the dtype,
    and what to say of it."""

    calibration: object
    transfer: bool
    dtype: str
    label: str
    sources: tuple[str, ...] = ()

    tp: "_TensorParallel | None" = None

    def step(self, shape, phase: str, batch: int, length: int, hardware: str) -> dict:
        pred = predict_workload(self.calibration, shape, phase, batch, length, hardware=hardware, dtype=self.dtype,
                                transfer=self.transfer)
        return pred if self.tp is None else self.tp.spread(pred, shape, phase, batch, length, self.dtype)


@dataclass(frozen=True)
class _TensorParallel:
    """One replica over ``degree`` accelerators: the step's work split, its overhead kept, the all-reduces added."""

    degree: int
    busbw_bytes_per_s: float
    busbw_source: str
    overlap: float
    overlap_source: str

    def spread(self, pred: dict, shape, phase: str, batch: int, length: int, dtype: str) -> dict:
        terms = pred["terms_s"]
        tokens = 1 if phase == "decode" else length
        comm = cc.comm_time_s(cc.tp_step_bytes(shape, batch, tokens, dtype, phase), self.degree,
                              self.busbw_bytes_per_s)
        work = (terms["compute"] + terms["memory"]) / self.degree
        exposed = (1.0 - self.overlap) * comm
        step = work + terms["overhead"] + exposed
        return {**pred, "step_time_s": step, "one_device_step_s": pred["step_time_s"], "tp_comm_s": exposed,
                "regime": pred["regime"] if exposed <= work + terms["overhead"] else "communication-bound"}


def _tensor_parallel(degree, shape, accelerator, calib, hardware: str, busbw) -> _TensorParallel | None:
    t = parse_whole("--tensor-parallel", degree)
    if t == 1:
        return None
    cc.check_tp_degree(shape, t)
    if busbw is not None:
        bw, source = parse_count("--busbw", busbw) * 1e9, "--busbw (measured)"
    else:
        if accelerator is None or accelerator.gpus_per_node is None:
            raise UserError(f"--tensor-parallel {t}: the hardware sheet has no link bandwidth for {hardware}; give "
                            "--busbw GB/s (a measured all-reduce bus bandwidth)")
        if t > accelerator.gpus_per_node:
            raise UserError(f"--tensor-parallel {t}: a tensor-parallel group spans one node here "
                            f"({accelerator.gpus_per_node} GPUs on {hardware}); beyond it give --busbw")
        bw, link = cc.link_bus_bytes_per_s(t, 1, accelerator.gpus_per_node, accelerator.nvlink_bytes_per_s,
                                           accelerator.network_bytes_per_s)
        source = f"datasheet {link} (half the bidirectional total)"
    fit = calib.communication_for(hardware, "tp") if calib is not None else None
    return _TensorParallel(t, bw, source, fit.overlap if fit else 0.0,
                           f"calibrated (world sizes {fit.world_sizes})" if fit else "0: not measured")


def _with_tp(phases: dict[str, _Phase], tp: _TensorParallel | None) -> dict[str, _Phase]:
    if tp is None:
        return phases
    return {k: _Phase(p.calibration, p.transfer, p.dtype, f"{p.label}; tensor parallel over {tp.degree}", p.sources,
                      tp) for k, p in phases.items()}


def _phases(calib, hardware, dtype, transfer, engine) -> tuple[str, dict[str, _Phase], str]:
    """(hardware, {"prefill": _Phase, "decode": _Phase}, basis)."""
    if calib is None:
        out = {}
        for phase in ("prefill", "decode"):
            try:
                ref = inputs.published(hardware, phase, dtype, engine)
            except UserError as exc:
                raise UserError(f"{exc} (a serving plan needs both a prefill and a decode step time; "
                                "`llmecon calibrate` runs with both phases give them)") from None
            out[phase] = _Phase(ref.calibration, ref.transferred, ref.dtype, ref.describe(), tuple(ref.fit.sources))
        return hardware, out, "published"
    out = {}
    for phase in ("prefill", "decode"):
        hw, _ = inputs.calibrated_target(calib, hardware, phase)
        d, _ = inputs.dtype(dtype, calib, hw, phase, transfer)
        out[phase] = _Phase(calib, transfer, d, f"calibrated ({phase})")
        hardware = hw
    return hardware, out, "calibrated"


def _prefill_times(shape, lengths: Lengths, prefill: _Phase, hardware: str) -> tuple[list[float], dict]:
    """Each request's prefill seconds (batch 1, its prompt), and the prediction of the mean prompt (for labels)."""
    by_length = {p: prefill.step(shape, "prefill", 1, p, hardware) for p in sorted(set(lengths.prompt_tokens))}
    times = [by_length[p]["step_time_s"] for p in lengths.prompt_tokens]
    typical = by_length[min(by_length, key=lambda p: abs(p - lengths.mean_prompt))]
    return times, typical


def plan_serve(model, *, hardware: str | None = None, calibration=None, engine: str | None = None,
               transfer: bool = False, dtype: str | None = None, prompt_tokens=None, output_tokens=None,
               lengths=None, ttft_slo=None, tpot_slo=None, price: str | None = None, usd_per_hour=None,
               num_accelerators=None, concurrency=None, max_concurrency=None, memory=None,
               check_memory: bool = True, tensor_parallel=1, busbw=None) -> dict:
    """The serving plan, as `llmecon plan serve --json`: a row per concurrency shown, the plan (cheapest per request
    meeting the targets and fitting in memory, or None), the constraint that binds it, and the basis.
    ``check_memory=False`` leaves the memory out (the article's "one accelerator doing all the work").
    ``tensor_parallel`` T: a replica is T accelerators (module docstring); ``num_accelerators`` K (default T) is
    K / T replicas. ``busbw``: the all-reduce bus bandwidth in GB/s, measured, instead of the sheet's link.

    The tiny model on the CPU run committed under results/, at 3 ms per output token:

    >>> from llmecon.calibration.fit import calibrate_results
    >>> from llmecon.records.load import load_results
    >>> calib = calibrate_results(load_results("results/20261129T225350Z-f460904a"))
    >>> p = plan_serve("tiny", calibration=calib, prompt_tokens=128, output_tokens=32, usd_per_hour=0.1,
    ...                tpot_slo="3ms", memory="8G")
    >>> p["binding"], p["plan"]["tpot_s"] <= 0.003, p["plan"]["concurrency"] > 1
    ('tpot', True, True)
    """
    shape = inputs.model_shape(model)
    calib = inputs.calibration(calibration)
    inputs.check_basis(calib, None, transfer, hardware, engine)
    if lengths is not None:
        if prompt_tokens is not None or output_tokens is not None:
            raise UserError("give --lengths FILE or --prompt-tokens/--output-tokens, not both")
        reqs = read_lengths(lengths)
    else:
        if prompt_tokens is None or output_tokens is None:
            raise UserError("give --prompt-tokens P and --output-tokens O (or --lengths FILE)")
        reqs = fixed(parse_whole("--prompt-tokens", prompt_tokens), parse_whole("--output-tokens", output_tokens))
    slo = {"ttft_s": parse_duration("--ttft-slo", ttft_slo) if ttft_slo is not None else None,
           "tpot_s": parse_duration("--tpot-slo", tpot_slo) if tpot_slo is not None else None}
    hardware, phases, basis = _phases(calib, hardware, dtype, transfer, engine)
    accelerator = inputs.calibrated_target(calib, hardware, "decode")[1] if calib is not None else \
        get_accelerator(hardware)
    tp = _tensor_parallel(tensor_parallel, shape, accelerator, calib, hardware, busbw)
    width = tp.degree if tp else 1   # accelerators per replica
    k = parse_whole("--num-accelerators", num_accelerators) if num_accelerators is not None else width
    if k % width:
        raise UserError(f"--num-accelerators {k} is not a whole number of {width}-accelerator replicas")
    phases = _with_tp(phases, tp)
    usd_hour, price_info = inputs.price(price, usd_per_hour, accelerator, hardware)
    kv_dtype = phases["decode"].dtype
    weights = cm.weight_bytes(shape, kv_dtype) / width       # per device: split T ways
    kv_per_token = cm.kv_cache_bytes_per_token(shape, kv_dtype) / width
    memory_bytes = parse_count("--memory", memory) if memory is not None else (
        float(accelerator.memory_bytes) if accelerator is not None and check_memory else None)
    usable = usable_bytes(memory_bytes) if memory_bytes is not None else None
    cap, cap_by = _cap(usable, weights, kv_per_token, reqs, max_concurrency, shape.name)

    prefill_s, prefill_pred = _prefill_times(shape, reqs, phases["prefill"], hardware)
    decode_pred = phases["decode"].step(shape, "decode", 1, max(1, round(reqs.decode_context())), hardware)
    mean_prefill = sum(prefill_s) / len(prefill_s)
    context = max(1, round(reqs.decode_context()))

    def row(c: int) -> dict:
        step = phases["decode"].step(shape, "decode", c, context, hardware)
        state = sv.steady_state(mean_prefill, step["step_time_s"], c, reqs.mean_prompt, reqs.mean_output)
        ttft = sorted(t + step["step_time_s"] / 2 for t in prefill_s)
        kv = sv.kv_cache_bytes(kv_per_token, c, reqs.mean_total)
        out = {"concurrency": c, "decode_step_s": step["step_time_s"], "decode_regime": step["regime"],
               "decode_tp_comm_s": step.get("tp_comm_s"),
               "ttft_p90_s": quantile(ttft, TTFT_QUANTILE), **state,
               "output_tokens_per_s": state["output_tokens_per_s"] / width,   # per accelerator
               **sv.serving_cost(state, usd_hour * width, reqs.mean_prompt, reqs.mean_output),
               "requests_per_s_total": state["requests_per_s"] * (k // width), "kv_cache_bytes": kv,
               "fits": None if usable is None else weights + kv <= usable}
        out["meets"] = {"ttft": slo["ttft_s"] is None or out["ttft_p90_s"] <= slo["ttft_s"],
                        "tpot": slo["tpot_s"] is None or out["tpot_s"] <= slo["tpot_s"],
                        "memory": out["fits"] is not False}
        out["ok"] = all(out["meets"].values())
        return out

    if concurrency is not None:
        wanted = parse_whole_list("--concurrency", concurrency)
        too_big = [c for c in wanted if c > cap and cap_by == "memory"]
        if too_big:
            raise UserError(f"--concurrency {too_big[0]}: its KV cache does not fit beside the weights "
                            f"(at most {cap} requests of {reqs.mean_total:.0f} tokens fit in {_gib(usable)})")
        rows = [row(c) for c in sorted(set(wanted))]
        best = min((r for r in rows if r["ok"]), key=lambda r: r["usd_per_request"], default=None)
        binding = None
    else:
        best = _largest_ok(row, cap)
        binding = _binding(best, row, cap, cap_by)
        shown = {1 << i for i in range(int(math.log2(cap)) + 1)} | {cap} | ({best["concurrency"]} if best else set())
        rows = [best if best and c == best["concurrency"] else row(c) for c in sorted(shown)]
    for r in rows:
        r["plan"] = best is not None and r["concurrency"] == best["concurrency"]
    return {
        "basis": basis, "model": shape.name, "hardware_id": hardware, "dtype": phases["decode"].dtype,
        "num_accelerators": k, "tensor_parallel": None if tp is None else {
            "degree": tp.degree, "busbw_bytes_per_s": tp.busbw_bytes_per_s, "busbw_source": tp.busbw_source,
            "overlap": tp.overlap, "overlap_source": tp.overlap_source}, "lengths": {"source": reqs.source, "requests": reqs.n_requests,
                                           "mean_prompt_tokens": reqs.mean_prompt, "mean_output_tokens": reqs.mean_output,
                                           "decode_context": context},
        "slo": slo, "ttft_quantile": TTFT_QUANTILE, "usd_per_accelerator_hour": usd_hour, "price": price_info,
        "memory_bytes": memory_bytes, "usable_bytes": usable, "headroom_fraction": HEADROOM_FRACTION,
        "weight_bytes": weights, "kv_cache_bytes_per_token": kv_per_token, "max_concurrency": cap,
        "max_concurrency_by": cap_by,
        "prefill": {"label": phases["prefill"].label if basis == "published" else prefill_pred["label"],
                    "mean_s": mean_prefill, "regime": prefill_pred["regime"],
                    "sources": list(phases["prefill"].sources), "transferred": prefill_pred["transferred"],
                    "extrapolated": prefill_pred["extrapolated"]},
        "decode": {"label": phases["decode"].label if basis == "published" else decode_pred["label"],
                   "sources": list(phases["decode"].sources),
                   "transferred": decode_pred["transferred"],
                   "heldout_median_rel_error": decode_pred["heldout_median_rel_error"],
                   "heldout_by_model_median_rel_error": decode_pred["heldout_by_model_median_rel_error"]},
        "rows": rows, "plan": best, "binding": binding, "notes": _notes(basis, slo, usable, best, binding, k, tp),
    }


def _gib(value) -> str:
    return f"{value / 2**30:.1f} GiB" if value is not None else "unknown memory"


def _cap(usable, weights, kv_per_token, reqs: Lengths, max_concurrency, model: str) -> tuple[int, str]:
    """The scan's end and what sets it: the memory (KV caches at full length beside the weights), --max-concurrency,
    or, with neither known, DEFAULT_MAX_CONCURRENCY."""
    limit = parse_whole("--max-concurrency", max_concurrency) if max_concurrency is not None else None
    if usable is not None:
        by_memory = sv.max_concurrency(usable, weights, kv_per_token, reqs.mean_total)
        if by_memory < 1:
            raise UserError(f"{model}'s weights ({_gib(weights)}) and one request's KV cache do not fit in "
                            f"{_gib(usable)} usable memory; use more accelerators or a smaller dtype")
        if limit is None or by_memory <= limit:
            return by_memory, "memory"
    return (limit, "--max-concurrency") if limit is not None else (DEFAULT_MAX_CONCURRENCY, "scan limit")


def _largest_ok(row, cap: int) -> dict | None:
    """The row of the largest concurrency in [1, cap] that meets every target, or None. TTFT, TPOT and the KV cache
    all grow with C, so the concurrencies that meet them are 1 .. some C*; and the cost per request,
    t_p + (O − 1)·t_d(C)/C, falls as C grows (t_d is affine in C in the step model, concave for a MoE), so C* is also
    the cheapest. Found by doubling, then bisection: O(log cap) predictions."""
    if not row(1)["ok"]:
        return None
    lo, hi = 1, 2
    while hi <= cap and row(hi)["ok"]:
        lo, hi = hi, hi * 2
    hi = min(hi, cap + 1)   # row(lo) meets the targets; hi does not, or is past the cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if row(mid)["ok"] else (lo, mid)
    return row(lo)


def _binding(best, row, cap: int, cap_by: str) -> str:
    """What stops the plan at its concurrency: the first target the next concurrency misses, or the cap."""
    if best is None:
        missed = [k for k, ok in row(1)["meets"].items() if not ok]
        return "none meets the targets: at concurrency 1, " + ", ".join(missed) + " already fails"
    c = best["concurrency"]
    if c >= cap:
        return cap_by
    missed = [k for k, ok in row(c + 1)["meets"].items() if not ok]
    return missed[0] if missed else "none: the next concurrency meets the targets too"


def _notes(basis, slo, usable, best, binding, k, tp=None) -> list[str]:
    notes = [MODEL_NOTE]
    if basis == "published":
        notes.append(inputs.PUBLISHED_NOTE)
    if slo["ttft_s"] is not None:
        notes.append(f"The TTFT target is held by the {TTFT_QUANTILE:.0%} quantile of the requests' TTFT.")
    if usable is None:
        notes.append("The accelerator's memory is not known or not checked (--memory): the weights and the KV cache "
                      "are not checked against it.")
    width = tp.degree if tp else 1
    if tp is not None:
        notes.append(f"Tensor parallel over {tp.degree}: one device's compute and memory terms / {tp.degree}, its "
                     "overhead kept, 2 activation all-reduces per layer at "
                     f"{tp.busbw_bytes_per_s / 1e9:.0f} GB/s bus bandwidth ({tp.busbw_source}), overlap "
                     f"{tp.overlap:.0%} ({tp.overlap_source}); memory per device; $ per replica-hour = "
                     f"{tp.degree} accelerator-hours. The split of the work is assumed ideal: measure it with "
                     "`llmecon bench --parallel tp`.")
    if k > width:
        notes.append(f"{k} accelerators serve as {k // width} independent replicas (data parallel): requests/s scale "
                     f"by {k // width}, cost per request does not.")
    if best is None:
        notes.append(f"No concurrency meets the targets ({binding}).")
    return notes
