"""One frozen, validated description of a tuning run: what :func:`advisor.tune` was asked.

:func:`advisor.tune` builds a :class:`TuneConfig` from its keyword arguments (the same
names, the same defaults: a test keeps them equal) and hands it on; a session runs one
worker from it, and ``workers`` hands the same config to every process. Everything that
can be checked without torch, data or a storage is checked here, eagerly.

>>> c = TuneConfig(budget="90s", optimizers=["Adam", "nesterov"], study="demo")
>>> c.budget_s, c.optimizers, c.dataset_name
(90.0, ('adam', 'nesterov'), 'mnist-5k')
>>> TuneConfig(epochs=0)
Traceback (most recent call last):
...
advisor.core.errors.InvalidValueError: epochs must be a positive whole number (1, 2, 3, ...), got 0.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.checks import positive_int
from advisor.core.errors import InvalidValueError
from advisor.core.refs import import_callable
from advisor.core.units import parse_duration
from advisor.data.dataset import Dataset
from advisor.data.task import Task
from advisor.knowledge.optimizers import get_optimizer_info
from advisor.train.model_ref import model_name

if TYPE_CHECKING:
    from torch import nn

#: Where ``tune`` writes its study file and report when ``out`` is not given.
DEFAULT_OUT = Path("advisor-runs")
#: The study file (an Optuna journal) inside ``out``.
JOURNAL_FILE = "studies.journal"
#: Default wall-clock budgets: the embedded digits are small, the 60k sets are not.
DEFAULT_BUDGET_S = {"mnist-5k": 60.0}
DEFAULT_BUDGET_OTHER_S = 300.0


@dataclass(frozen=True)
class TuneConfig:
    """The arguments of :func:`advisor.tune`, checked and normalized (see its docstring).

    Normalized on creation: ``optimizers`` become registry names (a tuple), ``rules_dirs`` a
    tuple, and a missing ``study`` name is made from the dataset, the time and four random hex
    digits (two runs started in one second into one folder get two studies), so that every
    worker of the run shares it.
    """

    dataset: str | Dataset = "mnist-5k"
    model: Callable[[], nn.Module] | str | None = None
    data: Any = None
    task: str | Task | None = None
    loss: str | Callable[..., Any] | None = None
    metric: str | Callable[..., Any] | None = None
    direction: str | None = None
    objective: Callable[..., Any] | str | None = None
    budget: str | float | None = None
    trials: int | None = None
    epochs: int = 5
    batch_size: int = 128
    population: int | None = None
    candidates: int = 4
    optimizers: Sequence[str] | None = None
    finalists: int = 3
    seeds: int = 5
    device: str = "auto"
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    out: str | Path | None = None
    rules_dirs: Sequence[str | Path] = ()
    data_dir: str | None = None
    workers: int = 1
    threads: int | None = None
    sampler_seed: int | None = None
    probe_lr: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "candidates", "finalists", "seeds", "workers"):
            positive_int(name, getattr(self, name))
        for name in ("trials", "population", "threads"):
            positive_int(name, getattr(self, name), optional=True)
        if isinstance(self.data, (tuple, list)) and len(self.data) not in (2, 4):
            raise InvalidValueError(
                "data must be (X_train, y_train, X_test, y_test) or (X_train, y_train), got "
                f"{len(self.data)} items."
            )
        if self.workers > 1 and self.model is not None and not isinstance(self.model, str):
            raise InvalidValueError(
                "workers > 1 needs the model as 'module:factory' (a string), so that every "
                "worker process can import it."
            )
        _check_objective(self)
        # an objective's metric is computed by the objective: a string only names it
        named_only = self.objective is not None and isinstance(self.metric, str)
        metric = None if named_only and ":" not in str(self.metric) else self.metric
        normalized_task = make_task(self.task, self.loss, metric, self.direction)
        if self.budget is not None:  # a bad budget fails now, not after the data loaded
            parse_duration(self.budget, "budget")
        normalized: dict[str, Any] = {"rules_dirs": tuple(self.rules_dirs), "task": normalized_task}
        if self.optimizers:
            names = (get_optimizer_info(o).name for o in self.optimizers)
            normalized["optimizers"] = tuple(dict.fromkeys(names))
        if self.study is None:
            when = time.strftime("%Y%m%d-%H%M%S")
            normalized["study"] = f"{self.dataset_name}-{when}-{secrets.token_hex(2)}"
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    @property
    def the_task(self) -> Task:
        """The task, loss, metric and direction, as one :class:`~advisor.data.task.Task`."""
        assert isinstance(self.task, Task)  # normalized on creation
        return self.task

    @property
    def dataset_name(self) -> str:
        """``custom`` for arrays, ``objective`` for an objective, else the dataset's name."""
        if self.objective is not None:
            return "objective"
        if self.data is not None:
            return "custom"
        if isinstance(self.dataset, str):
            return self.dataset
        return getattr(self.dataset, "name", "custom")

    @property
    def budget_s(self) -> float:
        """Wall-clock seconds for the whole run (the default depends on the dataset)."""
        if self.budget is not None:
            return parse_duration(self.budget, "budget")
        return DEFAULT_BUDGET_S.get(self.dataset_name, DEFAULT_BUDGET_OTHER_S)

    @property
    def study_name(self) -> str:
        return str(self.study)

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else DEFAULT_OUT

    @property
    def journal_path(self) -> Path:
        """The study file used when no ``storage`` URL is given."""
        return self.out_dir / JOURNAL_FILE

    @property
    def model_name(self) -> str:
        if self.objective is not None:
            return f"objective {callable_name(self.objective)}"
        return model_name(self.model)


