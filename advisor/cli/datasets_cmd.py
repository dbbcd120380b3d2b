"""``advisor datasets``: a thin wrapper over :func:`advisor.data.datasets.list_datasets`."""

from __future__ import annotations

import json

import click

from advisor.cli.options import data_dir_option, format_option
from advisor.data.datasets import get_dataset_info, list_datasets, load_dataset


@click.command()
@click.argument("name", required=False)
@data_dir_option
@click.option(
    "--download",
    is_flag=True,
    help="Fetch NAME now (checked against its MD5s) if it is missing or corrupt.",
)
@format_option("text", "json")
def datasets(name: str | None, data_dir: str | None, download: bool, fmt: str) -> None:
    """List the datasets, whether each is here, where, and its train/val/test sizes.

    \b
    advisor datasets                    # every dataset
    advisor datasets idx:~/data/kmnist  # any folder with the four IDX files
    advisor datasets mnist --download   # fetch MNIST into ~/.cache/advisor/mnist
    """

    if download:
        if name is None:
            raise click.UsageError(
                "--download needs a dataset NAME, e.g. 'advisor datasets mnist --download'."
            )
        load_dataset(name, data_dir=data_dir, download=True)
    infos = [get_dataset_info(name, data_dir)] if name else list_datasets(data_dir)
    if fmt == "json":
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    rows = [["name", "here", "train", "val", "test", "where"]]
    for info in infos:
        where = info.location or ("downloads on first use" if info.downloadable else "not found")
        here = "yes" if info.available else "no"
        sizes = [f"{n:,}" for n in (info.n_train, info.n_val, info.n_test)]
        rows.append([info.name, here, *sizes, where])
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:5], widths[2:5], strict=True)]
        click.echo("  ".join(cells + [row[5]]))
    if name is None:
        click.echo("\nAlso: idx:DIR, any folder holding the four IDX files (gzipped or not).")
