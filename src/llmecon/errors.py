"""UserError: the one exception for problems a user can fix.

The CLI turns it into one line on stderr and exit status 2. Everything else is a bug and keeps its
traceback.
"""


class UserError(Exception):
    """A problem with the user's input (unknown model, malformed sheet, bad number...)."""


def require_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """Return value as a float if it is a finite number > 0 (>= 0 with allow_zero), else UserError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{name} must be a number, got {value!r}") from None
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise UserError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UserError(f"{name} must be {bound}, got {value:g}")
    return value


def require_fraction(name: str, value) -> float:
    """A utilization-like number in (0, 1]."""
    value = require_positive(name, value)
    if value > 1:
        raise UserError(f"{name} must be in (0, 1], got {value:g}")
    return value


def require_count(name: str, value, *, allow_zero: bool = False) -> int:
    """A whole number > 0 (>= 0 with allow_zero); a float with no fractional part is accepted."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise UserError(f"{name} must be a whole number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise UserError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value
