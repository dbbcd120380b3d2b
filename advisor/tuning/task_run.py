"""What a session needs to run a task other than the seed one: the check of a model's
outputs against the task before anything trains, the notes a report carries, and the
stand-ins of an objective run (no data, costs learned from its trials)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from advisor.core.errors import InvalidValueError
from advisor.data.dataset import Dataset
from advisor.data.task import CLASSIFICATION, Task
from advisor.train.members import EpochReport, MemberResult, OnEpoch
from advisor.tuning import schema
from advisor.tuning.budget import CostModel
from advisor.tuning.objective import GUESS_EPOCH_S

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from advisor.tuning.config import TuneConfig

#: Samples run through the model to check its outputs against the task.
CHECK_ROWS = 4


def check_model_task(model: nn.Module, data: Dataset, task: Task) -> None:
    """One forward pass on a few training samples, checked against ``task``: outputs and
    targets of fitting shapes (:meth:`Task.check`), a loss that is a finite scalar, a metric
    that is a number. Raises :class:`InvalidValueError` (one line naming the shapes)."""
    import torch

    x, y = data.x_train[:CHECK_ROWS], data.y_train[:CHECK_ROWS]
    first = next(model.parameters(), None)
    model = model.to(x.device)
    if first is not None:
        x = x.to(first.dtype)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise InvalidValueError(
            f"the model fails on samples of shape {tuple(x.shape)}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise InvalidValueError(f"the model must return a tensor, got {type(out).__name__}.")
    task.check(out, y)
    got = f"outputs {tuple(out.shape)}, targets {tuple(y.shape)}"
    if (
        task.kind == "classification"
        and task.loss == "cross_entropy"
        and out.shape[-1] < data.n_classes
    ):
        raise InvalidValueError(
            f"the data has {data.n_classes} classes but the model gives {out.shape[-1]} "
            f"outputs per sample ({got}): its last layer needs {data.n_classes}."
        )
    try:
        loss = task.loss_fn()(out, y)
    except Exception as exc:
        raise InvalidValueError(
            f"the loss {task.loss_name!r} fails on {got}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise InvalidValueError(
            f"the loss {task.loss_name!r} must return a scalar tensor (the batch mean), got "
            f"{shape} for {got}."
        )
    try:
        float(task.metric_fn()(out, y))
    except Exception as exc:
        raise InvalidValueError(
            f"the metric {task.metric_name!r} must return a number for {got}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def oriented(train: Callable[..., list[MemberResult]], maximize: bool) -> Callable[..., Any]:
    """``train`` whose metric values point up: the study maximizes, so a minimized metric
    (a loss, ``direction="minimize"``) is negated in every epoch report and result. The
    trainers report the metric as it is; this is the one place that orients it."""
    if maximize:
        return train

    def flip(report: EpochReport) -> EpochReport:
        values = {k: -v for k, v in report.val_accuracy.items()}
        return replace(report, val_accuracy=MappingProxyType(values))

    @functools.wraps(train)
    def negated(*args: Any, on_epoch: OnEpoch | None = None, **kwargs: Any) -> list[MemberResult]:
        hook = None if on_epoch is None else (lambda report: on_epoch(flip(report)))
        results = train(*args, on_epoch=hook, **kwargs)
        return [
            replace(
                r,
                val_accuracy=tuple(-v for v in r.val_accuracy),
                test_accuracy=None if r.test_accuracy is None else -r.test_accuracy,
            )
            for r in results
        ]

    return negated


def task_record(config: TuneConfig) -> dict[str, str]:
    """What the study stores about the task (``StudySettings.task``): the report names its
    metric from it. An objective's metric is ``value`` unless ``metric=`` named it."""
    task = config.the_task.to_dict()
    if config.objective is None:
        return task
    named = config.metric if isinstance(config.metric, str) else None
    return {"kind": "objective", "metric": named or "value", "direction": task["direction"]}


def task_notes(config: TuneConfig) -> tuple[str, ...]:
    """What a report must say when its numbers are not the seed task's accuracy."""
    task = config.the_task
    if config.objective is not None:
        record = task_record(config)
        name = config.model_name.removeprefix("objective ")
        return (f"Your objective ({name}): the {record['metric']} it returned, {task.direction}d.",)
    if task == CLASSIFICATION:
        return ()
    return (
        f"Task: {task.kind}, loss {task.loss_name}, metric {task.metric_name} ({task.direction}d).",
    )


def add_notes(study: optuna.Study, notes: Iterable[str]) -> None:
    """Append ``notes`` to the study's settings (once each), for the report."""
    new = list(notes)
    settings = schema.read_settings(study)
    if settings is None or not new:
        return
    kept = tuple(dict.fromkeys([*settings.notes, *new]))
    if kept != settings.notes:
        schema.write_settings(study, replace(settings, notes=kept))


def placeholder_data() -> Dataset:
    """The empty dataset of an objective run: the objective reads its own data."""
    import torch

    empty_x, empty_y = torch.zeros(0, 1), torch.zeros(0, dtype=torch.int64)
    return Dataset(
        "objective", empty_x, empty_y, empty_x, empty_y, empty_x, empty_y, 2, "objective"
    )


def guessed_costs(optimizers: Iterable[str], known: CostModel | None) -> CostModel:
    """Costs before the objective's first trial: :data:`GUESS_EPOCH_S` per epoch each (the
    search replaces them with what its trials take)."""
    costs = known or CostModel(search={}, final={})
    for o in optimizers:
        costs.search.setdefault(o, GUESS_EPOCH_S)
        costs.final.setdefault(o, GUESS_EPOCH_S)
    return costs
