"""One configuration's rounds merged into its record: timing, telemetry, memory and operator counts.

The worker measures a model's configurations round-robin (round 1 of each, then round 2 of each...), so a
burst from a neighbour costs one round of every configuration rather than every round of one. Each round is
a `workloads.run_workload` output; `combine` keeps every round's raw samples and computes the estimate
(`stats.summarize_rounds`: the median over rounds of each round's mean, and their spread as the noise).

On a GPU it also sets the device's side of the step: ``device_step_s`` (CUDA events around each call, the same
statistic as the host's), the kernels' busy time of one profiled step (``ops``), their ratio to the host step
``device_busy_fraction``, and ``launch_bound`` when the GPU worked less than LAUNCH_BOUND_BUSY_FRACTION of the
step: the step time then measures the host launching kernels (HF eager decode: hundreds of small kernels a
step), not the device, and does not scale with bytes or FLOPs. Energy per token is given only from
``schema.MIN_ENERGY_WINDOW_S`` of telemetry window over all rounds (NVML's power readings cover part of each
100 ms period); shorter, it is null and ``energy_reason`` says why.
"""

from __future__ import annotations

import statistics

from llmecon.records.schema import MIN_ENERGY_WINDOW_S, Knobs
from llmecon.stats import ROUND_STATISTIC, summarize_rounds

LAUNCH_BOUND_BUSY_FRACTION = 0.5  # GPU busy under half the step: the rest it waited for the host


def _sum(values):
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(values)


def _first(values):
    return next((v for v in values if v is not None), None)


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _telemetry(teles: list[dict]) -> dict:
    """Energy and tokens add up over rounds; power is the window-weighted mean; clocks and temperatures keep
    their extremes; a throttle reason or a busy host in any round is kept."""
    windows = [t.get("window_s") for t in teles]
    powered = [(t["mean_power_w"], w) for t, w in zip(teles, windows) if t.get("mean_power_w") is not None and w]
    capped = [(t["power_capped_fraction"], w) for t, w in zip(teles, windows)
              if t.get("power_capped_fraction") is not None and w]
    out = {
        "energy_j": _sum(t.get("energy_j") for t in teles),
        "mean_power_w": sum(p * w for p, w in powered) / sum(w for _, w in powered) if powered else None,
        "reason": _first(t.get("reason") for t in teles),
        "max_temp_c": _max(t.get("max_temp_c") for t in teles),
        "sm_clock_mhz_median": (statistics.median(m) if (m := [t["sm_clock_mhz_median"] for t in teles
                                                                if t.get("sm_clock_mhz_median") is not None])
                                else None),
        "sm_clock_mhz_min": min((t["sm_clock_mhz_min"] for t in teles if t.get("sm_clock_mhz_min") is not None),
                                default=None),
        "throttle_reasons": sorted({r for t in teles for r in t.get("throttle_reasons") or []}),
        "power_capped_fraction": sum(f * w for f, w in capped) / sum(w for _, w in capped) if capped else None,
        "gpu_processes_max": _max(t.get("gpu_processes_max") for t in teles),
        "excluded_s": _sum(t.get("excluded_s") for t in teles),
        "n_samples": sum(t.get("n_samples") or 0 for t in teles),
        "window_s": _sum(windows),
        "window_energy_j": _sum(t.get("window_energy_j") for t in teles),
        "energy_source": _first(t.get("energy_source") for t in teles),
        "energy_method": _first(t.get("energy_method") for t in teles),
        "tokens_in_samples": _sum(t.get("tokens_in_samples") for t in teles),
    }
    out["energy_j_per_token"] = None
    if out["energy_j"] is not None and out["tokens_in_samples"]:
        if (out["window_s"] or 0.0) >= MIN_ENERGY_WINDOW_S:
            out["energy_j_per_token"] = out["energy_j"] / out["tokens_in_samples"]
        else:
            out["energy_reason"] = (f"telemetry window {out['window_s'] or 0:.2f} s over all rounds is under "
                                    f"{MIN_ENERGY_WINDOW_S:g} s: NVML's power readings cover only part of each "
                                    "100 ms, so a shorter window gives no energy per token (raise --min-time)")
    hosts = [t["host_cpu"] for t in teles if t.get("host_cpu")]
    if hosts:
        out["host_cpu"] = {"other_cpu_cores": _max(h.get("other_cpu_cores") for h in hosts),
                           "window_s": _sum(h.get("window_s") for h in hosts),
                           "busy": any(h.get("busy") for h in hosts),
                           "reason": _first(h.get("reason") for h in hosts)}
    return out


def _memory(mems: list[dict]) -> dict:
    return {"peak_bytes": _max(m.get("peak_bytes") for m in mems),
            "peak_reserved_bytes": _max(m.get("peak_reserved_bytes") for m in mems),
            "process_max_rss_bytes": _max(m.get("process_max_rss_bytes") for m in mems),
            "reason": _first(m.get("reason") for m in mems)}


def _device_side(rounds: list[dict], step_s: float | None, ops: dict | None) -> tuple[dict, list[str]]:
    """The timing block's device fields, and the warning ``launch_bound`` when it applies."""
    device = [r.get("device_samples_s") for r in rounds]
    out: dict = {"device_step_s": None, "device_busy_s": None, "device_busy_fraction": None, "launch_bound": None}
    if device and all(d for d in device):
        means = [sum(d) / len(d) for d in device]
        out["device_step_s"] = statistics.median(means)
    busy = (ops or {}).get("cuda_kernel_time_s_per_step")
    if busy is not None and step_s:
        out["device_busy_s"] = busy
        out["device_busy_fraction"] = busy / step_s
        out["launch_bound"] = out["device_busy_fraction"] < LAUNCH_BOUND_BUSY_FRACTION
    warn = [f"launch_bound:gpu_busy_{out['device_busy_fraction']:.0%}_of_step"] if out["launch_bound"] else []
    return out, warn


def combine(outs: list[dict], knobs: Knobs) -> dict:
    """{"timing", "telemetry", "memory", "ops"} of one configuration from its rounds, in the order they ran."""
    rounds = [o["round"] for o in outs]
    stats, verdict = summarize_rounds([r["samples_s"] for r in rounds], min_iters=knobs.min_iters,
                                      min_time_s=knobs.min_time_s)
    reasons = [*verdict.reasons]
    warnings = [*verdict.warnings]
    for r in rounds:  # what a round found beyond its samples (a cache mismatch, a non-finite loss, a busy host)
        reasons += [x for x in r["validity"]["reasons"] if x not in reasons]
        warnings += [x for x in r["validity"]["warnings"] if x not in warnings
                     and not (len(rounds) > 1 and x in ("noisy", "very_noisy"))]
    ops = _first(o.get("ops") for o in outs)
    device, device_warnings = _device_side(rounds, stats["step_s"], ops)
    warnings += device_warnings
    timing = {"rounds": rounds, "step_s": stats["step_s"], "spread": stats["spread"],
              "validity": {"valid": not reasons, "reasons": reasons, "warnings": warnings},
              "statistic": ROUND_STATISTIC, **device, **outs[-1]["timing_extra"]}
    return {"timing": timing, "telemetry": _telemetry([o["telemetry"] for o in outs]),
            "memory": _memory([o["memory"] for o in outs]), "ops": ops}
