"""The article's parameters and the figures built from them: the data model of the reproduction.

`load_article_params` reads ``data/article.csv`` (each value tagged TEXT / INFERRED / EXTERNAL with its
source; docs/article.md §2), `ParamValues` serves them by key with overrides, and `_figure` sets each recomputed
figure beside the article's printed one (agreeing within half a unit of its last printed digit). The tables
themselves are built in article.py.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from llmecon.errors import UserError

ARTICLE_CSV = Path(__file__).with_name("data") / "article.csv"
SOURCE_TAGS = ("TEXT", "INFERRED", "EXTERNAL")
_COLUMNS = ("key", "value", "unit", "source_tag", "source", "note")


@dataclass(frozen=True)
class ArticleParam:
    """One input of the article (docs/article.md §2): value in SI/USD, unit, provenance."""

    key: str
    value: float
    unit: str
    source_tag: str  # TEXT (stated in the article), INFERRED (worked back from its numbers), EXTERNAL
    source: str
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """One reproduced figure. `value` is raw (USD, FLOP, bytes, hours, fractions)."""

    key: str            # stable id, e.g. "training.gpt3.usd"
    label: str
    value: float
    unit: str           # USD, USD/query, USD/1k tokens, FLOP, B, h, s, fraction, x, nats, ...
    printed: float | None       # the article's figure, same unit as value; None if the article prints none
    printed_text: str | None    # as the article writes it: "$1.4M", "~15%"
    agrees: bool | None         # value rounds to printed (or satisfies ">=" bounds); None without printed
    exact_note: str
    source_tag: str             # the weakest provenance of the figure and its inputs: TEXT (all stated
                                # in the article), EXTERNAL (an input from a source it cites, not its text),
                                # INFERRED (an inferred input, or a lost table rebuilt)
    reproduces: str             # e.g. "§1.4 TLDR $1.4M"
    inputs: tuple[str, ...] = ()  # parameter keys used


@dataclass(frozen=True)
class ArticleTable:
    key: str
    title: str
    section: str        # docs/article.md section(s) holding the derivation
    note: str
    rows: tuple[Figure, ...]


@dataclass(frozen=True)
class ArticleReproduction:
    tables: tuple[ArticleTable, ...]
    parameters: tuple[ArticleParam, ...]
    overrides: Mapping[str, float] = field(default_factory=dict)

    def figure(self, key: str) -> Figure:
        for table in self.tables:
            for row in table.rows:
                if row.key == key:
                    return row
        raise KeyError(key)

    def figures(self) -> list[Figure]:
        return [row for table in self.tables for row in table.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "Sunyan, 'The Economics of Large Language Models' (Jan 2023); derivations: docs/article.md",
            "overrides": dict(self.overrides),
            "tables": [{**{k: v for k, v in asdict(t).items() if k != "rows"},
                        "rows": [{**asdict(r), "inputs": list(r.inputs)} for r in t.rows]} for t in self.tables],
            "parameters": [asdict(p) for p in self.parameters],
        }


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------

def load_article_params(path: str | Path | None = None) -> dict[str, ArticleParam]:
    """Read the article's parameters; UserError naming file, row and field on anything malformed."""
    path = Path(path) if path is not None else ARTICLE_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read article parameters: {exc.strerror or exc}") from None
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise UserError(f"{path}: header must be {','.join(_COLUMNS)}, got {','.join(reader.fieldnames or ())}")
    params: dict[str, ArticleParam] = {}
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        key = (row["key"] or "").strip()
        if not key:
            raise UserError(f"{where}: field 'key' is empty")
        if key in params:
            raise UserError(f"{where}: key {key!r} appears twice")
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            raise UserError(f"{where}: field 'value' of {key!r} is not a number: {row['value']!r}") from None
        if not math.isfinite(value):
            raise UserError(f"{where}: field 'value' of {key!r} must be finite, got {row['value']!r}")
        tag = (row["source_tag"] or "").strip()
        if tag not in SOURCE_TAGS:
            raise UserError(f"{where}: field 'source_tag' of {key!r} must be one of {', '.join(SOURCE_TAGS)}, "
                            f"got {tag!r}")
        if not (row["unit"] or "").strip() or not (row["source"] or "").strip():
            raise UserError(f"{where}: fields 'unit' and 'source' of {key!r} must not be empty")
        params[key] = ArticleParam(key, value, row["unit"].strip(), tag, row["source"].strip(),
                                   (row["note"] or "").strip())
    return params


