"""The command line as a whole: usage errors are one line and exit 2; help still works."""

from click.testing import CliRunner

from llmecon.cli import main


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("llmecon: error:"), result.output
    assert "Traceback" not in result.output


def test_unknown_top_level_option_is_one_line():
    _one_line_error(CliRunner().invoke(main, ["--bogus"]))


def test_unknown_command_is_one_line():
    _one_line_error(CliRunner().invoke(main, ["nosuch"]))


def test_bad_option_value_in_a_subcommand_is_one_line():
    _one_line_error(CliRunner().invoke(main, ["model-info", "tiny", "--seq-len", "abc"]))


def test_help_and_version_still_work():
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    assert "llmecon" in runner.invoke(main, ["--version"]).output
    assert "inference" in runner.invoke(main, ["estimate"]).output
