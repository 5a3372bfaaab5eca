"""The one atomic write and the one strict JSON read."""

from __future__ import annotations

import os
import stat

import pytest

from llmecon.errors import UserError
from llmecon.files import atomic_write_text, dumps, is_leftover, read_json


def test_files_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "first\n")
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n" and [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_files_atomic_write_is_readable_by_others(tmp_path):
    """mkstemp makes private files; results and calibrations are meant to be shared (umask applies)."""
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "c.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_files_atomic_write_failure_is_one_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        atomic_write_text(tmp_path / "file" / "inside.json", "{}")


def test_files_read_json_is_strict(tmp_path):
    (tmp_path / "nan.json").write_text('{"x": NaN}')
    with pytest.raises(ValueError, match="NaN"):
        read_json(tmp_path / "nan.json")
    (tmp_path / "ok.json").write_text('{"x": 1}')
    assert read_json(tmp_path / "ok.json") == {"x": 1}


def test_files_dumps_refuses_non_finite_numbers():
    with pytest.raises(ValueError):
        dumps({"x": float("inf")})


def test_files_leftovers_are_recognised(tmp_path):
    assert is_leftover(tmp_path / ".a.json.x1.tmp") and is_leftover(tmp_path / ".hidden.json")
    assert not is_leftover(tmp_path / "a.json")
