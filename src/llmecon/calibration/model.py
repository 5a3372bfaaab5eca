"""The time model that calibration fits and applies: one step = compute + memory + overhead.

    t = F / (P · η_c)  +  B / (W · η_m)  +  t0  +  L · τ

F is the step's FLOPs under the calibration's FLOP convention (``executed`` by default: what the
kernels ran, so η_c is the share of the reference peak the kernels reached), B the bytes the step
reads (decode: active weights + KV cache), P and W the reference peaks (the datasheet dense peak for
the dtype and the datasheet bandwidth when the device is in the sheet, else the ceilings measured on
the device itself, recorded as such), and t0 + L·τ the per-step time that does not scale with the work:
Python, kernel launches, synchronisation, small ops. L is the number of decoder layers of the model the time
refers to (the full model, also when it was measured with ``--layers k`` and extrapolated) and τ the
overhead each layer adds: an eager forward launches the same handful of small kernels (norms, rotary,
residual adds, the attention's reshapes) in every layer whatever the batch, so its launch overhead grows
with depth. A single t0 per (hardware, dtype, phase) cannot carry that from a 2-layer model to a 32-layer
one: fitted on models of one depth it is right for that depth only, and fitted on several it pushes the
depth-dependent part into a false η (docs/measuring.md §12). τ is fitted only when the rows hold at least
two depths, and is absent (None, read as 0) otherwise.

Why a sum and not the roofline's ``max(compute, memory) + t0``:
- it is linear in (1/η_c, 1/η_m, t0, τ), so the fit (with η <= 1, t0, τ >= 0) is a bounded least-squares
  problem with one global optimum, solved exactly by enumerating the (at most fifteen) active sets —
  numpy only, no starting point, no local minima, and stable with the handful of rows a sweep gives;
- it is the no-overlap bound: a step that is far from the ridge point is dominated by one term and
  the sum equals the max within a few percent; near the ridge the sum over-predicts by up to 2x
  while real hardware overlaps some memory traffic with compute. The fitted η's absorb part of that
  (they are effective efficiencies, not kernel efficiencies), and the held-out error shows the rest.
The *regime* of a workload is the term that dominates its predicted time: "compute-bound",
"memory-bound" or "overhead-bound".

Limits, in plain words: one η per (hardware, dtype, phase) — kernels whose efficiency changes with
shape (small GEMMs, attention at long contexts) are averaged over the measured range; outside that
range the prediction is an extrapolation (``predict_detail`` says so); the memory term is only as good
as the byte count (weights + KV cache, activations ignored); multi-device communication is not
modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmecon.errors import UserError, require_count

REGIMES = ("compute-bound", "memory-bound", "overhead-bound")
TERMS = ("compute", "memory", "overhead")


@dataclass(frozen=True)
class StepModel:
    """Fitted parameters of one (hardware, dtype, phase). η is None when its term is not in the model, τ
    (``tau_s_per_layer``, seconds of overhead per decoder layer) None when the fit had one depth only."""

    eta_compute: float | None
    eta_memory: float | None
    t0_s: float
    peak_flops_per_s: float
    peak_bytes_per_s: float | None
    tau_s_per_layer: float | None = None

    def __post_init__(self):
        if self.eta_compute is None and self.eta_memory is None:
            raise UserError("a step model needs a compute or a memory term")
        for name in ("eta_compute", "eta_memory"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise UserError(f"{name} must be a finite number > 0, got {v!r}")
        if not (math.isfinite(self.t0_s) and self.t0_s >= 0):
            raise UserError(f"t0_s must be a finite number >= 0, got {self.t0_s!r}")
        tau = self.tau_s_per_layer
        if tau is not None and not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 0):
            raise UserError(f"tau_s_per_layer must be a finite number >= 0, got {tau!r}")
        if not (math.isfinite(self.peak_flops_per_s) and self.peak_flops_per_s > 0):
            raise UserError(f"peak_flops_per_s must be > 0, got {self.peak_flops_per_s!r}")
        if self.eta_memory is not None and not (
            self.peak_bytes_per_s is not None and math.isfinite(self.peak_bytes_per_s) and self.peak_bytes_per_s > 0
        ):
            raise UserError(f"peak_bytes_per_s must be > 0 when there is a memory term, got {self.peak_bytes_per_s!r}")

    def overhead_s(self, layers: int | None = None) -> float:
        """t0 + L·τ: the overhead of one step of a model with ``layers`` decoder layers (required when τ is
        in the model; ignored when it is not)."""
        if not self.tau_s_per_layer:
            return self.t0_s
        if layers is None:
            raise UserError("this calibration has a per-layer overhead: the model's number of decoder layers "
                            "is required")
        return self.t0_s + require_count("the number of layers", layers) * self.tau_s_per_layer

    def terms_s(self, flops_per_step: float, bytes_per_step: float | None,
                layers: int | None = None) -> dict[str, float]:
        """Seconds of each term for one step of a model with ``layers`` decoder layers; "overhead" is t0 + L·τ."""
        compute = flops_per_step / (self.peak_flops_per_s * self.eta_compute) if self.eta_compute else 0.0
        if self.eta_memory is None:
            memory = 0.0
        else:
            if bytes_per_step is None or not math.isfinite(bytes_per_step):
                raise UserError("this calibration has a memory term: bytes_per_step is required")
            memory = bytes_per_step / (self.peak_bytes_per_s * self.eta_memory)
        return {"compute": compute, "memory": memory, "overhead": self.overhead_s(layers)}

    def step_time_s(self, flops_per_step: float, bytes_per_step: float | None,
                    layers: int | None = None) -> tuple[float, str]:
        terms = self.terms_s(flops_per_step, bytes_per_step, layers)
        return sum(terms.values()), regime_of(terms)

    def boundaries(self, layers: int | None = None) -> dict[str, float | None]:
        """Where the regimes meet: the effective ridge point (FLOP per byte at which compute time equals
        memory time), and the step FLOPs / bytes at which compute / memory time equals the overhead. With a
        per-layer overhead those two depend on the depth: None unless ``layers`` is given."""
        pc = float(self.peak_flops_per_s * self.eta_compute) if self.eta_compute else None
        pm = float(self.peak_bytes_per_s * self.eta_memory) if self.eta_memory else None
        overhead = None if self.tau_s_per_layer and layers is None else self.overhead_s(layers)
        return {
            "ridge_flops_per_byte": pc / pm if pc and pm else None,
            "compute_equals_overhead_at_flops": pc * overhead if pc and overhead is not None else None,
            "memory_equals_overhead_at_bytes": pm * overhead if pm and overhead is not None else None,
        }


def regime_of(terms_s: dict[str, float]) -> str:
    """The regime named by the largest term (ties go to compute, then memory)."""
    best = max(TERMS, key=lambda k: (terms_s[k], -TERMS.index(k)))
    return f"{best}-bound"
