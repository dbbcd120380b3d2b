"""``advisor bench``: a thin wrapper over :func:`advisor.run_bench`."""

from __future__ import annotations

import json

import click

import advisor
from advisor.cli.options import data_dir_option, dataset_option, device_option, format_option


def _sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated integers like 1,4,16,64, got {value!r}."
        ) from None
    if not sizes or any(k < 1 for k in sizes):
        raise click.BadParameter(f"population sizes must be integers >= 1, got {value!r}.")
    return sizes


@click.command()
@dataset_option(default="fashion-mnist")
@click.option(
    "--population",
    "populations",
    default="1,4,16,64",
    show_default=True,
    callback=_sizes,
    help="Population sizes K to time, comma-separated.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Time every row this many times and keep the fastest (for a noisy machine).",
)
@click.option(
    "--isolate/--in-process",
    default=True,
    show_default=True,
    help="Run each row in a fresh process, so that its peak memory is its own.",
)
@device_option
@data_dir_option
@format_option("text", "json")
def bench(
    dataset: str,
    populations: list[int],
    epochs: int,
    batch_size: int,
    repeats: int,
    isolate: bool,
    device: str,
    data_dir: str | None,
    fmt: str,
) -> None:
    """Time the DataLoader loop, the reference trainer and the population trainer.

    Each as seconds per model-epoch and as a fraction of the GEMM roofline; the last line
    says how the best population compares.

    \b
    advisor bench --dataset fashion-mnist --population 1,4,16,64 --epochs 1
    advisor bench --format json > bench.json
    """
    result = advisor.run_bench(
        dataset,
        populations,
        epochs=epochs,
        batch_size=batch_size,
        device=device,
        data_dir=data_dir,
        isolate=isolate,
        repeats=repeats,
        progress=lambda message: click.echo(message, err=True),
    )
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.to_text())
