"""The `llmecon` command line: a thin layer over the library.

Each command lives in its own module and is imported only when it runs (`COMMANDS` maps a name to its
module and a one-line summary for `llmecon --help`; a test keeps each summary equal to the first line of the
command's own help), so `llmecon --help` imports no library module and `llmecon estimate` no torch, pandas
or matplotlib. A command module parses options, makes one library call and prints.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from llmecon._version import __version__
from llmecon.errors import UserError

# name -> (module, one-line summary): the order of `llmecon --help`
COMMANDS = {
    "run": ("llmecon.cli.run", "Bench this machine, calibrate, print the cost table, write the report."),
    "bench": ("llmecon.cli.bench", "Benchmark prefill, decode and training of real models on this machine."),
    "results": ("llmecon.cli.results", "Look at measured runs (written by `llmecon bench`)."),
    "calibrate": ("llmecon.cli.calibrate", "Fit time per step = F/(P·η_compute) + B/(W·η_memory) + t0 + L·τ per "
                                           "(hardware, dtype, phase)."),
    "calibrations": ("llmecon.cli.calibrations", "List calibrations: the published references built in, and yours."),
    "compare": ("llmecon.cli.compare", "Compare NEW against BASE (run folders or folders of runs), "
                                       "configuration by configuration."),
    "report": ("llmecon.cli.report", "Write OUTPUT/index.html: figures and tables about measured runs."),
    "plan": ("llmecon.cli.plan", "Plan a deployment: the cheapest configuration that meets your targets."),
    "estimate": ("llmecon.cli.estimate", "Price inference or training of a model on an accelerator."),
    "article": ("llmecon.cli.article", "The article's tables (\"The Economics of Large Language Models\", "
                                       "Sunyan, Jan 2023), recomputed."),
    "model-info": ("llmecon.cli.model_info", "Parameters, FLOPs (four conventions side by side) and bytes of MODEL."),
    "hardware": ("llmecon.cli.hardware", "List accelerators: dense peak per dtype, memory, bandwidth, TDP."),
    "prices": ("llmecon.cli.prices", "List cloud prices: USD per instance-hour and per accelerator-hour."),
}

_SHOW_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def _usage_error(exc: click.UsageError) -> None:
    """A bad option value, a missing argument, an unknown command: one line too, and exit status 2."""
    if isinstance(exc, _SHOW_HELP):  # `llmecon estimate` with no subcommand prints its help
        raise exc
    hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    click.echo(f"llmecon: error: {exc.format_message()}{hint}", err=True)
    sys.exit(2)


def _first_rank() -> bool:
    """False in a torchrun job's ranks but 0: every rank meets the same bad input, one of them says so."""
    return os.environ.get("RANK", "0") == "0" or "WORLD_SIZE" not in os.environ


class ErrorsInOneLine(click.Group):
    """A group that turns a UserError (or a usage error) anywhere below into one line on stderr, exit 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # `llmecon --bogus`
            _usage_error(exc)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if _first_rank():
                click.echo(f"llmecon: error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            _usage_error(exc)
        except KeyboardInterrupt:
            click.echo("llmecon: interrupted", err=True)
            sys.exit(130)


class _Main(ErrorsInOneLine):
    """The top-level group: commands are imported when they run, listed from `COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name][0]).COMMAND

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_module, summary) in COMMANDS.items()])


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="llmecon")
def main() -> None:
    """What will it cost to serve or train this model on that hardware? Measured, not guessed.

    \b
    Start here:
      llmecon run                                  bench this machine, calibrate, price, report
      llmecon model-info llama-3-8b --seq-len 2048
      llmecon estimate inference --model gpt3-175b --hardware a100-sxm4-40gb --usd-per-hour 2.4 --mfu 21.3%
      llmecon article                              the 2023 article's tables, reproduced
    """
