"""Options shared by several commands, defined once (as pip-tools does) and used as decorators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from advisor.devices import DEVICE_CHOICES

F = TypeVar("F", bound=Callable[..., Any])

device_option = click.option(
    "--device",
    type=click.Choice(DEVICE_CHOICES + ("cuda:0", "cuda:1")),
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
