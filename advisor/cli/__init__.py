"""The ``advisor`` command line: a thin layer over the Python API.

Every command lives in its own module and is loaded only when used, so ``advisor --help``
starts without importing torch or optuna. Any :class:`advisor.core.errors.AdvisorError` becomes
one line on stderr and exit code 2 (a traceback only with ``--debug``); a storage that went
away mid-run (:class:`advisor.core.errors.StorageUnavailableError`) exits 3 instead, so that
scripts can tell "wait and rerun" from "fix the command".
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from advisor import __version__
from advisor.core.clock import mark_command_start
from advisor.core.errors import AdvisorError, StorageUnavailableError

# command name -> "module:attribute"; each module owns one command (or a group)
_COMMANDS = {
    "recommend": "advisor.cli.recommend_cmd:recommend",
    "rules": "advisor.cli.rules_cmd:rules",
    "datasets": "advisor.cli.datasets_cmd:datasets",
    "tune": "advisor.cli.tune_cmd:tune",
    "report": "advisor.cli.tune_cmd:report",
    "bench": "advisor.cli.bench_cmd:bench",
}


class UsageFailure(click.ClickException):
    """An AdvisorError shown as one line, exit code 2 (like click's own usage errors)."""

    exit_code = 2


class StorageGone(click.ClickException):
    """The storage went away mid-run: one line, exit code 3 (rerun when it is back)."""

    exit_code = 3


class AdvisorGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdvisorError as exc:
            if ctx.params.get("debug"):
                raise
            if isinstance(exc, StorageUnavailableError):
                raise StorageGone(str(exc)) from exc
            raise UsageFailure(str(exc)) from exc


@click.group(cls=AdvisorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="advisor")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Which optimizer, with which learning rate and momentum, for your PyTorch model?

    \b
    advisor recommend --params 118k --samples 55k --convexity nonconvex --budget 10m
    advisor tune                      # tune on the embedded MNIST digits
    advisor tune --dataset fashion-mnist --budget 5m --out runs/fmnist
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv``: the arguments, default the program's own)."""
    if argv is None:  # this process is the command: budgets count from its start
        mark_command_start()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="advisor")
