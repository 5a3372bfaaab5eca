"""Human-readable formatting, used only when printing (SI units everywhere inside)."""

from __future__ import annotations

import math

_SI = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """1.23e12, 'FLOP/s' -> '1.23 TFLOP/s'. None/NaN -> '—'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    for scale, prefix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def binary_bytes(value: float | None, digits: int = 3) -> str:
    """Bytes with binary prefixes: 1.5 GiB."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    for power, prefix in ((5, "Pi"), (4, "Ti"), (3, "Gi"), (2, "Mi"), (1, "Ki")):
        if abs(value) >= 1024**power:
            return f"{value / 1024**power:.{digits}g} {prefix}B"
    return f"{value:.0f} B"


def usd(value: float | None) -> str:
    """Dollars with sensible precision: $1.40M, $2,034, $0.0035."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
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


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{100 * value:.{digits}f}%"
