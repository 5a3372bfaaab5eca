"""The `llmecon` command line: a thin layer over library functions.

Each module in this package holds one command (or one command group) and lists it in `COMMANDS`.
Modules import torch, transformers and pandas-heavy code inside their functions, never at the top,
so that `llmecon estimate` answers in well under a second.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from llmecon import __version__
from llmecon.errors import UserError


_SHOW_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def _usage_error(exc: click.UsageError) -> None:
    """A bad option value, a missing argument, an unknown command: one line too, and exit status 2."""
    if isinstance(exc, _SHOW_HELP):  # `llmecon estimate` with no subcommand prints its help
        raise exc
    hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    click.echo(f"llmecon: error: {exc.format_message()}{hint}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns a UserError anywhere below into one line on stderr and exit status 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # `llmecon --bogus`
            _usage_error(exc)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"llmecon: error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            _usage_error(exc)
        except KeyboardInterrupt:
            click.echo("llmecon: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="llmecon")
def main() -> None:
    """What will it cost to serve or train this model on that hardware? Measured, not guessed.

    \b
    Start here:
      llmecon run                                  bench this machine, calibrate, price, report
      llmecon model-info llama-3-8b --seq-len 2048
      llmecon estimate inference --model gpt3-175b --hardware a100-sxm4-40gb --usd-per-hour 2.4 --mfu 0.213
      llmecon article                              the 2023 article's tables, reproduced
    """


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register()
