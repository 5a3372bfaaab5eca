"""`llmecon compare` on runs on disk: exit codes, folders of runs, and real runs of the tiny model (the same
run twice, then the same run on a shared core)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmecon.cli import main

SMALL = {"phases": ("prefill", "decode"), "batches": (1, 4), "seqs": (32, 128)}


def test_cli_compare_folders_of_runs_pool_their_rounds(tmp_path, plant):
    """BASE: two runs 30 % apart (a drifting machine); NEW 12 % below BASE's median. The pooled rounds of BASE
    are bimodal, so the interval is wide: no regression can be claimed, and the row says it is undecided."""
    kw = {"dtype": "fp32", "phases": ("prefill",), "batches": (1, 4), "seqs": (32,)}
    for seed, slowdown in ((0, 1.0), (1, 1.3)):
        plant.planted_run(tmp_path / "base", seed=seed, slowdown=slowdown, **kw)
    plant.planted_run(tmp_path / "new", seed=2, slowdown=1.25, **kw)
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert all(r["base_rounds"] == 10 and r["new_rounds"] == 5 and r["verdict"] == "inconclusive" for r in rows)
    assert all(r["change_low"] < -0.05 < r["change_high"] for r in rows)


def test_cli_compare_exit_codes(tmp_path, plant):
    kw = {"dtype": "fp32", **SMALL}
    base = plant.planted_run(tmp_path / "base", seed=0, **kw)
    like = plant.planted_run(tmp_path / "like", seed=1, **kw)
    slow = plant.planted_run(tmp_path / "slow", seed=2, slowdown=1.5, **kw)
    runner = CliRunner()
    ok = runner.invoke(main, ["compare", str(base), str(like)])
    assert ok.exit_code == 0, ok.output
    text = " ".join(ok.output.split())
    assert "no regression" in text and "8 configuration(s) matched" in text and "no change" in text
    assert slow.parent == tmp_path / "slow"
    # folders of runs, as well as run folders
    bad = runner.invoke(main, ["compare", str(tmp_path / "base"), str(tmp_path / "slow"), "--max-drop", "10%", "--json"])
    assert bad.exit_code == 1
    doc = json.loads(bad.output)
    assert doc["regressions"] == 8 and all(r["change"] == pytest.approx(-1 / 3, abs=0.02) for r in doc["rows"])
    missing = runner.invoke(main, ["compare", str(base), str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "llmecon: error:" in missing.output
    for bad_option in (["--max-drop", "lots"], ["--confidence", "80%"], ["--normalize", "gemm"]):
        assert runner.invoke(main, ["compare", str(base), str(like), *bad_option]).exit_code == 2


def test_cli_compare_strict_fails_on_inconclusive(tmp_path, plant):
    kw = {"dtype": "fp32", **SMALL}
    base = plant.planted_run(tmp_path / "base", seed=0, rounds=1, **kw)   # one round a side: nothing decided
    new = plant.planted_run(tmp_path / "new", seed=1, rounds=1, **kw)
    runner = CliRunner()
    plain = runner.invoke(main, ["compare", str(base), str(new)])
    assert plain.exit_code == 0 and "8 inconclusive" in plain.output
    assert "~4 rounds per side would decide" in " ".join(plain.output.split())
    assert runner.invoke(main, ["compare", str(base), str(new), "--strict"]).exit_code == 1


def test_cli_compare_reports_work_that_changed(tmp_path, plant):
    kw = {"dtype": "fp32", "phases": ("prefill",), "batches": (1,), "seqs": (32,)}
    ops = {"aten_ops_per_step": 10, "aten_op_counts": {"aten.mm": 10}, "cuda_kernels_per_step": None, "reason": None}
    more = {**ops, "aten_ops_per_step": 12, "aten_op_counts": {"aten.mm": 10, "aten.copy_": 2}}
    base = plant.planted_run(tmp_path / "base", seed=0, ops=ops, **kw)
    new = plant.planted_run(tmp_path / "new", seed=1, ops=more, **kw)
    result = CliRunner().invoke(main, ["compare", str(base), str(new)])
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "work changed in 1" in text and "aten.copy_ +2" in text


@pytest.mark.parametrize("bad", ["five", "-1%", "150%", "nan"])
def test_cli_compare_refuses_a_bad_max_drop_naming_the_option(tmp_path, plant, bad):
    run = plant.planted_run(tmp_path / "base", dtype="fp32", **SMALL)
    res = CliRunner().invoke(main, ["compare", str(run), str(run), "--max-drop", bad])
    assert res.exit_code == 2 and "--max-drop" in res.output and res.output.count("\n") == 1, res.output


# ---- real runs: the tiny model's bench, the same run twice, then the same run on a shared core ----------

# four rounds, each stopped at its minimums (5 steps of ~70 ms, 0.1 s): compare decides on the spread of the round
# means, and a fifth of a CPU is a 5x slowdown, far beyond both the 40 % threshold and the rounds' spread
BENCH = ["bench", "--model", "tiny", "--phase", "prefill", "--batch-size", "32", "--seq-len", "256", "--min-iters", "5",
         "--min-time", "0.1", "--max-time", "1", "--warmup", "1", "--rounds", "4", "--precision", "0", "--no-isolate",
         "--quiet"]


HOGS = 4
REAL_MAX_DROP = "40%"   # a like run on a shared box can drift by tens of %; a fifth of a CPU drops ~60-80 %


def _bench(out, *, share_core: bool = False):
    """One bench run, in this process, pinned to one CPU with one torch thread (on a shared 2-core box a
    second OpenMP thread is at the mercy of other processes). share_core: HOGS busy-looping processes are
    pinned to the same CPU for the whole run, so the bench gets at most a fifth of it — a real slowdown,
    large enough to stand out from the drift between two runs on a machine other people are using too."""
    import os
    import subprocess
    import sys

    import torch

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("pinning to one CPU needs os.sched_setaffinity (Linux)")
    cpu = min(os.sched_getaffinity(0))
    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    hogs = []
    for _ in range(HOGS if share_core else 0):
        hogs.append(subprocess.Popen([sys.executable, "-c",
                                      f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]))
    try:
        os.sched_setaffinity(0, {cpu})
        torch.set_num_threads(1)
        result = CliRunner().invoke(main, [*BENCH, "--out", str(out)])
    finally:
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare-real")
    return {"base": _bench(root / "base"), "like": _bench(root / "like"),
            "slow": _bench(root / "slow", share_core=True)}


@pytest.mark.slow
def test_cli_compare_real_like_runs_pass_and_a_shared_core_fails(real_runs):
    runner = CliRunner()
    like = runner.invoke(main, ["compare", str(real_runs["base"]), str(real_runs["like"]), "--max-drop", REAL_MAX_DROP,
                                "--json"])
    assert like.exit_code == 0, like.output
    slow = runner.invoke(main, ["compare", str(real_runs["base"]), str(real_runs["slow"]), "--max-drop", REAL_MAX_DROP,
                                "--json"])
    assert slow.exit_code == 1, slow.output
    row = json.loads(slow.output)["rows"][0]
    assert row["verdict"] == "regression" and row["change"] < -0.4
    like_row = json.loads(like.output)["rows"][0]
    assert like_row["verdict"] != "regression"
    print(f"like run {like_row['change']:+.1%} ({like_row['verdict']}); shared core {row['change']:+.1%}")
