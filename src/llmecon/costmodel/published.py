"""The sheet of published measurements: one measured point per row, as its source printed it, with the source.

The data is `data/published.csv`; columns (docs/data-sources.md §13 says what each means):

    id, engine, engine_version, accelerator_id, accelerator_count, parallelism, model, model_as_published,
    dtype, weights, phase, batch_size, seq_len, input_len, output_len, concurrency, request_rate_per_s,
    value, unit, source, retrieved_on, note

`accelerator_id` is an id of the hardware sheets, `model` a preset of data/models.csv. `value` is kept in the
source's unit (UNITS); nothing is converted or derived here.

Phases (what one row measured):

- `decode`: generation steps at a known batch (`batch_size` required).
- `prefill`: prompt processing. With unit `ms` the value is the wall time in milliseconds of ONE prefill of
  `batch_size` sequences of `input_len` tokens each (a time to first token measured with a single output
  token); `batch_size` and `input_len` are then required. Its other units count prompt tokens.
- `generate`: a static batch run end to end: `batch_size` sequences, each a prompt of `input_len` tokens
  followed by `output_len` generated tokens; the value is the run's generated (output) tokens per second
  (`tokens/s`, or `tokens/s/accelerator` = that divided by `accelerator_count`). `batch_size`, `input_len` and
  `output_len` are required.
- `serve`: a serving run (input/output lengths required, the load in `concurrency` / `request_rate_per_s`,
  the batch chosen by the server).
- `train`: training steps (`batch_size` is the global batch in sequences).

Users add sheets in the same format (`extra_paths`, or $LLMECON_PUBLISHED, os.pathsep-separated); an id given
twice with different values is an error. Every error names file, line and field; nothing is loaded from a sheet
set with any error.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from llmecon.costmodel import _sheet, hardware
from llmecon.costmodel._sheet import where
from llmecon.costmodel.presets import list_presets
from llmecon.errors import UserError
from llmecon.vocab import DTYPES

PUBLISHED_SHEET = Path(__file__).parent / "data" / "published.csv"
ENV_VAR = "LLMECON_PUBLISHED"
COLUMNS = (
    "id", "engine", "engine_version", "accelerator_id", "accelerator_count", "parallelism", "model",
    "model_as_published", "dtype", "weights", "phase", "batch_size", "seq_len", "input_len", "output_len",
    "concurrency", "request_rate_per_s", "value", "unit", "source", "retrieved_on", "note",
)
# decode/prefill: one step kind at a known batch; generate: a static batch, prompt then output, end to end;
# serve: a serving run (input/output lengths, load); train (the module docstring says what each measured)
PHASES = ("prefill", "decode", "generate", "serve", "train")
# tokens count what the phase produces: generated tokens (decode, generate, serve), prompt tokens (prefill),
# trained tokens (train). tokens/s is the whole run's (all accelerators); /accelerator divides by
# accelerator_count. ms: the wall time of one prefill of batch_size x input_len tokens (prefill only).
UNITS = ("tokens/s", "tokens/s/accelerator", "tokens/s/user", "ms/token", "ms", "%MFU", "TFLOP/s/accelerator")
_UNITS_BY_PHASE = {
    "decode": ("tokens/s", "tokens/s/accelerator", "tokens/s/user", "ms/token"),
    "prefill": ("tokens/s", "tokens/s/accelerator", "TFLOP/s/accelerator", "%MFU", "ms"),
    "generate": ("tokens/s", "tokens/s/accelerator"),
    "serve": ("tokens/s", "tokens/s/accelerator", "tokens/s/user", "ms/token"),
    "train": ("tokens/s", "tokens/s/accelerator", "TFLOP/s/accelerator", "%MFU"),
}
# cells a row must fill, by phase (and by phase and unit); each missing one is refused with this reason
_NEEDS = {
    "decode": (("batch_size",), "a decode point needs the batch size it ran at"),
    "generate": (("batch_size", "input_len", "output_len"),
                 "a generate point needs its batch size and its input and output lengths"),
    "serve": (("input_len", "output_len"), "a serve point needs its input and output lengths"),
}
_NEEDS_BY_UNIT = {
    ("prefill", "ms"): (("batch_size", "input_len"),
                        "a prefill time in ms needs the batch size and input length of the prefill it timed"),
}
# weight formats narrower than dtype (weight-only quantization); empty = weights in `dtype`
WEIGHTS = ("int8", "int4", "int4-g32", "int4-g64", "int4-g128", "fp8")
PARALLEL_DEGREES = ("tp", "pp", "dp", "fsdp", "cp", "ep")
_INT_FIELDS = ("batch_size", "seq_len", "input_len", "output_len", "concurrency")


@dataclass(frozen=True)
class Measurement:
    """One published point, in the source's unit; None where the source does not say."""

    id: str
    engine: str
    engine_version: str
    accelerator_id: str
    accelerator_count: int | None
    parallelism: dict[str, int]
    model: str
    model_as_published: str
    dtype: str
    weights: str
    phase: str
    batch_size: int | None
    seq_len: int | None
    input_len: int | None
    output_len: int | None
    concurrency: int | None
    request_rate_per_s: float | None
    value: float
    unit: str
    source: str
    retrieved_on: str
    note: str
    path: str
    line: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in COLUMNS} | {"path": self.path, "line": self.line}


