"""What a session needs to run a task other than the seed one: the notes a report carries,
the orientation of a minimized metric and the stand-ins of an objective run (no data, costs
learned from its trials). The check of a model's outputs against the task is
:func:`advisor.train.task_check.check_model_task`, shared with the probe."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from advisor.data.dataset import Dataset
from advisor.data.task import CLASSIFICATION
from advisor.train.members import EpochReport, MemberResult, OnEpoch
from advisor.tuning import schema
from advisor.tuning.budget import CostModel
from advisor.tuning.objective import GUESS_EPOCH_S

if TYPE_CHECKING:
    import optuna

    from advisor.tuning.config import TuneConfig


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
