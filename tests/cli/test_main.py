"""The command line as a whole: usage errors are one line and exit 2; help lists every command from its own
help text; commands are imported only when they run."""

from __future__ import annotations

import importlib

import pytest
from click.testing import CliRunner

from llmecon.cli import COMMANDS, main


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("llmecon: error:"), result.output
    assert "Traceback" not in result.output


def test_main_unknown_top_level_option_is_one_line():
    _one_line_error(CliRunner().invoke(main, ["--bogus"]))


def test_main_unknown_command_is_one_line():
    _one_line_error(CliRunner().invoke(main, ["nosuch"]))


def test_main_bad_option_value_in_a_subcommand_is_one_line():
    _one_line_error(CliRunner().invoke(main, ["model-info", "tiny", "--seq-len", "abc"]))
    _one_line_error(CliRunner().invoke(main, ["estimate", "inference", "--model", "tiny", "--bogus"]))


def test_main_help_and_version_still_work():
    runner = CliRunner()
    help_text = runner.invoke(main, ["--help"]).output
    assert all(name in help_text for name in COMMANDS)
    assert "llmecon" in runner.invoke(main, ["--version"]).output
    assert "inference" in runner.invoke(main, ["estimate"]).output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_main_command_summary_is_the_first_line_of_its_help(name):
    module, summary = COMMANDS[name]
    command = importlib.import_module(module).COMMAND
    assert command.name == name
    assert summary == command.help.strip().splitlines()[0]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_main_every_command_help_shows_an_example(name):
    out = CliRunner().invoke(main, [name, "--help"]).output
    subcommands = getattr(importlib.import_module(COMMANDS[name][0]).COMMAND, "commands", {})
    for sub in subcommands:                       # groups: each subcommand's help has its own example
        sub_help = CliRunner().invoke(main, [name, sub, "--help"]).output
        assert f"llmecon {name} {sub}" in sub_help, f"`llmecon {name} {sub} --help` shows no example"
    assert f"llmecon {name}" in out.split("Options:")[0] or subcommands