def _whole(path: Path, line: int, field: str, text: str) -> int | None:
    """An optional count: None when empty, else _sheet.whole_number."""
    return _sheet.whole_number(path, line, field, text) if text else None


def _parallelism(path: Path, line: int, text: str) -> dict[str, int]:
    """'tp=8,pp=2' -> {'tp': 8, 'pp': 2}; empty = not published."""
    out: dict[str, int] = {}
    if not text:
        return out
    for part in text.split(","):
        key, sep, num = part.strip().partition("=")
        if not sep or key not in PARALLEL_DEGREES:
            raise UserError(
                f"{where(path, line, 'parallelism')}: {part.strip()!r} is not name=degree with a name of "
                f"{', '.join(PARALLEL_DEGREES)} (e.g. 'tp=8,pp=2')"
            )
        if key in out:
            raise UserError(f"{where(path, line, 'parallelism')}: {key} given twice")
        out[key] = _whole(path, line, "parallelism", num.strip()) or 1
    return out


def _require(path: Path, line: int, ints: dict[str, int | None], need: tuple | None) -> None:
    """UserError naming the first of need's fields that is empty, with need's reason."""
    if need is None:
        return
    fields, reason = need
    for f in fields:
        if ints[f] is None:
            raise UserError(f"{where(path, line, f)}: {reason}")


