"""File formats declared as pydantic models: parse a document into one, or fail in one line naming the field.

Every format llmecon reads or writes (run.json, records, calibrations) is a pydantic model with
``extra="forbid"`` and strict types, so a typo, a string where a number belongs or a missing field is
refused with its dotted path (``timing.samples_s[3]: Input should be a valid number``), never guessed at.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from llmecon.errors import UserError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of every declared block: unknown fields refused, no silent coercion (no "1" for 1)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def describe(exc: ValidationError) -> str:
    """The first problem of a ValidationError as 'field.path: message', with how many more there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{_where(first['loc'])}: {first['msg']}{more}"


def parse(model: type[M], data: Any, source: str) -> M:
    """``model`` validated from ``data``; UserError '<source>: <field>: <problem>' otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{source}: {describe(exc)}") from None
