"""``advisor tune`` and ``advisor report``: thin wrappers over :func:`advisor.tune` and
:func:`advisor.tuning.result.build_result`."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

import click

import advisor
from advisor.cli.options import (
    DURATION,
    data_dir_option,
    dataset_option,
    device_option,
    format_option,
    rules_option,
    seed_option,
)
from advisor.core.errors import UnknownNameError
from advisor.data.task import DIRECTIONS, LOSSES, METRICS, TASK_KINDS
from advisor.knowledge.optimizers import get_optimizer_info

POSITIVE = click.IntRange(min=1)


def _data(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``MODULE:NAME`` imported; a function is called for the data it returns."""
    if not value:
        return None
    if ":" not in value:
        raise click.BadParameter(
            f"expected MODULE:NAME (e.g. examples.regression:data), got {value!r}."
        )
    module_name, attr = value.split(":", 1)
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot import {value!r}: {exc}") from exc
    return found() if inspect.isfunction(found) else found


def _optimizers(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if not value:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return [get_optimizer_info(n).name for n in names]
    except UnknownNameError as exc:
        raise click.BadParameter(str(exc)) from exc


storage_option = click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="Optuna storage URL shared by workers (postgresql://user:pass@host/db, sqlite:///f.db, "
    "journal:PATH). Default: a journal file in --out.",
)
study_option = click.option(
    "--study", default=None, help="Study name; the same name continues a study."
)


@click.command()
@dataset_option()
@click.option(
    "--model",
    default=None,
    metavar="MODULE:FACTORY",
    help="Your own model factory (default: the seed MLP 784-128-128-10).",
)
@click.option(
    "--data",
    callback=_data,
    default=None,
    metavar="MODULE:NAME",
    help="Your own data instead of --dataset: NAME is (X_train, y_train[, X_test, y_test]), a "
    "torch Dataset, or a function returning one of them or a DataLoader factory loader(split). "
    "Read once into memory.",
)
@click.option(
    "--task",
    type=click.Choice(TASK_KINDS),
    default=None,
    help="What the model learns [default: classification].",
)
@click.option(
    "--loss",
    default=None,
    metavar="NAME|MODULE:FN",
    help=f"Training loss: {', '.join(LOSSES)}, or MODULE:FN (outputs, targets) -> scalar "
    "[default: from --task].",
)
@click.option(
    "--metric",
    default=None,
    metavar="NAME|MODULE:FN",
    help=f"Judging metric: {', '.join(METRICS)}, or MODULE:FN (outputs, targets) -> float with "
    "--direction [default: from --task].",
)
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default=None,
    help="Whether a larger metric is better [default: maximize].",
)
@click.option(
    "--objective",
    default=None,
    metavar="MODULE:FN",
    help="Your own training loop: FN(trial) trains with trial.optimizer(params) and "
    "trial.scheduler(optimizer, steps), calls trial.report(epoch, value), returns the metric.",
)
@click.option(
    "--budget",
    type=DURATION,
    default=None,
    metavar="TIME",
    help="Wall time for everything, e.g. 90s, 5m, 2h [default: 1m on mnist-5k, 5m otherwise].",
)
@click.option(
    "--trials",
    type=POSITIVE,
    default=None,
    help="Stop the search after this many finished trials (complete, pruned or diverged).",
)
@click.option("--epochs", type=POSITIVE, default=5, show_default=True, help="Epochs per trial.")
@click.option("--batch-size", type=POSITIVE, default=128, show_default=True)
@click.option(
    "--population",
    type=POSITIVE,
    default=None,
    help="Trials trained at once [default: from the device].",
)
@click.option(
    "--candidates",
    type=POSITIVE,
    default=4,
    show_default=True,
    help="How many of the recommended optimizers to search.",
)
@click.option(
    "--optimizers",
    callback=_optimizers,
    default=None,
    metavar="A,B,...",
    help="Search these optimizers instead of the recommended ones.",
)
@click.option(
    "--finalists",
    type=POSITIVE,
    default=3,
    show_default=True,
    help="Best trials re-run on several seeds.",
)
@click.option(
    "--seeds", type=POSITIVE, default=5, show_default=True, help="Seeds of the finalist stage."
)
@device_option
@seed_option
@study_option
@storage_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write report.md, result.json and PNG plots here (and the study file) [default: advisor-runs/].",
)
@rules_option
@data_dir_option
@format_option("text", "json", "markdown")
@click.option(
    "--workers",
    type=POSITIVE,
    default=1,
    show_default=True,
    help="Worker processes on this machine sharing the study.",
)
@click.option(
    "--threads",
    type=POSITIVE,
    default=None,
    help="CPU threads per worker [default: cores / workers].",
)
@click.option(
    "--probe-lr/--no-probe-lr",
    default=False,
    show_default=True,
    help="Narrow each candidate's learning-rate range by an LR range test (Smith 2017) first.",
)
@click.option("--quiet", is_flag=True, help="No progress line.")
def tune(fmt: str, quiet: bool, **kwargs: Any) -> None:
    """Tune the optimizer, learning rate and momentum by really training the model.

    \b
    Candidates come from the rules (advisor recommend); Optuna searches them in
    populations trained at once, prunes by successive halving, and re-runs the best
    on fresh seeds beside the default Adam(lr=1e-3). The winner is chosen on
    validation accuracy and reported on the held-out test set.

    \b
    advisor tune                                     # embedded MNIST digits, ~1 minute
    advisor tune --dataset fashion-mnist --budget 5m --out runs/fmnist
    advisor tune --model examples.small_cnn:small_cnn --dataset fashion-mnist
    advisor tune --model examples.regression:mlp --data examples.regression:data --task regression
    advisor tune --objective examples.plain_loop:objective --budget 2m
    advisor tune --study s1 --storage postgresql://u:p@db/optuna   # on each machine
    """
    try:
        result = advisor.tune(**kwargs, progress=not quiet)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: finished trials are saved; rerun the same command to continue.", err=True
        )
        sys.exit(130)
    _emit(result, fmt)


def _emit(result: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(result.to_json())
    elif fmt == "markdown":
        click.echo(result.to_markdown())
    else:
        click.echo(result.to_text())


@click.command()
@study_option
@storage_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The folder `advisor tune --out` wrote (its study file is read when there is no "
    "--storage; default advisor-runs/). Given, report.md, result.json and plots are written there.",
)
@format_option("text", "json", "markdown")
def report(study: str | None, storage: str | None, out: Path | None, fmt: str) -> None:
    """Rebuild the report of a study from its storage alone (no training).

    \b
    advisor report --study mnist-5k-20261125-101500-3fa2
    advisor report --study s1 --storage postgresql://u:p@db/optuna --out runs/s1
    """
    result = advisor.load_result(study, storage=storage, out=out)
    if out is not None:
        advisor.write_report(result, out)
    _emit(result, fmt)