class ParamValues:
    """Parameter values by key (a missing key is a UserError naming the file), and the Figure builder."""

    def __init__(self, params: Mapping[str, ArticleParam], overrides: Mapping[str, float], path):
        self._values = {k: p.value for k, p in params.items()}
        self._tags = {k: p.source_tag for k, p in params.items()}
        for key, value in overrides.items():
            if key not in self._values:
                raise UserError(f"unknown article parameter {key!r} in overrides; known: "
                                f"{', '.join(sorted(self._values))}")
            self._values[key] = float(value)
        self._path = path

    def __getitem__(self, key: str) -> float:
        try:
            return self._values[key]
        except KeyError:
            raise UserError(f"{self._path}: article parameter {key!r} is missing") from None

    def figure(self, key, label, value, unit, *, tag="TEXT", inputs=(), **kw) -> Figure:
        """A Figure whose source_tag is the weakest of `tag` and its inputs' tags (INFERRED < EXTERNAL < TEXT)."""
        for name in inputs:
            self[name]  # a missing parameter is a UserError, not a silent TEXT
        tags = {tag, *(self._tags[name] for name in inputs)}
        weakest = next(t for t in ("INFERRED", "EXTERNAL", "TEXT") if t in tags)
        return _figure(key, label, value, unit, tag=weakest, inputs=inputs, **kw)


# ---------------------------------------------------------------------------------------------
# Formulas specific to the article (the generic ones live in costmodel.estimate)
# ---------------------------------------------------------------------------------------------

def api_cost_per_query(words, usd_per_1k_tokens, words_per_1k_tokens, cache_hit_rate, gross_margin):
    """Cloud compute cost of a query priced from an API (docs/article.md §3.1, general form):

    cost/query = words/query x ($ per 1K tokens / words per 1K tokens) x (1 - cache hit) x (1 - gross margin)
    """
    return words * (usd_per_1k_tokens / words_per_1k_tokens) * (1 - cache_hit_rate) * (1 - gross_margin)


def chinchilla_loss_terms(params, tokens, e, a, b, alpha, beta) -> dict[str, float]:
    """Hoffmann et al. 2022 (approach 3) parametric loss: L(N, D) = E + A / N^alpha + B / D^beta (docs/article.md §3.6)."""
    param_term = a / params**alpha
    data_term = b / tokens**beta
    return {"param_term": param_term, "data_term": data_term, "loss": e + param_term + data_term}


def round_significant(x: float, digits: int) -> float:
    """x rounded to `digits` significant digits (the article rounds 2.118T searches to 2.1T)."""
    if x == 0:
        return 0.0
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _figure(key, label, value, unit, *, printed=None, text=None, at_least=False, note="", tag="TEXT",
            reproduces="", inputs=()) -> Figure:
    """Build a Figure; `printed` is the article's number as a decimal string ("0.010", "1.4e6").

    agrees: |value - printed| <= half a unit of the printed figure's last digit; with at_least, value >= printed.
    """
    value = float(value)
    printed_value = agrees = None
    if printed is not None:
        dec = Decimal(printed)
        printed_value = float(dec)
        if at_least:
            agrees = value >= printed_value
        else:
            half_unit = 0.5 * 10.0 ** dec.as_tuple().exponent
            agrees = abs(value - printed_value) <= half_unit * (1 + 1e-9)
    return Figure(key, label, value, unit, printed_value, text, agrees, note, tag, reproduces, tuple(inputs))
