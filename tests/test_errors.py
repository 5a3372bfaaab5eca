"""The one set of validators behind every option and sheet."""

from __future__ import annotations

import math

import pytest

from llmecon.errors import UserError, require_count, require_fraction, require_positive


def test_errors_require_positive():
    assert require_positive("x", "2.5") == 2.5 and require_positive("x", 0, allow_zero=True) == 0.0
    for bad in (0, -1, math.nan, math.inf, "abc", None, True):
        with pytest.raises(UserError, match="^x "):
            require_positive("x", bad)


def test_errors_require_fraction():
    assert require_fraction("--mfu", 1) == 1.0
    with pytest.raises(UserError, match=r"--mfu must be in \(0, 1\], got 1.5"):
        require_fraction("--mfu", 1.5)


def test_errors_require_count_refuses_fractions_and_booleans():
    assert require_count("k", 3.0) == 3 and require_count("k", 0, allow_zero=True) == 0
    for bad in (1.5, True, "3", -1, 0):
        with pytest.raises(UserError, match="^k "):
            require_count("k", bad)
