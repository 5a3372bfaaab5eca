"""The price sheet: what an instance (or one accelerator) costs per hour, under which term, when, per whom.

The data is `data/prices.csv`, one row per offer:

    id, provider, instance, accelerator_id, accelerator_count, term, usd_per_hour, region, date, source, note

`usd_per_hour` is for the whole INSTANCE, which holds `accelerator_count` accelerators of `accelerator_id`
(an id of the hardware sheet); `Price.usd_per_accelerator_hour` divides. Terms: on_demand, 1_year,
3_year (reserved / committed, effective hourly), spot. `date` is when the source shows the price
(YYYY-MM-DD, or YYYY-MM / YYYY when the source says no more). `region` may be empty when the source
names none. Rows whose source quotes a per-GPU price for a multi-GPU instance are multiplied out and say
"derived" in the note.

Users add sheets in the same format (`extra_paths`, or $LLMECON_PRICES, os.pathsep-separated). An id
given twice with different values is an error, never "last wins". Every error names file, line and field;
nothing is loaded from a sheet set with any error.
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from llmecon.costmodel import _sheet, hardware
from llmecon.costmodel._sheet import where
from llmecon.errors import UserError
from llmecon.vocab import PRICE_TERM_ALIASES, PRICE_TERMS

PRICE_SHEET = Path(__file__).parent / "data" / "prices.csv"
ENV_VAR = "LLMECON_PRICES"
COLUMNS = (
    "id", "provider", "instance", "accelerator_id", "accelerator_count", "term", "usd_per_hour",
    "region", "date", "source", "note",
)


@dataclass(frozen=True)
class Price:
    """One offer: `usd_per_hour` for the whole instance of `count` accelerators."""

    id: str
    provider: str
    instance: str
    accelerator_id: str
    count: int
    term: str
    usd_per_hour: float
    region: str
    date: str
    source: str
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _sheet.SLUG.match(self.id):
            raise UserError(f"price id {self.id!r} is not a lowercase slug (letters, digits, '.', '_', '-')")
        for name in ("provider", "instance", "accelerator_id", "date", "source"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise UserError(f"price {self.id}: {name} must be a non-empty string")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise UserError(f"price {self.id}: count must be an integer >= 1, got {self.count!r}")
        if self.term not in PRICE_TERMS:
            raise UserError(f"price {self.id}: unknown term {self.term!r}; known: {', '.join(PRICE_TERMS)}")
        u = self.usd_per_hour
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not math.isfinite(u) or u <= 0:
            raise UserError(f"price {self.id}: usd_per_hour must be a finite number > 0, got {u!r}")

    @property
    def usd_per_accelerator_hour(self) -> float:
        return self.usd_per_hour / self.count

    def to_dict(self) -> dict:
        return {
            "id": self.id, "provider": self.provider, "instance": self.instance,
            "accelerator_id": self.accelerator_id, "accelerator_count": self.count, "term": self.term,
            "usd_per_hour": self.usd_per_hour, "usd_per_accelerator_hour": self.usd_per_accelerator_hour,
            "region": self.region, "date": self.date, "source": self.source, "note": self.note,
        }


def _parse_row(path: Path, line: int, row: dict[str, str], known: dict) -> Price:
    price_id = _sheet.slug(path, line, "id", _sheet.required(path, line, row, "id"))
    provider = _sheet.required(path, line, row, "provider")
    instance = _sheet.required(path, line, row, "instance")
    acc = _sheet.one_of(path, line, "accelerator_id", _sheet.required(path, line, row, "accelerator_id"), known,
                        "accelerator", _sheet.UNKNOWN_ACCELERATOR_HINT)
    count = _sheet.whole_number(path, line, "accelerator_count", _sheet.required(path, line, row, "accelerator_count"))
    term = _sheet.one_of(path, line, "term", _sheet.required(path, line, row, "term"), PRICE_TERMS, "term")
    usd = _sheet.positive_number(path, line, "usd_per_hour", _sheet.required(path, line, row, "usd_per_hour"))
    date = _sheet.date(path, line, "date", _sheet.required(path, line, row, "date"))
    source = _sheet.required(path, line, row, "source")
    return Price(price_id, provider, instance, acc, count, term, usd, row["region"], date, source, row["note"])


@functools.lru_cache(maxsize=32)
def _load(price_key: tuple, hardware_key: tuple) -> tuple[Price, ...]:
    known = hardware._load(hardware_key)[0]
    out: dict[str, tuple[Price, str, int]] = {}
    for path_str, _mtime, _size in price_key:
        path = Path(path_str)
        for line, row in _sheet.read_rows(path, COLUMNS):
            price = _parse_row(path, line, row, known)
            prev = out.get(price.id)
            if prev is not None:
                if prev[0] == price:
                    continue
                raise UserError(
                    f"{where(path, line, 'id')}: price {price.id!r} is also defined, differently, at line "
                    f"{prev[2]} of {prev[1]}; ids are unique (a sheet cannot override another)"
                )
            out[price.id] = (price, str(path), line)
    return tuple(p for p, _, _ in out.values())


def _keys(extra_paths, hardware_paths) -> tuple[tuple, tuple]:
    hw = _sheet.sheet_paths(hardware.HARDWARE_SHEET, hardware_paths, hardware.ENV_VAR)
    pr = _sheet.sheet_paths(PRICE_SHEET, extra_paths, ENV_VAR)
    return _sheet.cache_key(pr), _sheet.cache_key(hw)


def parse_term(text: str) -> str:
    """A price term as typed ('on-demand', '1yr', '3_year', 'spot') -> the sheet's spelling; UserError
    naming the known terms otherwise."""
    key = str(text).strip().lower()
    term = PRICE_TERM_ALIASES.get(key, key.replace("-", "_"))
    if term not in PRICE_TERMS:
        raise UserError(f"unknown --term {text!r}; known: {', '.join(PRICE_TERMS)} (or 1yr, 3yr)")
    return term


def load_prices(extra_paths: Iterable = (), *, hardware_paths: Iterable = ()) -> list[Price]:
    """Every price: the built-in sheet, then $LLMECON_PRICES, then extra_paths, in sheet order.

    Accelerator ids are checked against the hardware sheets (built-in, $LLMECON_HARDWARE, hardware_paths).
    """
    return list(_load(*_keys(extra_paths, hardware_paths)))


def get_price(price_id: str, extra_paths: Iterable = (), *, hardware_paths: Iterable = ()) -> Price:
    """The price with this id; UserError with the closest ids otherwise."""
    prices = _load(*_keys(extra_paths, hardware_paths))
    for p in prices:
        if p.id == price_id:
            return p
    close = difflib.get_close_matches(str(price_id), [p.id for p in prices], n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise UserError(f"unknown price {price_id!r}{hint} (list them with `llmecon prices`)")


def select(accelerator: str | None = None, provider: str | None = None, term: str | None = None,
           price_id: str | None = None, extra_paths: Iterable = (), *, hardware_paths: Iterable = ()) -> list[Price]:
    """The offers `llmecon prices` lists, by accelerator (in sheet order), term, then price per
    accelerator-hour; UserError for an unknown accelerator, provider, term or id."""
    every = load_prices(extra_paths, hardware_paths=hardware_paths)
    prices = [get_price(price_id, extra_paths, hardware_paths=hardware_paths)] if price_id is not None else every
    if accelerator is not None:
        hardware.get_accelerator(accelerator, hardware_paths)
        prices = [p for p in prices if p.accelerator_id == accelerator]
    if provider is not None:
        known = sorted({p.provider for p in every})
        if provider.lower() not in {k.lower() for k in known}:
            raise UserError(f"unknown provider {provider!r}; known: {', '.join(known)}")
        prices = [p for p in prices if p.provider.lower() == provider.lower()]
    if term is not None:
        prices = [p for p in prices if p.term == parse_term(term)]
    order = {hw_id: i for i, hw_id in enumerate(hardware.load_hardware(hardware_paths))}
    return sorted(prices, key=lambda p: (order[p.accelerator_id], PRICE_TERMS.index(p.term), p.usd_per_accelerator_hour))
