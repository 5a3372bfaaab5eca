"""`llmecon bench`: refusals before anything runs (one line, no run folder), where runs go, how the model is
named, and the table at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.cli._views import print_measurements
from llmecon.records.load import load_results
from llmecon.records.schema import Record


def test_bench_device_cuda_without_cuda_exits_2_before_anything(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    import llmecon.measure.worker as worker  # patched where it is called: a patch of measure.models would be
    # bound into the worker for good if this test were the first to import it

    monkeypatch.setattr(worker, "build_model", lambda *a, **k: pytest.fail("a model was built"))
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "CUDA is not available" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no run folder either


@pytest.mark.parametrize("args, numbers", [
    (["--phase", "prefill", "--seq-len", "4096"], ("4096", "2048")),
    (["--phase", "decode", "--seq-len", "2040", "--new-tokens", "16"], ("2056", "2048")),
])
def test_bench_shapes_beyond_context_are_refused_up_front(tmp_path, args, numbers):
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--device", "cpu", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert all(n in result.stderr for n in numbers), result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--model", "tiny", "--weights", "local"], "not a local model folder"),
    (["--model", "CONFIG_DIR", "--weights", "local"], "has no weight files"),
    (["--model", "tiny", "--min-time", "5", "--max-time", "1"], "exceeds --max-time"),
    (["--model", "tiny", "--layers", "3"], "--layers 3 is more than tiny's 2 layers"),
    (["--model", "tiny,gpt2", "--name", "x"], "--name names the model of a sweep with exactly one --model"),
    (["--name", "x"], "--name: not used, without --model"),
    (["--batch-size", "8"], "--batch-size: not used, without --model"),  # the default suite would ignore it
    (["--resume", "RUN_DIR", "--model", "tiny"], "--model, --device, --out: not used, --resume reruns"),
    (["--model", "tiny", "--phase", "generate", "--new-tokens", "1"], "--phase generate needs --new-tokens >= 2"),
    (["--model", "tiny", "--phase", "serve"], "unknown phase 'serve'; choose from prefill, decode, train, generate"),
])
def test_bench_refused_up_front_one_line_no_run_folder(tmp_path, args, message):
    config_dir, run_dir, out = tmp_path / "cfg", tmp_path / "run", tmp_path / "out"
    config_dir.mkdir()
    (config_dir / "config.json").write_text('{"model_type": "llama", "vocab_size": 64, "hidden_size": 16, '
                                            '"intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}')
    run_dir.mkdir()
    args = [{"CONFIG_DIR": str(config_dir), "RUN_DIR": str(run_dir)}.get(a, a) for a in args]
    result = CliRunner().invoke(main, ["bench", "--device", "cpu", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmecon: error: ") and message in lines[0], result.stderr
    assert not out.exists() and list(run_dir.iterdir()) == []


def test_bench_final_table_shows_why_an_ok_row_is_suspect(tmp_path, capsys, plant):
    # a row measured on a busy host is "ok" with a warning; the table at the end of bench must say so
    busy = {"valid": True, "reasons": [], "warnings": ["host_busy:1.05_other_cores"]}
    run_dir = plant.run(tmp_path, [plant.record("busy", validity=busy), plant.record("clean", batch_size=2)])
    print_measurements(load_results(run_dir).frame, "bench", run_dir)
    out = capsys.readouterr().out
    assert "warning: host_busy:1.05_other_cores" in out and out.count("warning:") == 1


def test_bench_final_table_shows_each_rows_noise_between_rounds(tmp_path, capsys, plant):
    steady = plant.record("steady", rounds=[[0.010] * 10, [0.0101] * 10, [0.0099] * 10])
    shaky = plant.record("shaky", batch_size=2, rounds=[[0.010] * 10, [0.013] * 10, [0.0105] * 10])
    old = plant.record("one-round", batch_size=4)
    oom = plant.record("oom", batch_size=8, status="oom", reasons=("out of memory",))   # no rounds at all
    run_dir = plant.run(tmp_path, [steady, shaky, old, oom])
    print_measurements(load_results(run_dir).frame, "bench", run_dir)
    out = capsys.readouterr().out
    assert "±1.0 %" in out and "±14.3 %" in out and "1 round " in out
    assert "warning: very_noisy" in out and "median over 1/3 rounds" in " ".join(out.split())


TINY_LLAMA = {"model_type": "llama", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 2}
# a fast, in-process sweep of one prefill configuration, one round stopped at its minimums (the tests below are
# about names and folders: they need a valid record, not a precise one)
ONE = ["--phase", "prefill", "--seq-len", "8", "--device", "cpu", "--min-iters", "2", "--min-time", "0", "--warmup", "1",
       "--rounds", "1", "--precision", "0", "--no-isolate", "--quiet", "--json"]


def _bench_config(folder: Path, cfg: dict, *args: str) -> dict:
    """`llmecon bench --model <folder>/config.json` (one configuration): its --json payload and its record."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    result = CliRunner().invoke(main, ["bench", "--model", str(folder / "config.json"), *ONE, *args])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (record,) = (Path(payload["run_dir"]) / "records").glob("*.json")
    return {**payload, "record": json.loads(record.read_text()), "record_file": record.name}


