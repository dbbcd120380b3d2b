"""``advisor recommend``: rank optimizers for a problem profile, given or measured.

Without ``--model`` nothing is imported beyond the rules (no torch). With ``--model`` the
profile is measured (:func:`advisor.probe.measure.profile_model`); options given on the command
line override measured values; ``--probe-lr`` narrows each shown candidate's ``lr`` range by
an LR range test (:mod:`advisor.probe.lr_range`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import advisor
from advisor.cli.options import (
    BYTES,
    COUNT,
    DURATION,
    data_dir_option,
    device_option,
    format_option,
    rules_option,
    seed_option,
)
from advisor.core.errors import InvalidValueError
from advisor.knowledge.profile import (
    CONVEXITY_CHOICES,
    DOMAIN_CHOICES,
    GRADIENTS_CHOICES,
    MODEL_KIND_CHOICES,
    PRECISION_CHOICES,
    TRAINING_CHOICES,
    Profile,
)
from advisor.knowledge.recommender import recommend as recommend_profile

#: Options that only make sense with --model.
_MODEL_OPTIONS = ("dataset", "probe_lr", "out")


@click.command()
@click.option("--params", type=COUNT, help="Trainable parameters of the model: 118k, 1.5M, 1e9.")
@click.option("--samples", type=COUNT, help="Training examples: 55k.")
@click.option(
    "--convexity",
    type=click.Choice(CONVEXITY_CHOICES),
    default="unknown",
    show_default=True,
    help="Shape of the loss.",
)
@click.option("--budget", type=DURATION, help="Wall-clock budget: 90s, 10m, 2h.")
@click.option("--memory", type=BYTES, help="Memory available for training: 8GB, 16GiB.")
@click.option(
    "--precision",
    type=click.Choice(PRECISION_CHOICES),
    default="fp32",
    show_default=True,
    help="Number format of weights, gradients and optimizer state (for the memory figures).",
)
@click.option("--batch-size", type=COUNT, help="Minibatch size (the LR ranges scale with it).")
@click.option(
    "--sparse-gradients/--no-sparse-gradients",
    default=False,
    show_default=True,
    help="Gradients are sparse (embeddings, sparse features).",
)
@click.option(
    "--gradients",
    type=click.Choice(GRADIENTS_CHOICES),
    default="unknown",
    show_default=True,
    help="Observed gradient behaviour.",
)
@click.option("--trials", type=COUNT, help="Tuning budget in trials (training runs).")
@click.option(
    "--domain",
    type=click.Choice(DOMAIN_CHOICES),
    default="unknown",
    show_default=True,
    help="Kind of data.",
)
@click.option(
    "--model-kind",
    type=click.Choice(MODEL_KIND_CHOICES),
    default="unknown",
    show_default=True,
    help="Kind of model (--model measures it).",
)
@click.option(
    "--training",
    type=click.Choice(TRAINING_CHOICES),
    default="unknown",
    show_default=True,
    help="Trained from scratch, or fine-tuning pre-trained weights.",
)
@click.option(
    "--open-ended/--fixed-length",
    default=False,
    show_default=True,
    help="The training length is not known in advance (no schedule can end it).",
)
@device_option
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show the best N only.")
@click.option(
    "--model",
    "model",
    default=None,
    metavar="MODULE:FACTORY",
    help="Measure the profile of this model (e.g. advisor.models:mnist_mlp, the seed MLP); "
    "options given above override measured values.",
)
@click.option(
    "--dataset",
    default=None,
    help="With --model: the data to measure on (mnist, mnist-5k, fashion-mnist, idx:DIR). "
    "[default: mnist-5k]",
)
@click.option(
    "--probe-lr",
    is_flag=True,
    help="With --model: narrow each shown candidate's lr range by an LR range test.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --model: write recommendation.json (and lr_range.png with --probe-lr) here.",
)
@seed_option
@data_dir_option
@rules_option
@format_option("text", "json", "markdown")
@click.pass_context
def recommend(
    ctx: click.Context,
    params: int | None,
    samples: int | None,
    convexity: str,
    budget: float | None,
    memory: int | None,
    precision: str,
    batch_size: int | None,
    sparse_gradients: bool,
    gradients: str,
    trials: int | None,
    domain: str,
    model_kind: str,
    training: str,
    open_ended: bool,
    device: str,
    top: int | None,
    model: str | None,
    dataset: str | None,
    probe_lr: bool,
    out: Path | None,
    seed: int,
    data_dir: str | None,
    rules_dirs: tuple[str, ...],
    fmt: str,
) -> None:
    """Rank every optimizer for your problem, with reasons, search spaces and advice.

    \b
    advisor recommend --params 118k --samples 55k --convexity nonconvex --budget 10m
    advisor recommend --params 1e9 --memory 8GB --precision bf16 --format json
    advisor recommend --model advisor.models:mnist_mlp --dataset mnist-5k --probe-lr
    """
    values: dict[str, Any] = {
        "params": params,
        "samples": samples,
        "convexity": convexity,
        "budget": budget,
        "memory": memory,
        "batch_size": batch_size,
        "sparse_gradients": sparse_gradients,
        "gradients": gradients,
        "trials": trials,
        "domain": domain,
        "precision": precision,
        "model_kind": model_kind,
        "training": training,
        "open_ended": open_ended,
        "device": device,
    }
    if model is None:
        extra = [n for n in _MODEL_OPTIONS if _given(ctx, n)]
        if extra:
            flags = ", ".join("--" + n.replace("_", "-") for n in extra)
            verb = "needs" if len(extra) == 1 else "need"
            raise click.UsageError(f"{flags} {verb} --model MODULE:FACTORY (the model to measure).")
        rec = recommend_profile(Profile(**values), rules_dirs=rules_dirs, top=top)
        output = {"json": rec.to_json, "markdown": rec.to_markdown}.get(fmt, rec.to_text)()
    else:
        given = {name: value for name, value in values.items() if _given(ctx, name)}
        output = _measured(
            model,
            dataset or "mnist-5k",
            given,
            device=device,
            batch_size=batch_size or 128,
            budget=budget,
            seed=seed,
            data_dir=data_dir,
            probe_lr=probe_lr,
            out=out,
            rules_dirs=rules_dirs,
            top=top,
            fmt=fmt,
        )
    click.echo(output.rstrip("\n"))


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the option was given (command line or environment), not left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source != click.core.ParameterSource.DEFAULT


def _measured(
    model: str,
    dataset: str,
    given: dict[str, Any],
    *,
    device: str,
    batch_size: int,
    budget: float | None,
    seed: int,
    data_dir: str | None,
    probe_lr: bool,
    out: Path | None,
    rules_dirs: tuple[str, ...],
    top: int | None,
    fmt: str,
) -> str:
    """Measure, recommend, probe (:func:`advisor.recommend_model`); return the output."""
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidValueError(
                f"--out {str(out)!r} cannot be created ({exc.strerror or exc}). Choose another folder."
            ) from exc
    advice = advisor.recommend_model(
        model,
        dataset,
        given=given,
        device=device,
        batch_size=batch_size,
        budget=budget,
        seed=seed,
        data_dir=data_dir,
        probe_lr=probe_lr,
        plot=out / "lr_range.png" if out is not None else None,
        rules_dirs=rules_dirs,
        top=top,
    )
    if out is not None:
        (out / "recommendation.json").write_text(advice.to_json() + "\n")
    return {"json": advice.to_json, "markdown": advice.to_markdown}.get(fmt, advice.to_text)()