def make_task(
    task: str | Task | None,
    loss: str | Callable[..., Any] | None,
    metric: str | Callable[..., Any] | None,
    direction: str | None,
) -> Task:
    """The :class:`Task` of ``tune``'s ``task``, ``loss``, ``metric`` and ``direction``;
    ``"module:function"`` names a loss or metric to import (the CLI's ``--loss``).

    >>> make_task("regression", None, None, None).to_dict()
    {'kind': 'regression', 'loss': 'mse', 'metric': 'neg_mse', 'direction': 'maximize'}
    """
    loss = resolve_callable(loss, "loss") if isinstance(loss, str) and ":" in loss else loss
    metric = (
        resolve_callable(metric, "metric") if isinstance(metric, str) and ":" in metric else metric
    )
    if isinstance(task, Task):
        if loss is None and metric is None and direction is None:
            return task
        return Task(
            task.kind,
            task.loss if loss is None else loss,
            task.metric if metric is None else metric,
            task.direction if direction is None and metric is None else direction,
        )
    if task is not None and not isinstance(task, str):
        raise InvalidValueError(
            f"task must be 'classification', 'regression' or a Task, got {task!r}."
        )
    return Task(task or "classification", loss, metric, direction)


def resolve_callable(ref: Callable[..., Any] | str, what: str) -> Callable[..., Any]:
    """A callable, or ``"module:name"`` imported (one readable error when it is not there)."""
    if callable(ref):
        return ref
    if not isinstance(ref, str) or ":" not in ref:
        raise InvalidValueError(f"{what} must be a callable or 'module:function', got {ref!r}.")
    return import_callable(ref, what)


def callable_name(fn: object) -> str:
    if isinstance(fn, str):
        return fn
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _check_objective(c: TuneConfig) -> None:
    if c.objective is None:
        return
    if not callable(c.objective) and not (isinstance(c.objective, str) and ":" in c.objective):
        raise InvalidValueError(
            f"objective must be a callable or 'module:function', got {c.objective!r}."
        )
    if c.data is not None:
        raise InvalidValueError(
            "an objective reads its own data: pass objective= without data= (and validate "
            "inside the objective)."
        )
    if c.probe_lr:
        raise InvalidValueError(
            "probe_lr needs a model and data that advisor trains, not an objective."
        )
    if c.workers > 1 and not isinstance(c.objective, str):
        raise InvalidValueError(
            "workers > 1 needs the objective as 'module:function' (a string), so that every "
            "worker process can import it."
        )
