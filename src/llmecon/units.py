"""Text in, text out: parsing the numbers people type, and formatting numbers for people.

Inside llmecon every quantity is a plain number in SI units (seconds, FLOP/s, bytes, USD); these functions
are used only where text comes in (options, sheets) or goes out (tables). Each parser names the option
it reads in its one-line error.
"""

from __future__ import annotations

import math
import re

from llmecon.errors import UserError, require_count, require_positive

# ---------------------------------------------------------------------------------------------- parsing

_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_COUNT = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$")
_FRACTION = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(%?)\s*$")


def parse_count(name: str, text) -> float:
    """'300e9', '300B', '1.4T', '2.5M', '10k', '300_000_000' -> a positive number; UserError otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return require_positive(name, text)
    m = _COUNT.match(str(text))
    if not m:
        raise UserError(f"{name} must be a count such as 300e9, 300B or 1.4T, got {text!r}")
    return require_positive(name, float(m.group(1).replace("_", "")) * _SUFFIXES.get(m.group(2).lower(), 1.0))


def parse_whole(name: str, text, *, allow_zero: bool = False) -> int:
    """A whole number from text or a number ('8', '2k', 8.0); 1.5 is refused, never rounded."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return require_count(name, text, allow_zero=allow_zero)
    try:
        value = float(str(text).replace("_", ""))
    except ValueError:
        if not _COUNT.match(str(text)):
            raise UserError(f"{name} must be a whole number, got {text!r}") from None
        value = parse_count(name, text)                  # '2k', '1.5M'
    if value != value or value in (float("inf"), float("-inf")):
        raise UserError(f"{name} must be a whole number, got {text!r}")
    return require_count(name, value, allow_zero=allow_zero)


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(s|ms|us|µs|min)?\s*$")
_DURATION_UNITS = {"s": 1.0, None: 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}


def parse_duration(name: str, text) -> float:
    """'1s', '50ms', '200us', '0.5' (seconds), '2min' -> seconds > 0; UserError naming the option otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return require_positive(name, text)
    m = _DURATION.match(str(text))
    if not m:
        raise UserError(f"{name} must be a duration such as 1s, 50ms or 0.2 (seconds), got {text!r}")
    return require_positive(name, float(m.group(1)) * _DURATION_UNITS[m.group(2)])


def parse_whole_list(name: str, text) -> tuple[int, ...]:
    """'1,8,32' (or a sequence of numbers) -> (1, 8, 32); UserError on anything else or an empty list."""
    parts = str(text).split(",") if isinstance(text, str) else list(text)
    out = tuple(parse_whole(name, p) for p in parts if not (isinstance(p, str) and not p.strip()))
    if not out:
        raise UserError(f"{name} must be a comma-separated list of whole numbers, got {text!r}")
    return out


def parse_fraction(name: str, text) -> float:
    """'21.3%' -> 0.213 and '0.213' -> 0.213; UserError naming the option for anything else. The caller
    checks the range it needs (require_fraction for a utilization)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _FRACTION.match(str(text))
        if not m:
            raise UserError(f"{name} must be a fraction or a percentage such as 0.213 or 21.3%, got {text!r}")
        value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not math.isfinite(value):
        raise UserError(f"{name} must be finite, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------- formatting

_SI = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"),
       (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """1.23e12, 'FLOP/s' -> '1.23 TFLOP/s'; 0.00135, 's' -> '1.35 ms' (milli, micro, nano for seconds only).
    None or NaN -> '—'."""
    if _missing(value):
        return "—"
    if value == 0:
        return f"0 {unit}".rstrip()
    for scale, prefix in _SI:
        if abs(value) >= scale or scale == _SI[-1][0]:
            if scale < 1 and unit != "s":  # milli-FLOPs mean nothing: sub-unit prefixes for seconds only
                return f"{value:.{digits}g} {unit}".rstrip()
            return f"{value / scale:.{digits}g} {prefix}{unit}".rstrip()
    raise AssertionError("unreachable")


def binary_bytes(value: float | None, digits: int = 3) -> str:
    """Bytes with binary prefixes: 1.5 GiB."""
    if _missing(value):
        return "—"
    for power, prefix in ((5, "Pi"), (4, "Ti"), (3, "Gi"), (2, "Mi"), (1, "Ki")):
        if abs(value) >= 1024**power:
            text = f"{value / 1024**power:.{digits}g}"
            return f"{text if 'e' not in text else f'{value / 1024**power:.0f}'} {prefix}B"  # 1020 MiB, not 1.02e+03
    return f"{value:.0f} B"


def usd(value: float | None) -> str:
    """Dollars with sensible precision: $1.40M, $2,034, $0.0035."""
    if _missing(value):
        return "—"
    a = abs(value)
    if a >= 1e9:
        return f"${value / 1e9:.2f}B"
    if a >= 1e6:
        return f"${value / 1e6:.2f}M"
    if a >= 100:
        return f"${value:,.0f}"
    if a >= 1:
        return f"${value:.2f}"
    if a == 0:
        return "$0"
    return f"${value:.{max(2, 2 - int(math.floor(math.log10(a))))}f}"


def pct(value: float | None, digits: int = 1, *, significant: int | None = None) -> str:
    """0.213 -> '21.3%'. A small non-zero share keeps two significant digits ('0.0092%', never '0.0%');
    ``significant`` gives that many significant digits instead of fixed decimals."""
    if _missing(value):
        return "—"
    p = 100.0 * value
    if significant is not None:
        return f"{p:.{significant}g}%"
    if p != 0 and abs(p) < 10.0**-digits:
        return f"{p:.2g}%"
    return f"{p:.{digits}f}%"


def number(value: float | None, significant: int = 4) -> str:
    """A plain quantity: thousands separators from 1,000 up ('49,158'), else significant digits
    ('3.555', '0.003515', '4')."""
    if _missing(value):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{significant}g}"


def quantity(value: float | None, unit: str) -> str:
    """A figure in its unit's natural form, 4 significant digits: '$1.398M', '21.3%', '1.4x', '3.14 EFLOP'."""
    if _missing(value):
        return "—"
    if unit.startswith("USD"):
        suffix = unit[3:].replace("/", " / ").strip()
        a = abs(value)
        if a >= 1e9:
            text = f"${value / 1e9:.4g}B"
        elif a >= 1e6:
            text = f"${value / 1e6:.4g}M"
        elif a >= 1e3:
            text = f"${value:,.0f}"
        else:
            text = f"${value:.4g}"
        return f"{text} {suffix}".strip()
    if unit == "fraction":
        return pct(value, significant=4)
    if unit == "x":
        return f"{value:.4g}x"
    if unit in ("FLOP", "B"):
        return si(value, unit, 4)
    if unit == "nats":
        return f"{value:.4f}"
    if unit == "h":
        return f"{value:,.0f} h"
    if unit == "s":
        return f"{value:.4g} s"
    if unit == "searches/year":
        return si(value, "", 4) + " / year"
    return f"{number(value)} {unit}"


def spread(value: float | None, rounds: int | None = None) -> str:
    """A measurement's noise between rounds: '±1.2 %' (half the rounds' range over their median); '1 round' when
    there is none to show; '—' when unknown."""
    if not _missing(value):
        return f"±{value * 100:.1f} %"
    if rounds is None or _missing(float(rounds)):
        return "—"
    return f"{int(rounds)} round" + ("" if int(rounds) == 1 else "s")
