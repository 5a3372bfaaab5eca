"""Parsing what people type and formatting what they read: one parser and one formatter per kind of number."""

from __future__ import annotations

import math

import pytest

from llmecon.errors import UserError
from llmecon.units import (binary_bytes, number, parse_count, parse_fraction, parse_whole, parse_whole_list, pct,
                           quantity, si, usd)


@pytest.mark.parametrize("text,value", [("300e9", 300e9), ("300B", 300e9), ("1.4T", 1.4e12), ("2.5M", 2.5e6),
                                        ("10k", 1e4), ("300_000_000", 3e8), (42, 42.0)])
def test_units_parse_count(text, value):
    assert parse_count("--tokens", text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-5", "0", "abc", "1.4X", "nan", ""])
def test_units_parse_count_refuses_in_one_line_naming_the_option(text):
    with pytest.raises(UserError, match="--tokens"):
        parse_count("--tokens", text)


def test_units_parse_whole_refuses_fractions_instead_of_rounding():
    assert parse_whole("--batch-size", "8") == 8 and parse_whole("--batch-size", 8.0) == 8
    with pytest.raises(UserError, match="--batch-size must be a whole number, got 1.5"):
        parse_whole("--batch-size", "1.5")
    with pytest.raises(UserError, match="whole number"):
        parse_whole("--batch-size", 1.5)


def test_units_parse_whole_list():
    assert parse_whole_list("--seq-len", "128, 512,2048") == (128, 512, 2048)
    assert parse_whole_list("--seq-len", (1, 8)) == (1, 8)
    for bad in ("", "1,x", "0", "1,-2"):
        with pytest.raises(UserError, match="--seq-len"):
            parse_whole_list("--seq-len", bad)


@pytest.mark.parametrize("text,value", [("21.3%", 0.213), ("0.213", 0.213), ("5%", 0.05), (" 46.2 % ", 0.462),
                                        (0.4, 0.4), ("1e-1", 0.1)])
def test_units_parse_fraction_takes_percentages_and_fractions(text, value):
    assert parse_fraction("--mfu", text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "5%%", "inf", "%"])
def test_units_parse_fraction_refuses_text_naming_the_option(text):
    with pytest.raises(UserError, match="--max-drop"):
        parse_fraction("--max-drop", text)


def test_units_si_prefixes():
    assert si(1.23e12, "FLOP/s") == "1.23 TFLOP/s"
    assert si(0.00135, "s") == "1.35 ms" and si(2.5e-6, "s") == "2.5 µs"
    assert si(0.5, "FLOP") == "0.5 FLOP"          # sub-unit prefixes for seconds only
    assert si(None) == si(math.nan) == "—"


def test_units_pct_never_prints_a_nonzero_share_as_zero():
    assert pct(0.213) == "21.3%" and pct(0.000092) == "0.0092%" and pct(0) == "0.0%"
    assert pct(2.15, significant=4) == "215%" and pct(None) == "—"


def test_units_number_is_the_one_plain_number_formatter():
    """Flat and calibrated estimates print numbers alike: separators from 1,000 up, else 4 significant digits."""
    assert [number(v) for v in (49158.3, 43690.2, 4.0, 3.5551, 0.0035146)] == ["49,158", "43,690", "4", "3.555",
                                                                               "0.003515"]


def test_units_usd_and_bytes():
    assert [usd(v) for v in (1.398e6, 2034.4, 2.4025, 0.0035146, 0)] == ["$1.40M", "$2,034", "$2.40", "$0.00351",
                                                                         "$0"]
    assert binary_bytes(1.5 * 2**30) == "1.5 GiB" and binary_bytes(100) == "100 B"


def test_units_quantity_in_each_unit():
    assert quantity(1.398e6, "USD") == "$1.398M" and quantity(0.0035, "USD/1k tokens") == "$0.0035 / 1k tokens"
    assert quantity(0.1566, "fraction") == "15.66%" and quantity(1.375, "x") == "1.375x"
    assert quantity(3.14e21, "FLOP") == "3.14 ZFLOP" and quantity(687148.2, "h") == "687,148 h"