def _table(run_dir) -> str:
    result = CliRunner().invoke(main, ["results", "show", str(run_dir), "--columns", "model,phase,status"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.slow
def test_bench_writes_into_out_runs_and_names_a_config_by_its_folder(tmp_path):
    got = _bench_config(tmp_path / "My-Llama", TINY_LLAMA, "--out", str(tmp_path / "out"))
    run_dir = Path(got["run_dir"])
    assert run_dir.parent == tmp_path / "out" / "runs"                      # bench --out DIR: DIR/runs/<run id>
    assert got["record_file"].startswith("prefill-My-Llama-fp32-b1-s8-")     # never "config.json"
    assert got["record"]["config_id"].startswith("prefill-My-Llama-fp32-b1-s8-")
    assert got["record"]["model"]["name"] == "My-Llama"
    assert got["record"]["config"]["model"] == str(tmp_path / "My-Llama" / "config.json")
    row = got["rows"][0]
    assert row["model"] == "My-Llama" and row["model_spec"] == str(tmp_path / "My-Llama" / "config.json")
    table = _table(run_dir)
    assert "My-Llama" in table and "config.json" not in table


@pytest.mark.slow
def test_bench_names_a_config_by_its_name_or_path(tmp_path):
    cfg = {**TINY_LLAMA, "_name_or_path": "acme/Tiny-Llama"}        # what save_pretrained records
    got = _bench_config(tmp_path / "snapshot", cfg, "--out", str(tmp_path / "out"))
    assert got["record"]["model"]["name"] == "acme/Tiny-Llama" and got["rows"][0]["model"] == "acme/Tiny-Llama"
    assert got["record"]["config_id"].startswith("prefill-acme-Tiny-Llama-fp32-b1-s8-")   # made file-name safe
    table = _table(got["run_dir"])
    assert "acme/Tiny-Llama" in table and "snapshot" not in table


@pytest.mark.slow
def test_bench_name_overrides_the_models_own_name(tmp_path):
    cfg = {**TINY_LLAMA, "_name_or_path": "acme/Tiny-Llama"}
    got = _bench_config(tmp_path / "snapshot", cfg, "--out", str(tmp_path / "out"), "--name", "llama-mine")
    assert got["record"]["model"]["name"] == "llama-mine" and got["rows"][0]["model"] == "llama-mine"
    assert got["record"]["config_id"].startswith("prefill-llama-mine-fp32-b1-s8-")
    table = _table(got["run_dir"])
    assert "llama-mine" in table and "acme" not in table


@pytest.mark.slow
def test_bench_generate_real_tiny_requests_keep_ttft_and_tpot_and_show_them(tmp_path):
    """A real generate bench (P = 16, O = 4, batch 1 and 2): every timed request keeps one TTFT and O - 1 steps
    summing to its sample; the end table, results show and compare take the rows."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "--model", "tiny", "--phase", "generate", "--seq-len", "16",
                                       "--new-tokens", "4", "--batch-size", "1,2", "--device", "cpu", "--rounds", "2",
                                       "--min-iters", "2", "--min-time", "0", "--warmup", "1", "--precision", "0",
                                       "--no-isolate", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "TTFT p50 / p90" in result.stdout and "TPOT p50 / p90" in result.stdout
    (run_dir,) = (out / "runs").iterdir()
    records = [Record.model_validate_json(p.read_text()) for p in sorted((run_dir / "records").glob("*.json"))]
    assert sorted(r.config.batch_size for r in records) == [1, 2]
    for rec in records:
        assert rec.status == "ok" and rec.config.phase == "generate" and rec.config.new_tokens == 4, rec.reasons
        assert rec.work.tokens_per_step == 4 * rec.config.batch_size and len(rec.timing.rounds) == 2
        for rnd in rec.timing.rounds:
            n = rnd.n_samples
            assert n >= 2 and len(rnd.samples_s) == len(rnd.ttft_samples_s) == n and len(rnd.tpot_samples_s) == 3 * n
            for i, sample in enumerate(rnd.samples_s):
                assert sample == pytest.approx(rnd.ttft_samples_s[i] + sum(rnd.tpot_samples_s[3 * i:3 * i + 3]),
                                               rel=1e-12)
            assert rnd.context_positions is None
    frame = load_results(run_dir).frame
    assert frame["valid"].all() and (frame["ttft_s"] > frame["tpot_s"]).all() and frame["tpot_p90_s"].notna().all()
    shown = CliRunner().invoke(main, ["results", "show", str(run_dir)])
    assert shown.exit_code == 0 and "ttft_p90_s" in shown.stdout and "tpot_s" in shown.stdout, shown.output
    same = CliRunner().invoke(main, ["compare", str(run_dir), str(run_dir), "--json"])
    assert same.exit_code == 0, same.output
    rows = json.loads(same.stdout)["rows"]
    assert len(rows) == 2 and {r["phase"] for r in rows} == {"generate"}


# ------------------------------------------------------------------------------------------------ --dry-run

def test_bench_dry_run_h200_table_shows_parts_fit_and_the_time_source(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--dry-run", "--hardware", "h200", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert all(word in out for word in ("weights", "grads", "optimizer", "KV cache", "activations", "logits", "total"))
    assert out.count("no: skipped") >= 4 and "yes" in out            # the 8B's training batches 8 and 32 at least
    assert "datasheet roofline" in out and "hardware sheet: h200" in out and "docs/memory.md" in out
    assert not (tmp_path / "out").exists()                              # nothing run, nothing written


def test_bench_dry_run_json_is_the_plan():
    result = CliRunner().invoke(main, ["bench", "--dry-run", "--hardware", "h200", "--model", "llama-3-8b",
                                       "--phase", "train", "--batch-size", "1,8,32", "--seq-len", "2048", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    by_batch = {r["batch_size"]: r for r in plan["rows"]}
    assert by_batch[8]["action"] == by_batch[32]["action"] == "skip"
    assert "predicted_oom: needs" in by_batch[32]["reason"] and by_batch[32]["memory"]["total_bytes"] > 0
    assert plan["target"]["hardware"] == "h200" and plan["formulas"] == "docs/memory.md"


def test_bench_dry_run_no_memory_check_would_run_everything():
    result = CliRunner().invoke(main, ["bench", "--dry-run", "--hardware", "h200", "--no-memory-check", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {r["action"] for r in rows} == {"run"} and not all(r["fits"] for r in rows)


@pytest.mark.parametrize("args, message", [
    (["--dry-run", "--hardware", "h2000"], "unknown accelerator 'h2000'"),
    (["--dry-run", "--device", "cuda"], "name it: --hardware ID"),
    (["--hardware", "h200", "--model", "tiny"], "--hardware is for planning: add --dry-run"),
    (["--calibration", "c.json", "--model", "tiny"], "--calibration is for planning: add --dry-run"),
    (["--dry-run", "--resume", "RUN_DIR"], "--dry-run plans a new sweep"),
    (["--dry-run", "--hardware", "h200", "--calibration", "MISSING"], "cannot read calibration"),
])
def test_bench_dry_run_bad_input_is_one_line(tmp_path, monkeypatch, args, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    args = [{"RUN_DIR": str(run_dir), "MISSING": str(tmp_path / "none.json")}.get(a, a) for a in args]
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmecon: error: ") and message in lines[0], result.stderr
