"""`llmecon results list|show` through click's test runner."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from llmecon.cli import main
from llmecon.records.load import columns


@pytest.fixture
def out(tmp_path, plant):
    """Two runs: an H200 with a prefill and an OOM, an unknown device with one decode row."""
    out = tmp_path / "results"
    plant.run(out, [plant.record("prefill-b1", tokens=512),
                    plant.record("prefill-b64", batch_size=64, status="oom", samples=())])
    plant.run(out, [plant.record("decode-b8", phase="decode", tokens=8, flops=1e10, bytes_step=2e10, model="gpt2")],
              hardware_id=None, name="Foo X1")
    return out


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_results_list(out):
    result = invoke("results", "list", str(out))
    assert result.exit_code == 0, result.output
    assert "NVIDIA H200" in result.output and "1/2" in result.output and "1/1" in result.output
    as_json = json.loads(invoke("results", "list", str(out), "--json").stdout)
    assert sorted((r["ok"], r["total"], tuple(r["models"])) for r in as_json) == [(1, 1, ("gpt2",)), (1, 2, ("tiny",))]


def test_cli_results_show_table(out):
    result = invoke("results", "show", str(out))
    assert result.exit_code == 0, result.output
    for header in ("phase", "status", "batch_size", "seq_len", "tokens_per_s", "mfu_executed",
                   "mfu_executed_vs_ceiling", "reason / warnings"):
        assert header in result.stdout
    assert "mfu_article" not in result.stdout           # a convention that counts work not run: not by default
    assert "51.2 ktok/s" in result.stdout  # 512 tokens in 10 ms
    assert "oom" in result.stdout and "3 rows, 2 valid" in result.stdout


def test_cli_results_show_csv_has_every_column(out):
    result = invoke("results", "show", str(out), "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == columns() and len(rows) == 3
    prefill = next(r for r in rows if r["config_id"] == "prefill-b1")
    assert float(prefill["tokens_per_s"]) == pytest.approx(51200)


def test_cli_results_show_json_is_strict_with_nulls(out):
    result = invoke("results", "show", str(out), "--format", "json")
    rows = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    by_id = {r["config_id"]: r for r in rows}
    assert by_id["prefill-b64"]["tokens_per_s"] is None and by_id["prefill-b64"]["new_tokens"] is None
    assert by_id["decode-b8"]["mfu_executed"] is None and by_id["decode-b8"]["hardware_id"] is None
    assert by_id["decode-b8"]["bandwidth_util_vs_ceiling"] == pytest.approx(0.5)
    assert by_id["prefill-b1"]["valid"] is True and by_id["prefill-b1"]["batch_size"] == 1


def test_cli_results_show_selected_columns(out):
    result = invoke("results", "show", str(out), "--format", "csv", "--columns", "phase, batch_size,mfu_executed")
    assert result.stdout.splitlines()[0] == "phase,batch_size,mfu_executed"
    bad = invoke("results", "show", str(out), "--columns", "phase,nope")
    assert bad.exit_code == 2 and bad.stderr.startswith("llmecon: error: unknown column(s) nope")


def test_cli_results_problems_go_to_stderr_and_strict_fails(out):
    run_dir = next(p for p in out.iterdir() if (p / "records" / "decode-b8.json").exists())
    (run_dir / "records" / "broken.json").write_text('{"schema_version": 2, "run_')
    result = invoke("results", "show", str(out), "--format", "csv")
    assert result.exit_code == 0 and len(list(csv.DictReader(io.StringIO(result.stdout)))) == 3
    assert result.stderr.count("llmecon: warning:") == 1 and "broken.json: unreadable JSON" in result.stderr
    strict = invoke("results", "show", str(out), "--strict")
    assert strict.exit_code == 2 and "broken.json" in strict.stderr


@pytest.mark.parametrize("command", ["show", "list"])
def test_cli_results_bad_path_is_one_line_and_exit_2(tmp_path, command):
    result = invoke("results", command, str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"llmecon: error: no such results folder: {tmp_path / 'nope'}"]
    assert result.stdout == ""


def test_cli_results_show_marks_an_mfu_above_100_percent(tmp_path, plant):
    """The article's 2N counts the embedding lookup, which runs no matmul: for a tiny model its MFU exceeds 100 %.
    Never printed unexplained: not in the default table, and marked with the reason when asked for."""
    flops = {"article": 2e13, "non_embedding": 5e12, "causal": 4e12, "executed": 5e12}
    run = plant.run(tmp_path, [plant.record("c1", flops=flops)])
    table = invoke("results", "show", str(run))
    assert table.exit_code == 0 and "mfu_article" not in table.stdout
    asked = invoke("results", "show", str(run), "--columns", "phase,mfu_article_vs_ceiling,mfu_executed_vs_ceiling")
    assert "250.0%*" in asked.stdout and "62.5%" in asked.stdout and "62.5%*" not in asked.stdout
    assert "counts work that did not run" in asked.stdout


def test_cli_results_show_says_why_an_executed_mfu_above_100_percent_is_invalid(tmp_path, plant):
    """The executed convention is bounded: a row above 100 % is invalid, and the default table says why."""
    run = plant.run(tmp_path, [plant.record("c1", flops=1.2e13), plant.record("c2", batch_size=2)])  # 1.2 PFLOP/s on an H200
    table = invoke("results", "show", str(run))
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())
    assert "invalid" in text and "mfu_executed_out_of_range" in text and "2 rows, 1 valid" in text
    asked = invoke("results", "show", str(run), "--format", "json")
    rows = {r["config_id"]: r for r in json.loads(asked.stdout)}
    assert rows["c1"]["reason"].startswith("mfu_executed_out_of_range") and rows["c2"]["reason"] is None


def test_cli_results_default_folder_is_where_bench_and_run_write(tmp_path, monkeypatch, plant):
    monkeypatch.chdir(tmp_path)
    empty = invoke("results", "list")
    assert empty.exit_code == 0 and "no runs in llmecon-out yet" in empty.stderr
    assert invoke("results", "show", "--format", "json").stdout.strip() == "[]"
    plant.run(tmp_path / "llmecon-out" / "runs", [plant.record("c1")])
    listed = json.loads(invoke("results", "list", "--json").stdout)
    assert len(listed) == 1 and listed[0]["models"] == ["tiny"]
    assert len(json.loads(invoke("results", "show", "--format", "json").stdout)) == 1


def test_cli_results_empty_folder_is_the_same_answer_for_list_and_show(tmp_path):
    (tmp_path / "empty").mkdir()
    for command in ("list", "show"):
        result = invoke("results", command, str(tmp_path / "empty"))
        assert result.exit_code == 0 and "no runs in" in result.stderr, (command, result.output)
    assert invoke("results", "show", str(tmp_path / "empty"), "--format", "json").stdout.strip() == "[]"
    assert json.loads(invoke("results", "list", str(tmp_path / "empty"), "--json").stdout) == []


def test_cli_results_empty_default_folder_says_no_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llmecon-out" / "runs").mkdir(parents=True)       # created, nothing measured yet
    for command in ("list", "show"):
        result = invoke("results", command)
        assert result.exit_code == 0 and "no runs in llmecon-out" in result.stderr, (command, result.output)
        assert result.stdout == ""
