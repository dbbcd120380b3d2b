"""Options shared by several commands, defined once (as pip-tools does) and used as decorators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from advisor.core import units
from advisor.core.devices import DEVICE_CHOICES
from advisor.core.errors import InvalidValueError

F = TypeVar("F", bound=Callable[..., Any])

device_option = click.option(
    "--device",
    type=click.Choice(DEVICE_CHOICES),
    default="auto",
    show_default=True,
    help="Where to train: auto picks CUDA, then MPS, then the CPU.",
)


def format_option(*choices: str, default: str = "text") -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help="Output format: text for people, json for scripts (stable keys).",
    )


seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of every random source."
)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Folder holding dataset files (else $ADVISOR_DATA, then ~/.cache/advisor).",
)


def dataset_option(default: str = "mnist-5k") -> Callable[[F], F]:
    return click.option(
        "--dataset",
        default=default,
        show_default=True,
        help="mnist, mnist-5k (embedded, offline), fashion-mnist, or idx:DIR.",
    )


class _HumanSize(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A click type over one of :mod:`advisor.core.units`' parsers (``118k``, ``10m``, ``8GB``)."""

    def __init__(self, name: str, parser: str) -> None:
        self.name = name
        self._parser = parser

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value

        what = param.name.replace("_", " ") if param and param.name else self.name
        try:
            return getattr(units, self._parser)(value, what)
        except InvalidValueError as exc:
            self.fail(str(exc), param, ctx)


#: A positive count: ``118k``, ``1.5M``, ``1e9``.
COUNT = _HumanSize("count", "parse_count")
#: A duration in seconds: ``90s``, ``10m``, ``2h``.
DURATION = _HumanSize("duration", "parse_duration")
#: A memory size in bytes: ``8GB``, ``16GiB``.
BYTES = _HumanSize("size", "parse_bytes")

rules_option = click.option(
    "--rules",
    "rules_dirs",
    multiple=True,
    type=click.Path(exists=True, path_type=str),
    help="A directory (or .toml file) of extra rules; a rule with a built-in id overrides it. Repeatable.",
)
