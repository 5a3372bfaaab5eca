"""The fake CUDA device (fakes.py) as a fixture: ``fake_cuda(**kwargs)`` installs it and returns its factory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("llmecon_test_fakes", Path(__file__).with_name("fakes.py"))
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)


@pytest.fixture
def fake_cuda(monkeypatch):
    def install(**kwargs):
        return fakes.install(monkeypatch, **kwargs)

    install.fakes = fakes
    return install
