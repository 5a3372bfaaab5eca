"""UserError: the one exception for problems a user can fix, and the one set of validators.

The CLI turns a UserError into one line on stderr and exit status 2. Everything else is a bug and keeps its
traceback.
"""

import math


class UserError(Exception):
    """A problem with the user's input (unknown model, malformed sheet, bad number...)."""


def require_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """value as a float if it is a finite number > 0 (>= 0 with allow_zero), else UserError."""
    if isinstance(value, bool):
        raise UserError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise UserError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise UserError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value:g}")
    return value


def require_fraction(name: str, value) -> float:
    """A utilization-like number in (0, 1]."""
    value = require_positive(name, value)
    if value > 1:
        raise UserError(f"{name} must be in (0, 1], got {value:g}")
    return value


def require_count(name: str, value, *, allow_zero: bool = False) -> int:
    """A whole number > 0 (>= 0 with allow_zero). A float with no fractional part is accepted; 1.5 is
    refused, never rounded."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise UserError(f"{name} must be a whole number, got {value:g}")
        value = int(value)
    if value < 0 or (value == 0 and not allow_zero):
        raise UserError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value
