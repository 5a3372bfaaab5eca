"""`llmecon results list|show` through click's test runner."""

import csv
import io
import json

import pytest
from click.testing import CliRunner
from results_fixtures import make_record, make_run

from llmecon.cli import main
from llmecon.results import columns


@pytest.fixture
def out(tmp_path):
    """Two runs: an H200 with a prefill and an OOM, an unknown device with one decode row."""
    out = tmp_path / "results"
    make_run(out, [make_record("prefill-b1"), make_record("prefill-b64", batch_size=64, status="oom", samples=())])
    make_run(out, [make_record("decode-b8", phase="decode", tokens=8, flops=1e10, bytes_step=2e10, model="llama")],
             hardware_id=None)  # fmt: skip
    return out


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_list(out):
    result = invoke("results", "list", str(out))
    assert result.exit_code == 0, result.output
    assert "NVIDIA H200" in result.output and "1/2" in result.output and "1/1" in result.output
    as_json = json.loads(invoke("results", "list", str(out), "--json").stdout)
    assert sorted((r["ok"], r["total"], tuple(r["models"])) for r in as_json) == [(1, 1, ("llama",)), (1, 2, ("tiny",))]


def test_show_table(out):
    result = invoke("results", "show", str(out))
    assert result.exit_code == 0, result.output
    for header in ("phase", "status", "batch_size", "seq_len", "tokens_per_s", "mfu_executed",
                   "mfu_article_vs_ceiling"):
        assert header in result.stdout
    assert "51.2 ktok/s" in result.stdout  # 512 tokens in 10 ms
    assert "oom" in result.stdout and "3 rows, 2 valid" in result.stdout


def test_show_csv_has_every_column(out):
    result = invoke("results", "show", str(out), "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == columns() and len(rows) == 3
    prefill = next(r for r in rows if r["config_id"] == "prefill-b1")
    assert float(prefill["tokens_per_s"]) == pytest.approx(51200)


def test_show_json_is_strict_with_nulls(out):
    result = invoke("results", "show", str(out), "--format", "json")
    rows = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    by_id = {r["config_id"]: r for r in rows}
    assert by_id["prefill-b64"]["tokens_per_s"] is None and by_id["prefill-b64"]["new_tokens"] is None
    assert by_id["decode-b8"]["mfu_executed"] is None and by_id["decode-b8"]["hardware_id"] is None
    assert by_id["decode-b8"]["bandwidth_util_vs_ceiling"] == pytest.approx(0.5)
    assert by_id["prefill-b1"]["valid"] is True and by_id["prefill-b1"]["batch_size"] == 1


def test_show_selected_columns(out):
    result = invoke("results", "show", str(out), "--format", "csv", "--columns", "phase, batch_size,mfu_executed")
    assert result.stdout.splitlines()[0] == "phase,batch_size,mfu_executed"
    bad = invoke("results", "show", str(out), "--columns", "phase,nope")
    assert bad.exit_code == 2 and bad.stderr.startswith("llmecon: error: unknown column(s) nope")


def test_problems_go_to_stderr_and_strict_fails(out):
    run_dir = next(p for p in out.iterdir() if (p / "records" / "decode-b8.json").exists())
    (run_dir / "records" / "broken.json").write_text('{"schema_version": 1, "run_')
    result = invoke("results", "show", str(out), "--format", "csv")
    assert result.exit_code == 0 and len(list(csv.DictReader(io.StringIO(result.stdout)))) == 3
    assert result.stderr.count("llmecon: warning:") == 1 and "broken.json: unreadable JSON" in result.stderr
    strict = invoke("results", "show", str(out), "--strict")
    assert strict.exit_code == 2 and "broken.json" in strict.stderr


@pytest.mark.parametrize("command", ["show", "list"])
def test_bad_path_is_one_line_and_exit_2(tmp_path, command):
    result = invoke("results", command, str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"llmecon: error: no such results folder: {tmp_path / 'nope'}"]
    assert result.stdout == ""
