"""The command line as a whole: usage errors are one line and exit 2; help lists every command from its own
help text; commands are imported only when they run."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from llmecon._version import __version__
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


@pytest.mark.parametrize("args, message", [
    (["model-info", "tiny", "--seq-len", "abc"], "Invalid value for '--seq-len'"),
    (["bench", "--model", "tiny", "--dtype", "fp8"], "Invalid value for '--dtype'"),
    (["estimate", "inference", "--hardware", "h100-sxm"], "Missing option '--model'"),
    (["estimate", "nosuch"], "No such command 'nosuch'"),
    (["hardware", "--bogus"], "--bogus"),
])
def test_main_click_usage_errors_are_one_line_on_stderr_naming_the_problem(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmecon: error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_main_usage_error_points_at_the_commands_help():
    result = CliRunner().invoke(main, ["estimate", "inference", "--hardware", "h100-sxm"], prog_name="llmecon")
    assert result.stderr.strip().endswith("(see `llmecon estimate inference --help`)"), result.stderr


def test_main_help_lists_every_command_with_its_summary():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name, (_module, summary) in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)}\s+{re.escape(summary[:30])}", result.output, re.M), name


def test_main_version_names_the_program_and_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"llmecon, version {__version__}"


def test_main_a_group_without_subcommand_shows_its_help():
    assert "inference" in CliRunner().invoke(main, ["estimate"]).output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_main_command_summary_is_the_first_line_of_its_help(name):
    module, summary = COMMANDS[name]
    command = importlib.import_module(module).COMMAND
    assert command.name == name
    assert COMMANDS[name][1] == summary == command.help.splitlines()[0]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_main_every_command_help_shows_an_example(name):
    out = CliRunner().invoke(main, [name, "--help"]).output
    subcommands = getattr(importlib.import_module(COMMANDS[name][0]).COMMAND, "commands", {})
    for sub in subcommands:                       # groups: each subcommand's help has its own example
        sub_help = CliRunner().invoke(main, [name, sub, "--help"]).output
        assert f"llmecon {name} {sub}" in sub_help, f"`llmecon {name} {sub} --help` shows no example"
    assert f"llmecon {name}" in out.split("Options:")[0] or subcommands


@pytest.mark.slow
def test_main_help_imports_no_command_and_a_command_only_its_own():
    code = ("import sys; from click.testing import CliRunner; from llmecon.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.startswith('llmecon.'))); "
            "r = CliRunner().invoke(main, ['hardware', '--json']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.startswith('llmecon.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    after_help, after_hardware = out.stdout.strip().splitlines()
    assert after_help == "['llmecon._version', 'llmecon.cli', 'llmecon.errors']"
    assert after_hardware == "['llmecon.cli._output', 'llmecon.cli.hardware']"
