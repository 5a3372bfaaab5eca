"""The fake CUDA device (fakes.py) as a fixture: ``fake_cuda(**kwargs)`` installs it and returns its factory;
``two_ranks(scenario)`` runs distributed_worker.py on 2 gloo processes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
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


WORKER = Path(__file__).with_name("distributed_worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """``run(scenario)``: distributed_worker.py's ``scenario`` on 2 gloo processes; [rank 0's dict, rank 1's]."""
    def run(scenario: str, timeout_s: float = 180.0) -> list[dict]:
        tmp = tmp_path_factory.mktemp(scenario)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
               "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen([sys.executable, str(WORKER), scenario, str(rank), "2", str(tmp / "store"),
                                   str(tmp / f"rank{rank}.json")], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for rank in range(2)]
        logs = []
        try:
            for p in procs:
                logs.append(p.communicate(timeout=timeout_s)[0])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-3000:]
        return [json.loads((tmp / f"rank{rank}.json").read_text(encoding="utf-8")) for rank in range(2)]

    return run
