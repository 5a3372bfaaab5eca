"""What produced a run: versions from package metadata (no torch import) and the git checkout."""

from __future__ import annotations

import subprocess

import pytest

from llmecon.records.environment import environment
from llmecon.records.load import load_results
from llmecon.records.store import new_run, write_record


@pytest.mark.slow
def test_environment_in_and_out_of_a_git_checkout(tmp_path, plant):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "f.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    clean = environment(repo)
    assert len(clean["git_sha"]) == 40 and clean["git_dirty"] is False
    for key in ("python", "torch", "transformers", "cuda", "driver", "platform", "cpu_model"):
        assert key in clean
    assert clean["torch"] and clean["cuda"] is None and "cuda" in clean["unavailable"]   # the probe fills it in
    assert clean["driver"] is not None or "driver" in clean["unavailable"]
    (repo / "f.py").write_text("x = 2\n")
    dirty = environment(repo)
    assert dirty["git_dirty"] is True
    run_dir = new_run(tmp_path / "out", {**plant.meta(), "environment": dirty})
    write_record(run_dir, plant.record("c1"))
    frame = load_results(run_dir).frame
    assert frame.loc[0, "warnings"] == "dirty_build" and frame.loc[0, "valid"]
    outside = environment(tmp_path / "nowhere")
    assert outside["git_sha"] is None and "not a git checkout" in outside["unavailable"]["git_sha"]


@pytest.mark.slow
def test_environment_imports_no_torch():
    """Versions come from package metadata: capturing the environment never imports torch (bench fills in CUDA
    and the driver from its own probe)."""
    import sys

    code = ("import sys; from llmecon.records.environment import environment; env = environment(); "
            "print(sorted(m for m in ('torch', 'pynvml') if m in sys.modules), bool(env['torch']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True"
