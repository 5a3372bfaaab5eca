"""The accelerator sheet: dense peak FLOP/s per dtype, memory, bandwidth, TDP, and the names devices report.

The data is `data/hardware.csv`, one row per fact:

    accelerator_id, field, dtype, value, unit, source, retrieved_on, note

Fields (a value in the unit given in the row; converted to SI on load):
    name, vendor, form_factor              text, once per accelerator (name and vendor required)
    nvml_name, torch_name                  text, any number of rows: the exact strings nvmlDeviceGetName and
                                           torch.cuda.get_device_name return; `match_device_name` uses them
    peak_flops_per_s        (dtype)        DENSE peak, one row per dtype (at least one); FLOP/s, GFLOP/s,
                                           TFLOP/s, PFLOP/s -- int8 in OP/s, GOP/s, TOP/s, POP/s
    vendor_sparse_headline_flops_per_s (dtype)
                                           the vendor's "with sparsity" headline (always 2x dense). Never used
                                           as a peak: it is kept so that a dense row carrying it is rejected
                                           (the usual way an MFU ends up off by exactly 2x)
    memory_bytes                           B, MB, GB, TB, MiB, GiB, TiB (required)
    memory_bytes_per_s                     B/s, MB/s, GB/s, TB/s, GiB/s, TiB/s (required)
    tdp_w                                  W, kW (optional: TPUs publish none)
    nvlink_bytes_per_s                     optional: the GPU's NVLink bandwidth as NVIDIA quotes it, the TOTAL of
                                           both directions (A100 SXM 600 GB/s = 300 GB/s each way); B/s, GB/s, TB/s
    network_bytes_per_s                    optional: inter-node network per GPU in the typical node, ONE direction
                                           (as InfiniBand/EFA rates are quoted: HDR 200 Gb/s = 25 GB/s); Gb/s, GB/s
    gpus_per_node                          optional: GPUs in that node (unit GPU, a whole number)
The three link fields feed the communication model (costmodel.communication, docs/data-sources.md §14); a
sheet without them loads, and its accelerators get no datasheet communication term.

Users add sheets in the same format (`extra_paths`, or $LLMECON_HARDWARE, os.pathsep-separated): new
accelerators, or facts the built-in sheet lacks. A fact given twice with different values is an error,
never "last wins"; the same value twice is fine. Every error names the file, the line and the field, and
nothing is loaded from a sheet set with any error. There are no CPU rows: a CPU's peak is measured.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from llmecon.costmodel import _sheet
from llmecon.costmodel._sheet import where
from llmecon.errors import UserError
from llmecon.vocab import DTYPES

HARDWARE_SHEET = Path(__file__).parent / "data" / "hardware.csv"
ENV_VAR = "LLMECON_HARDWARE"
COLUMNS = ("accelerator_id", "field", "dtype", "value", "unit", "source", "retrieved_on", "note")

_FLOP_UNITS = {"FLOP/s": 1.0, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "PFLOP/s": 1e15}
_OP_UNITS = {"OP/s": 1.0, "GOP/s": 1e9, "TOP/s": 1e12, "POP/s": 1e15}
_UNITS = {
    "memory_bytes": {"B": 1.0, "MB": 1e6, "GB": 1e9, "TB": 1e12, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40},
    "memory_bytes_per_s": {"B/s": 1.0, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12, "GiB/s": 2.0**30, "TiB/s": 2.0**40},
    "tdp_w": {"W": 1.0, "kW": 1e3},
    "nvlink_bytes_per_s": {"B/s": 1.0, "GB/s": 1e9, "TB/s": 1e12},
    "network_bytes_per_s": {"B/s": 1.0, "Gb/s": 1e9 / 8, "GB/s": 1e9},
    "gpus_per_node": {"GPU": 1.0},
}
_PEAK_FIELDS = ("peak_flops_per_s", "vendor_sparse_headline_flops_per_s")
_TEXT_ONCE = ("name", "vendor", "form_factor")
_TEXT_MANY = ("nvml_name", "torch_name")
FIELDS = _TEXT_ONCE + _TEXT_MANY + _PEAK_FIELDS + tuple(_UNITS)
_REQUIRED = ("name", "vendor", "memory_bytes", "memory_bytes_per_s", "peak_flops_per_s")
# A dense peak within 1 % of the vendor's sparse headline IS the sparse headline (rejected). The headline
# must be 2x dense within 5 %: NVIDIA's own L40S sheet prints BF16 362.05 dense beside 733 sparse (2.02x).
_SPARSE_REL_TOL = 0.01
_SPARSE_RATIO_TOL = 0.05


@dataclass(frozen=True)
class Fact:
    """One row of a hardware sheet, value in SI units (text for text fields), with where it came from."""

    accelerator_id: str
    field: str
    dtype: str
    value: float | str
    unit: str
    source: str
    retrieved_on: str
    note: str
    path: str
    line: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("field", "dtype", "value", "unit", "source", "retrieved_on", "note", "path", "line")}


@dataclass(frozen=True)
class Accelerator:
    """One accelerator's datasheet numbers, SI units. Peaks are dense (no 2:4 sparsity)."""

    id: str
    name: str
    vendor: str
    peak_flops_per_s: Mapping[str, float]
    memory_bytes: float
    memory_bytes_per_s: float
    tdp_w: float | None
    nvml_names: tuple[str, ...]
    torch_names: tuple[str, ...]
    form_factor: str = ""
    vendor_sparse_headline_flops_per_s: Mapping[str, float] = field(default_factory=dict)
    facts: tuple[Fact, ...] = ()
    nvlink_bytes_per_s: float | None = None     # bidirectional total, as NVIDIA quotes it
    network_bytes_per_s: float | None = None    # per GPU, one direction
    gpus_per_node: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _sheet.SLUG.match(self.id):
            raise UserError(f"accelerator id {self.id!r} is not a lowercase slug (letters, digits, '.', '_', '-')")
        for name in ("name", "vendor"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise UserError(f"accelerator {self.id}: {name} must be a non-empty string")
        if not self.peak_flops_per_s:
            raise UserError(f"accelerator {self.id}: needs at least one dense peak_flops_per_s")
        for table in (self.peak_flops_per_s, self.vendor_sparse_headline_flops_per_s):
            for dtype, value in table.items():
                if dtype not in DTYPES:
                    raise UserError(f"accelerator {self.id}: unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
                _require_positive(f"accelerator {self.id}: peak for {dtype}", value)
        for dtype, sparse in self.vendor_sparse_headline_flops_per_s.items():
            dense = self.peak_flops_per_s.get(dtype)
            if dense is not None and math.isclose(dense, sparse, rel_tol=_SPARSE_REL_TOL):
                raise UserError(f"accelerator {self.id}: {dtype} peak {dense:g} is the vendor's with-sparsity headline; give the dense figure")
        _require_positive(f"accelerator {self.id}: memory_bytes", self.memory_bytes)
        _require_positive(f"accelerator {self.id}: memory_bytes_per_s", self.memory_bytes_per_s)
        for name in ("tdp_w", "nvlink_bytes_per_s", "network_bytes_per_s"):
            if getattr(self, name) is not None:
                _require_positive(f"accelerator {self.id}: {name}", getattr(self, name))
        if self.gpus_per_node is not None and (isinstance(self.gpus_per_node, bool) or self.gpus_per_node != int(
                self.gpus_per_node) or self.gpus_per_node < 1):
            raise UserError(f"accelerator {self.id}: gpus_per_node must be a whole number >= 1, got {self.gpus_per_node!r}")
        for names in (self.nvml_names, self.torch_names):
            if not isinstance(names, tuple) or not all(isinstance(n, str) and n.strip() for n in names):
                raise UserError(f"accelerator {self.id}: nvml_names / torch_names must be tuples of non-empty strings")

    def peak(self, dtype: str) -> float | None:
        """Dense peak FLOP/s (OP/s for int8) for dtype; None if the sheet has none for it."""
        if dtype not in DTYPES:
            raise UserError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
        return self.peak_flops_per_s.get(dtype)

    @property
    def disputed(self) -> tuple[str, ...]:
        """Notes of the facts the sources disagree on (note starting with 'disputed'), e.g. the A10G's peak."""
        return tuple(
            f"{f.field}{'[' + f.dtype + ']' if f.dtype else ''}: {f.note}"
            for f in self.facts
            if f.note.lower().startswith("disputed")
        )

    def to_dict(self) -> dict:
        """Plain data for JSON: SI values plus every fact with its source."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "form_factor": self.form_factor,
            "peak_flops_per_s": dict(self.peak_flops_per_s),
            "memory_bytes": self.memory_bytes,
            "memory_bytes_per_s": self.memory_bytes_per_s,
            "tdp_w": self.tdp_w,
            "nvlink_bytes_per_s": self.nvlink_bytes_per_s,
            "network_bytes_per_s": self.network_bytes_per_s,
            "gpus_per_node": self.gpus_per_node,
            "nvml_names": list(self.nvml_names),
            "torch_names": list(self.torch_names),
            "vendor_sparse_headline_flops_per_s": dict(self.vendor_sparse_headline_flops_per_s),
            "disputed": list(self.disputed),
            "facts": [f.to_dict() for f in self.facts],
        }


def _require_positive(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{what} must be a finite number > 0, got {value!r}")


def normalize_device_name(name: str) -> str:
    """Case, runs of whitespace, '-' vs '_' vs ' ' and a leading 'NVIDIA ' do not distinguish devices."""
    s = " ".join(name.replace("-", " ").replace("_", " ").split()).casefold()
    if s.startswith("nvidia "):
        s = s[len("nvidia "):]
    return s


def _parse_row(path: Path, line: int, row: dict[str, str]) -> Fact:
    acc = _sheet.slug(path, line, "accelerator_id", _sheet.required(path, line, row, "accelerator_id"))
    fld = _sheet.one_of(path, line, "field", _sheet.required(path, line, row, "field"), FIELDS, "field")
    dtype, unit = row["dtype"], row["unit"]
    text = _sheet.required(path, line, row, "value")
    source = _sheet.required(path, line, row, "source")
    retrieved_on = _sheet.date(path, line, "retrieved_on", _sheet.required(path, line, row, "retrieved_on"))
    if fld in _PEAK_FIELDS:
        if dtype not in DTYPES:
            raise UserError(
                f"{where(path, line, 'dtype')}: {'unknown dtype ' + repr(dtype) if dtype else 'a dtype is required for ' + fld}; "
                f"known: {', '.join(DTYPES)}"
            )
        units = _OP_UNITS if dtype == "int8" else _FLOP_UNITS
    elif dtype:
        raise UserError(f"{where(path, line, 'dtype')}: {fld} takes no dtype (got {dtype!r}); leave it empty")
    else:
        units = _UNITS.get(fld)
    if units is None:  # a text field
        if unit:
            raise UserError(f"{where(path, line, 'unit')}: {fld} is text and takes no unit (got {unit!r})")
        value: float | str = text
    else:
        if unit not in units:
            what = f"{fld} {dtype}".strip()
            raise UserError(
                f"{where(path, line, 'unit')}: {'unknown unit ' + repr(unit) if unit else 'a unit is required'} "
                f"for {what}; use one of: {', '.join(units)}"
            )
        value = _sheet.positive_number(path, line, "value", text) * units[unit]
    return Fact(acc, fld, dtype, value, unit, source, retrieved_on, row["note"], str(path), line)


def _whole(fact: Fact) -> int:
    if fact.value != int(fact.value):
        raise UserError(f"{where(fact.path, fact.line, 'value')}: gpus_per_node must be a whole number, got {fact.value:g}")
    return int(fact.value)


def _same(a: float | str, b: float | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9)


def _assemble(acc_id: str, facts: list[Fact]) -> Accelerator:
    first = facts[0]
    present = {f.field for f in facts}
    for need in _REQUIRED:
        if need not in present:
            raise UserError(
                f"{where(first.path, first.line, 'field')}: accelerator '{acc_id}' has no '{need}' row "
                f"(every accelerator needs {', '.join(_REQUIRED)})"
            )
    one = {f.field: f for f in facts if f.field not in _PEAK_FIELDS and f.field not in _TEXT_MANY}
    dense = {f.dtype: f for f in facts if f.field == "peak_flops_per_s"}
    sparse = {f.dtype: f for f in facts if f.field == "vendor_sparse_headline_flops_per_s"}
    for dtype, s in sparse.items():
        d = dense.get(dtype)
        if d is None:
            raise UserError(
                f"{where(s.path, s.line, 'dtype')}: vendor sparse headline for {dtype} but no dense "
                f"peak_flops_per_s {dtype} row for '{acc_id}'"
            )
        if math.isclose(d.value, s.value, rel_tol=_SPARSE_REL_TOL):
            raise UserError(
                f"{where(d.path, d.line, 'value')}: {acc_id} {dtype} peak {d.value:g} equals the vendor's "
                f"with-sparsity headline (line {s.line} of {s.path}); peaks are dense: half of it"
            )
        if not math.isclose(s.value, 2 * d.value, rel_tol=_SPARSE_RATIO_TOL):
            raise UserError(
                f"{where(s.path, s.line, 'value')}: vendor sparse headline {s.value:g} for {acc_id} {dtype} is not "
                f"2x the dense peak {d.value:g} (line {d.line} of {d.path}); one of the two is wrong"
            )
    return Accelerator(
        id=acc_id,
        name=one["name"].value,
        vendor=one["vendor"].value,
        form_factor=one["form_factor"].value if "form_factor" in one else "",
        peak_flops_per_s={dt: dense[dt].value for dt in DTYPES if dt in dense},
        vendor_sparse_headline_flops_per_s={dt: sparse[dt].value for dt in DTYPES if dt in sparse},
        memory_bytes=one["memory_bytes"].value,
        memory_bytes_per_s=one["memory_bytes_per_s"].value,
        tdp_w=one["tdp_w"].value if "tdp_w" in one else None,
        nvlink_bytes_per_s=one["nvlink_bytes_per_s"].value if "nvlink_bytes_per_s" in one else None,
        network_bytes_per_s=one["network_bytes_per_s"].value if "network_bytes_per_s" in one else None,
        gpus_per_node=_whole(one["gpus_per_node"]) if "gpus_per_node" in one else None,
        nvml_names=tuple(f.value for f in facts if f.field == "nvml_name"),
        torch_names=tuple(f.value for f in facts if f.field == "torch_name"),
        facts=tuple(facts),
    )


@functools.lru_cache(maxsize=32)
def _load(key: tuple) -> tuple[dict[str, Accelerator], dict[str, tuple[str, str]]]:
    by_acc: dict[str, list[Fact]] = {}
    single: dict[tuple, Fact] = {}
    many: set[tuple] = set()
    for path_str, _mtime, _size in key:
        path = Path(path_str)
        for line, row in _sheet.read_rows(path, COLUMNS):
            fact = _parse_row(path, line, row)
            if fact.field in _TEXT_MANY:
                k = (fact.accelerator_id, fact.field, fact.value)
                if k in many:
                    continue
                many.add(k)
            else:
                k = (fact.accelerator_id, fact.field, fact.dtype)
                prev = single.get(k)
                if prev is not None:
                    if _same(prev.value, fact.value):
                        continue
                    what = f"{fact.field}{' ' + fact.dtype if fact.dtype else ''} of '{fact.accelerator_id}'"
                    shown = (lambda v: repr(v) if isinstance(v, str) else f"{v:g}")
                    raise UserError(
                        f"{where(path, line, 'value')}: {what} is {shown(fact.value)} here but {shown(prev.value)} "
                        f"at line {prev.line} of {prev.path}; give each fact once (a sheet cannot override another)"
                    )
                single[k] = fact
            by_acc.setdefault(fact.accelerator_id, []).append(fact)
    accelerators = {acc_id: _assemble(acc_id, facts) for acc_id, facts in by_acc.items()}
    index: dict[str, tuple[str, str]] = {}
    for acc in accelerators.values():
        for f in acc.facts:
            if f.field not in _TEXT_MANY:
                continue
            norm = normalize_device_name(f.value)
            other = index.get(norm)
            if other is not None and other[0] != acc.id:
                raise UserError(
                    f"{where(f.path, f.line, 'value')}: device name {f.value!r} of '{acc.id}' is also a name of "
                    f"'{other[0]}' ({other[1]!r}); a reported name must identify one accelerator"
                )
            index[norm] = (acc.id, f.value)
    return accelerators, index


def _loaded(extra_paths) -> tuple[dict[str, Accelerator], dict[str, tuple[str, str]]]:
    paths = _sheet.sheet_paths(HARDWARE_SHEET, extra_paths, ENV_VAR)
    return _load(_sheet.cache_key(paths))


def load_hardware(extra_paths: Iterable = ()) -> dict[str, Accelerator]:
    """All accelerators: the built-in sheet, then $LLMECON_HARDWARE, then extra_paths. UserError on any problem."""
    return dict(_loaded(extra_paths)[0])


def get_accelerator(hw_id: str, extra_paths: Iterable = ()) -> Accelerator:
    """The accelerator with this id; UserError naming the known ids otherwise."""
    accelerators = _loaded(extra_paths)[0]
    if hw_id not in accelerators:
        raise UserError(f"unknown accelerator {hw_id!r}; known: {', '.join(accelerators)}")
    return accelerators[hw_id]


def match_device_name(reported: str, extra_paths: Iterable = ()) -> tuple[Accelerator | None, str]:
    """(accelerator, reason) for the name NVML or torch reports; (None, reason) when no sheet has that name.

    Exact after normalisation (case, whitespace, '-'/'_'/' ', a leading 'NVIDIA '): 'NVIDIA H20' is not
    the H200, 'NVIDIA A10' not the A10G or an A100, 'NVIDIA H100 PCIe' not the SXM part. An unknown
    device gets None, never another device's numbers.
    """
    if not isinstance(reported, str) or not reported.strip():
        return None, "no device name was reported"
    accelerators, index = _loaded(extra_paths)
    hit = index.get(normalize_device_name(reported))
    if hit is None:
        return None, f"{reported!r} is not in the hardware sheet; add it with --hardware-sheet"
    acc_id, listed = hit
    return accelerators[acc_id], f"{reported!r} matched {acc_id} (sheet name {listed!r})"


def select(hw_id: str | None = None, vendor: str | None = None, dtype: str | None = None,
           extra_paths: Iterable = ()) -> list[Accelerator]:
    """The accelerators `llmecon hardware` lists: one id, one vendor, or those with a dense peak for a dtype
    (any combination); UserError for an unknown id, vendor or dtype."""
    accelerators = list(load_hardware(extra_paths).values())
    if hw_id is not None:
        accelerators = [get_accelerator(hw_id, extra_paths)]
    if vendor is not None:
        vendors = sorted({a.vendor for a in load_hardware(extra_paths).values()}, key=str.lower)
        if vendor.lower() not in {v.lower() for v in vendors}:
            raise UserError(f"unknown --vendor {vendor!r}; known: {', '.join(vendors)}")
        accelerators = [a for a in accelerators if a.vendor.lower() == vendor.lower()]
    if dtype is not None:
        if dtype not in DTYPES:
            raise UserError(f"unknown --dtype {dtype!r}; known: {', '.join(DTYPES)}")
        accelerators = [a for a in accelerators if a.peak(dtype) is not None]
    return accelerators
