"""Declared formats: a document that does not fit its model is refused in one line naming the field."""

from __future__ import annotations

import pytest

from llmecon.errors import UserError
from llmecon.formats import Strict, parse


class _Inner(Strict):
    values: list[float]


class _Doc(Strict):
    name: str
    inner: _Inner


def test_formats_parse_names_the_dotted_field():
    with pytest.raises(UserError, match=r"^doc\.json: inner\.values\[1\]: Input should be a valid number$"):
        parse(_Doc, {"name": "a", "inner": {"values": [1.0, "x"]}}, "doc.json")


def test_formats_parse_counts_further_problems():
    with pytest.raises(UserError, match=r"and 1 more problem"):
        parse(_Doc, {"name": 1, "inner": {"values": ["x"]}}, "doc.json")


def test_formats_are_strict_and_closed():
    with pytest.raises(UserError, match="name: Input should be a valid string"):
        parse(_Doc, {"name": 5, "inner": {"values": []}}, "doc")
    with pytest.raises(UserError, match="extra: Extra inputs are not permitted"):
        parse(_Doc, {"name": "a", "inner": {"values": []}, "extra": 1}, "doc")
    assert parse(_Doc, {"name": "a", "inner": {"values": [1, 2.5]}}, "doc").inner.values == [1.0, 2.5]
