"""``advisor recommend``: rank optimizers for a problem profile (no torch import)."""

from __future__ import annotations

import click

from advisor.cli.options import BYTES, COUNT, DURATION, device_option, format_option, rules_option
from advisor.profile import CONVEXITY_CHOICES, DOMAIN_CHOICES, GRADIENTS_CHOICES


@click.command()
@click.option("--params", type=COUNT, help="Trainable parameters of the model: 118k, 1.5M, 1e9.")
@click.option("--samples", type=COUNT, help="Training examples: 55k.")
@click.option(
    "--convexity", type=click.Choice(CONVEXITY_CHOICES), default="unknown", show_default=True,
    help="Shape of the loss.",
)  # fmt: skip
@click.option("--budget", type=DURATION, help="Wall-clock budget: 90s, 10m, 2h.")
@click.option("--memory", type=BYTES, help="Memory available for training: 8GB, 16GiB.")
@click.option("--batch-size", type=COUNT, help="Minibatch size (the LR ranges scale with it).")
@click.option(
    "--sparse-gradients/--no-sparse-gradients", default=False, show_default=True,
    help="Gradients are sparse (embeddings, sparse features).",
)  # fmt: skip
@click.option(
    "--gradients", type=click.Choice(GRADIENTS_CHOICES), default="unknown", show_default=True,
    help="Observed gradient behaviour.",
)  # fmt: skip
@click.option("--trials", type=COUNT, help="Tuning budget in trials (training runs).")
@click.option(
    "--domain", type=click.Choice(DOMAIN_CHOICES), default="unknown", show_default=True,
    help="Kind of data.",
)  # fmt: skip
@device_option
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show the best N only.")
@rules_option
@format_option("text", "json", "markdown")
def recommend(
    params: int | None,
    samples: int | None,
    convexity: str,
    budget: float | None,
    memory: int | None,
    batch_size: int | None,
    sparse_gradients: bool,
    gradients: str,
    trials: int | None,
    domain: str,
    device: str,
    top: int | None,
    rules_dirs: tuple[str, ...],
    fmt: str,
) -> None:
    """Rank every optimizer for your problem, with reasons, search spaces and advice.

    \b
    advisor recommend --params 118k --samples 55k --convexity nonconvex --budget 10m
    advisor recommend --params 1e9 --memory 8GB --format json
    """
    from advisor.profile import Profile
    from advisor.recommender import recommend as run

    profile = Profile(
        params=params,
        samples=samples,
        convexity=convexity,
        budget=budget,
        memory=memory,
        device=device,
        batch_size=batch_size,
        sparse_gradients=sparse_gradients,
        gradients=gradients,
        trials=trials,
        domain=domain,
    )
    rec = run(profile, rules_dirs=rules_dirs, top=top)
    output = {"json": rec.to_json, "markdown": rec.to_markdown}.get(fmt, rec.to_text)()
    click.echo(output.rstrip("\n"))
