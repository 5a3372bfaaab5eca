"""`llmecon calibrations`: the published references and the user's files in a table or JSON, the cross-hardware
check, a user's own published sheet fitted into a reference file that estimates then use."""

from __future__ import annotations

import json

from click.testing import CliRunner

from llmecon.calibration import reference
from llmecon.cli import main

from llmecon_test_published_points import ENGINE, decode_point, sheet


def run(*args, env=None):
    return CliRunner().invoke(main, ["calibrations", *args], env=env)


def test_calibrations_lists_the_builtin_published_fits_with_their_sources():
    out = run("--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    fitted = [r for r in rows if not r["refused"]]
    assert fitted and all(r["basis"] == "published" and r["sources"] for r in fitted)
    text = run("--sources")
    assert text.exit_code == 0 and "published" in text.output and "source: https://" in text.output


def test_calibrations_lists_a_users_files_beside_them(tmp_path):
    calib = next(iter(reference.references().values()))
    (tmp_path / "runs").mkdir()
    calib.model_copy(update={"basis": "measured", "engine": None}).save(tmp_path / "runs" / "mine.json")
    (tmp_path / "runs" / "other.json").write_text('{"kind": "something-else"}')
    rows = json.loads(run(str(tmp_path), "--json").stdout)
    mine = [r for r in rows if r["basis"] == "measured"]
    assert mine and {r["name"] for r in mine} == {str(tmp_path / "runs" / "mine.json")}
    out = run(str(tmp_path / "missing.json"))
    assert out.exit_code == 2 and out.stderr.strip().endswith("no such file or folder")


def test_fit_published_writes_a_reference_file_that_estimates_use(tmp_path):
    points = sheet(tmp_path, [decode_point(b, c) for b, c in ((1, 128), (8, 1024), (32, 2048))])
    target = tmp_path / "mine.json"
    made = run("--fit-published", str(target), "--published-sheet", str(points))
    assert made.exit_code == 0, made.output
    env = {reference.ENV_VAR: str(target)}
    listed = json.loads(run("--json", env=env).stdout)
    assert any(r["name"] == ENGINE and r["hardware"] == "h100-sxm" for r in listed)
    est = CliRunner().invoke(main, ["estimate", "inference", "--model", "llama-2-7b", "--hardware", "h100-sxm",
                                    "--usd-per-hour", "2", "--engine", ENGINE, "--json"], env=env)
    assert est.exit_code == 0, est.output
    assert json.loads(est.stdout)["basis"] == "published"


def test_cross_hardware_prints_a_markdown_table():
    out = run("--cross-hardware", "--markdown")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("| phase | check | fitted on") and len(lines) > 3
    assert any("| transfer |" in line for line in lines)
