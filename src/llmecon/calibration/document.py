"""The calibration: a typed document that is fitted (fit.py), saved, loaded and applied (apply.py).

One ``Fit`` per (hardware, dtype, phase): the step-time model's parameters (model.py), the reference peaks
they are relative to and where those came from, the held-out error, the measured range, and the runs it
came from; ``Refused`` lists the groups that could not be fitted and why. ``provenance`` records the runs,
devices and software versions. The JSON file is this model dumped; ``Calibration.load`` refuses anything
else in one line naming the field.

Schema 2 (llmecon 0.2): as schema 1, with ``refused`` entries holding only what a refusal needs.
Schema 3: a fit may carry a per-layer overhead ``tau_s_per_layer`` (the term ``overhead_per_layer``), the
measured depths ``range.layers``, and a second held-out error ``heldout_by_model`` (leave-one-model-out,
when the fit has two or more models). A calibration fitted from published measurements (calibration.published) says so: ``basis`` "published", its
``engine``, and each fit's ``sources``; run_ids are then the ids of the sheet's points. Files without those fields
are measured ones. An optional ``communication`` list (schema 3, absent in older files, which load unchanged) holds
the overlap fitted from multi-device runs (calibration.communication): per (hardware, parallelism) the share phi
of the communication hidden behind compute, and the world sizes it saw. Schema 1 and 2 files are read as schema 3 files without those: no
per-layer overhead (τ = 0, the overhead is t0 whatever the depth, which is what those files fitted) and
no leave-one-model-out error.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_serializer, model_validator

from llmecon._version import __version__
from llmecon.calibration.model import StepModel
from llmecon.errors import UserError
from llmecon.files import atomic_write_text, dumps, load_json
from llmecon.formats import Strict, parse

SCHEMA_VERSION = 3
KIND = "llmecon-calibration"
MODEL_TEXT = ("step_time_s = F/(P*eta_compute) + B/(W*eta_memory) + t0_s + L*tau_s_per_layer (L: decoder layers); "
              "relative-error non-negative least squares; held-out errors leave-one-shape-out and "
              "leave-one-model-out")
PeakSource = Literal["datasheet", "measured_ceiling"]
Efficiency = Annotated[float, Field(gt=0, le=1)]
FloatSpan = Annotated[list[NonNegativeFloat], Field(min_length=2, max_length=2)]
IntSpan = Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]


class HeldOut(Strict):
    method: str
    median_rel_error: NonNegativeFloat
    max_rel_error: NonNegativeFloat
    n_folds: PositiveInt
    by_fold: dict[str, NonNegativeFloat] | None = None   # leave-one-model-out: each model's median error


class FitRange(Strict):
    """The measured range: a workload outside it is an extrapolation."""

    flops_per_step: FloatSpan
    bytes_per_step: FloatSpan | None = None
    batch_size: IntSpan | None = None
    seq_len: IntSpan | None = None
    layers: IntSpan | None = None     # decoder layers of the fitted models (schema 3)


class Fit(Strict):
    hardware: str                     # the hardware-sheet id, else the name the device reported
    hardware_id: str | None
    device_names: list[str]
    dtype: str
    phase: Literal["prefill", "decode", "train"]
    run_ids: list[str]
    n_rows: PositiveInt
    n_shapes: PositiveInt
    terms: list[Literal["compute", "memory", "overhead", "overhead_per_layer"]]
    eta_compute: Efficiency | None = None
    eta_memory: Efficiency | None = None
    t0_s: NonNegativeFloat
    tau_s_per_layer: NonNegativeFloat | None = None   # seconds of overhead per decoder layer; None: not fitted
    peak_flops_per_s: PositiveFloat
    peak_flops_source: PeakSource
    peak_bytes_per_s: PositiveFloat | None = None
    peak_bytes_source: PeakSource | None = None
    regime_boundaries: dict[str, float | None] = Field(default_factory=dict)
    heldout: HeldOut                       # leave-one-shape-out: decides the refusal
    heldout_by_model: HeldOut | None = None  # leave-one-model-out, with two or more models: reported, warned
    fit_rel_error: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    range: FitRange
    models: list[str]
    forced: bool = False
    warnings: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)   # published fits: the addresses of their points' sources

    @model_validator(mode="after")
    def _terms(self):
        if self.eta_compute is None and self.eta_memory is None:
            raise ValueError("eta_compute and eta_memory are both null")
        if self.eta_memory is not None and self.peak_bytes_per_s is None:
            raise ValueError("a memory term needs peak_bytes_per_s")
        if (self.tau_s_per_layer is not None) != ("overhead_per_layer" in self.terms):
            raise ValueError("tau_s_per_layer and the term overhead_per_layer go together")
        return self

    @property
    def key(self) -> str:
        return f"{self.hardware} {self.dtype} {self.phase}"

    def step_model(self) -> StepModel:
        return StepModel(self.eta_compute, self.eta_memory, self.t0_s, self.peak_flops_per_s,
                         self.peak_bytes_per_s, self.tau_s_per_layer)

    def matches(self, hardware: str) -> bool:
        return hardware in (self.hardware, self.hardware_id)


class CommunicationFit(Strict):
    """t_K = t_1 x w + (1 - overlap) x c_K fitted over the multi-device rows of one (hardware, parallelism)
    (calibration.communication): the overlap and the world sizes and nodes it was measured at."""

    hardware: str
    parallel: Literal["ddp", "fsdp", "tp"]
    overlap: Annotated[float, Field(ge=0, le=1)]
    overlap_unclipped: float
    n_points: PositiveInt
    world_sizes: list[PositiveInt]
    nnodes: list[PositiveInt]
    median_rel_error: NonNegativeFloat
    max_rel_error: NonNegativeFloat

    @property
    def max_world_size(self) -> int:
        return max(self.world_sizes)


class Refused(Strict):
    hardware: str
    hardware_id: str | None = None
    dtype: str
    phase: Literal["prefill", "decode", "train"]
    n_rows: PositiveInt
    n_shapes: PositiveInt
    refused: str
    rows: list[str] = Field(default_factory=list)   # the rows that decided it, or that a fit could not use

    @property
    def key(self) -> str:
        return f"{self.hardware} {self.dtype} {self.phase}"

    def describe(self) -> str:
        """'<key>: <reason>' and the rows behind it, in one line."""
        return f"{self.key}: {self.refused}" + (f" [{'; '.join(self.rows)}]" if self.rows else "")


class Provenance(Strict):
    sources: list[str]
    run_ids: list[str]
    device_names: list[str]
    environments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)   # files under the sources that could not be read


class Calibration(Strict):
    """A fitted step-time model per (hardware, dtype, phase). ``Calibration.load(path)``, ``.save(path)``,
    ``.describe()``; ``llmecon.calibrate(runs)`` makes one."""

    schema_version: Literal[3] = SCHEMA_VERSION
    kind: Literal["llmecon-calibration"] = KIND
    created_utc: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    tool_version: str = __version__
    flop_convention: Literal["article", "non_embedding", "causal", "executed"]
    basis: Literal["measured", "published"] = "measured"   # published: fitted on others' published points
    engine: str | None = None                               # published: the engine whose points these are
    model: str = MODEL_TEXT
    max_heldout_error: PositiveFloat
    provenance: Provenance
    fits: list[Fit] = Field(min_length=1)
    refused: list[Refused] = Field(default_factory=list)
    communication: list[CommunicationFit] = Field(default_factory=list)   # multi-device overlap fits, if any

    def communication_for(self, hardware: str, parallel: str) -> CommunicationFit | None:
        """The overlap fit of this parallelism on this hardware (by sheet id or device name), or None."""
        hws = {hardware} | {f.hardware for f in self.fits if f.matches(hardware)}
        return next((c for c in self.communication if c.parallel == parallel and c.hardware in hws), None)

    @model_serializer(mode="wrap")
    def _without_empty_communication(self, handler):
        """Files without multi-device fits stay as they were: no empty communication list."""
        data = handler(self)
        if isinstance(data, dict) and not data.get("communication"):
            data.pop("communication", None)
        return data

    @model_validator(mode="after")
    def _unique(self):
        keys = [f.key for f in self.fits]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup:
            raise ValueError(f"two fits for {dup}")
        return self

    # --------------------------------------------------------------------------------------- files

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        """Read and validate a calibration file (schema 1 and 2 files are lifted: no per-layer overhead, no
        leave-one-model-out error); UserError naming the file and the field otherwise."""
        doc = load_json(path, "calibration")
        return parse(cls, _upgrade(doc, path), str(path))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration as JSON, atomically; returns the path."""
        return atomic_write_text(path, dumps(self.model_dump(mode="json"), indent=2))

    # --------------------------------------------------------------------------------------- reading

    def describe(self) -> str:
        """A few lines a person can read: what was fitted, how well, from what."""
        lines = [f"calibration of {', '.join(self.provenance.device_names) or 'unknown devices'} from "
                 f"{len(self.provenance.run_ids)} run(s), FLOPs in the {self.flop_convention} convention:"]
        for f in self.fits:
            etas = ", ".join(f"η_{t} {v:.1%}" for t, v in (("compute", f.eta_compute), ("memory", f.eta_memory))
                             if v is not None)
            tau = f" + {f.tau_s_per_layer * 1e3:.3g} ms per layer" if f.tau_s_per_layer is not None else ""
            by_model = (f", by model {f.heldout_by_model.median_rel_error:.1%} median "
                        f"({f.heldout_by_model.n_folds} models)" if f.heldout_by_model else "")
            lines.append(f"  {f.key}: {etas}, t0 {f.t0_s * 1e3:.3g} ms{tau}; held-out error "
                         f"{f.heldout.median_rel_error:.1%} median, {f.heldout.max_rel_error:.1%} max "
                         f"({f.n_shapes} shapes){by_model}" + (" [forced]" if f.forced else ""))
        lines += [f"  not fitted: {r.key}: {r.refused}" for r in self.refused]
        return "\n".join(lines)

    def summary(self) -> str:
        return ", ".join(f.key for f in self.fits)

    def hardware_for(self, phase: str | None = None) -> str:
        """The one hardware the calibration covers (for this phase); UserError if none or several."""
        hws = sorted({f.hardware for f in self.fits if phase is None or f.phase == phase})
        if not hws:
            raise UserError(f"the calibration has no {phase} fit; it has: {self.summary()}")
        if len(hws) != 1:
            what = f" for {phase}" if phase else ""
            raise UserError(f"the calibration covers {len(hws)} accelerators{what} ({', '.join(hws)}): "
                            "choose one with --hardware")
        return hws[0]

    def dtype_for(self, hardware: str, phase: str, *, transfer: bool = False) -> str:
        """The one dtype fitted for (hardware, phase), or with transfer for the phase on any hardware."""
        if not transfer and not any(f.matches(hardware) for f in self.fits):
            raise self.needs_transfer(hardware)
        dtypes = sorted({f.dtype for f in self.fits if f.phase == phase and (transfer or f.matches(hardware))})
        if len(dtypes) != 1:
            raise UserError(f"the calibration has {len(dtypes)} dtypes for {phase} ({', '.join(dtypes) or 'none'}): "
                            "choose one with --dtype")
        return dtypes[0]

    def measured_on(self) -> list[str]:
        return sorted({f.hardware for f in self.fits})

    def needs_transfer(self, hardware: str) -> UserError:
        return UserError(f"the calibration was measured on {', '.join(self.measured_on())}, not on {hardware}; "
                         "applying it to another accelerator needs --transfer, and is labelled as such")


def _upgrade(doc: Any, path) -> Any:
    """Schema 1 -> 2: refused entries keep only what a refusal needs. 2 -> 3: nothing to change (the new fields
    are optional: no τ is an overhead that does not depend on the depth, as schema 2 fitted it)."""
    if isinstance(doc, dict) and doc.get("schema_version") == 1 and doc.get("kind") == KIND:
        keep = set(Refused.model_fields)
        doc = {**doc, "schema_version": 2,
               "refused": [{k: v for k, v in r.items() if k in keep} if isinstance(r, dict) else r
                           for r in doc.get("refused") or []]}
    if isinstance(doc, dict) and doc.get("schema_version") == 2 and doc.get("kind") == KIND:
        doc = {**doc, "schema_version": 3}
    elif isinstance(doc, dict) and isinstance(doc.get("schema_version"), int) and doc["schema_version"] > SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {doc['schema_version']} is newer than this llmecon reads "
                        f"({SCHEMA_VERSION}); upgrade llmecon")
    return doc