def _parse_row(path: Path, line: int, row: dict[str, str], accelerators: dict, models: tuple[str, ...]) -> Measurement:
    req = functools.partial(_sheet.required, path, line, row)
    mid = _sheet.slug(path, line, "id", req("id"))
    engine = _sheet.slug(path, line, "engine", req("engine"))
    acc = _sheet.one_of(path, line, "accelerator_id", req("accelerator_id"), accelerators, "accelerator",
                        _sheet.UNKNOWN_ACCELERATOR_HINT)
    count = _whole(path, line, "accelerator_count", row["accelerator_count"])
    par = _parallelism(path, line, row["parallelism"])
    if par and count is not None and math.prod(par.values()) != count:
        raise UserError(
            f"{where(path, line, 'parallelism')}: degrees {row['parallelism']!r} multiply to "
            f"{math.prod(par.values())}, but accelerator_count is {count}"
        )
    model = _sheet.one_of(path, line, "model", req("model"), models, "model preset",
                          "add it to data/models.csv with its config's source")
    dtype = _sheet.one_of(path, line, "dtype", req("dtype"), DTYPES, "dtype")
    weights = row["weights"]
    if weights:
        _sheet.one_of(path, line, "weights", weights, WEIGHTS, "weight format", "empty = weights in the dtype")
    phase = _sheet.one_of(path, line, "phase", req("phase"), PHASES, "phase")
    ints = {f: _whole(path, line, f, row[f]) for f in _INT_FIELDS}
    rate = row["request_rate_per_s"]
    rate_per_s = _sheet.positive_number(path, line, "request_rate_per_s", rate) if rate else None
    _require(path, line, ints, _NEEDS.get(phase))
    unit = req("unit")
    if unit not in UNITS:
        raise UserError(f"{where(path, line, 'unit')}: unknown unit {unit!r}; known: {', '.join(UNITS)}")
    if unit not in _UNITS_BY_PHASE[phase]:
        raise UserError(
            f"{where(path, line, 'unit')}: {unit} is not a {phase} measure; use one of: {', '.join(_UNITS_BY_PHASE[phase])}"
        )
    _require(path, line, ints, _NEEDS_BY_UNIT.get((phase, unit)))
    value = _sheet.positive_number(path, line, "value", req("value"))
    if unit == "%MFU" and value > 100:
        raise UserError(f"{where(path, line, 'value')}: an MFU of {value:g} % is over 100 %")
    source = req("source")
    if not source.startswith(("http://", "https://")):
        raise UserError(f"{where(path, line, 'source')}: must start with an http(s) address a reader can open")
    retrieved_on = _sheet.date(path, line, "retrieved_on", req("retrieved_on"))
    return Measurement(
        id=mid, engine=engine, engine_version=req("engine_version"), accelerator_id=acc, accelerator_count=count,
        parallelism=par, model=model, model_as_published=row["model_as_published"], dtype=dtype, weights=weights,
        phase=phase, request_rate_per_s=rate_per_s, value=value, unit=unit, source=source,
        retrieved_on=retrieved_on, note=row["note"], path=str(path), line=line, **ints,
    )


@functools.lru_cache(maxsize=32)
def _load(published_key: tuple, hardware_key: tuple) -> tuple[Measurement, ...]:
    accelerators = hardware._load(hardware_key)[0]
    models = tuple(list_presets())
    out: dict[str, Measurement] = {}
    for path_str, _mtime, _size in published_key:
        path = Path(path_str)
        for line, row in _sheet.read_rows(path, COLUMNS):
            m = _parse_row(path, line, row, accelerators, models)
            prev = out.get(m.id)
            if prev is not None:
                same = {k: v for k, v in prev.to_dict().items() if k not in ("path", "line")} == \
                       {k: v for k, v in m.to_dict().items() if k not in ("path", "line")}
                if same:
                    continue
                raise UserError(
                    f"{where(path, line, 'id')}: measurement {m.id!r} is also defined, differently, at line "
                    f"{prev.line} of {prev.path}; ids are unique (a sheet cannot override another)"
                )
            out[m.id] = m
    return tuple(out.values())


def load_published(extra_paths: Iterable = (), *, hardware_paths: Iterable = ()) -> list[Measurement]:
    """Every published point: the built-in sheet, then $LLMECON_PUBLISHED, then extra_paths, in sheet order.

    Accelerator ids are checked against the hardware sheets (built-in, $LLMECON_HARDWARE, hardware_paths),
    models against the presets of data/models.csv.

    >>> palm = next(m for m in load_published() if m.id == "pathways-tpu-v4-6144chip-palm-540b-mfu")
    >>> (palm.accelerator_id, palm.accelerator_count, palm.value, palm.unit)
    ('tpu-v4', 6144, 46.2, '%MFU')
    """
    hw = _sheet.sheet_paths(hardware.HARDWARE_SHEET, hardware_paths, hardware.ENV_VAR)
    pub = _sheet.sheet_paths(PUBLISHED_SHEET, extra_paths, ENV_VAR)
    return list(_load(_sheet.cache_key(pub), _sheet.cache_key(hw)))
