"""``advisor.tune``: rule-guided Optuna tuning on the population trainer, with honest reporting.

Stages: recommend candidates for the problem (rules) → a search space sized by the budget →
search (ask K trials, train them as one population, prune by successive halving, tell) →
finalists and the default ``Adam(lr=1e-3)`` re-run on fresh seeds → a report whose winner is
chosen on validation accuracy and scored on the held-out test set.

:func:`tune` only checks its arguments (:class:`~advisor.tuning.config.TuneConfig`) and
dispatches: one session in this process (:mod:`advisor.tuning.session`), or several worker
processes on one study (:mod:`advisor.tuning.workers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.clock import budget_origin
from advisor.data.dataset import Dataset
from advisor.data.task import Task
from advisor.tuning.config import TuneConfig
from advisor.tuning.result import TuneResult
from advisor.tuning.workers import run_session, run_workers

if TYPE_CHECKING:
    import torch


def tune(
    dataset: str | Dataset = "mnist-5k",
    *,
    model: Callable[[], torch.nn.Module] | str | None = None,
    data: Any = None,
    task: str | Task | None = None,
    loss: str | Callable[..., Any] | None = None,
    metric: str | Callable[..., Any] | None = None,
    direction: str | None = None,
    objective: Callable[..., Any] | str | None = None,
    budget: str | float | None = None,
    trials: int | None = None,
    epochs: int = 5,
    batch_size: int = 128,
    population: int | None = None,
    candidates: int = 4,
    optimizers: Sequence[str] | None = None,
    finalists: int = 3,
    seeds: int = 5,
    device: str = "auto",
    seed: int = 0,
    study: str | None = None,
    storage: str | None = None,
    out: str | Path | None = None,
    rules_dirs: Sequence[str | Path] = (),
    data_dir: str | None = None,
    workers: int = 1,
    threads: int | None = None,
    sampler_seed: int | None = None,
    probe_lr: bool = False,
    progress: bool = False,
) -> TuneResult:
    """Tune the optimizer and its hyperparameters for a model and dataset.

    ``budget`` is wall time for the whole run (search and the multi-seed finalist stage),
    e.g. ``"5m"``; default 1 minute on ``mnist-5k``, 5 minutes otherwise. ``trials`` caps
    the search trials. The winner is chosen on validation accuracy over ``seeds`` fresh
    seeds and reported on the test set beside the default ``Adam(lr=1e-3)``.
    A user's model: ``tune(model=factory, data=...)``; ``data`` is ``(X_train, y_train,
    X_test, y_test)``, ``(X_train, y_train)`` (a test set is split off), a torch ``Dataset``
    or a DataLoader factory ``loader(split)``, read once into memory
    (:mod:`advisor.data.sources`); samples keep their shape for your model. ``task``
    (``"classification"`` or ``"regression"``, or a :class:`~advisor.data.task.Task`),
    ``loss`` (``"cross_entropy"``, ``"mse"``, a callable or ``"module:function"``), ``metric``
    (``"accuracy"``, ``"neg_mse"`` or a callable with its ``direction``) say what is learned
    and how it is judged. Your own training loop: ``tune(objective=fn)``, where ``fn(trial)``
    gets an :class:`~advisor.tuning.objective.Trial` (optimizer and scheduler factories, seed,
    ``report(epoch, value)``) and returns the validation metric.
    ``workers`` > 1 runs that many processes on one study (``threads`` CPU threads each,
    default: the cores shared out); on several machines, run ``tune`` on each with the same
    ``study`` and a shared ``storage`` URL instead. ``sampler_seed`` seeds TPE (default
    ``seed``); workers on one study should use distinct ones. ``probe_lr`` narrows each
    candidate's learning-rate range by an LR range test (Smith 2017) before the search.

    Arguments are checked before anything runs (:class:`~advisor.tuning.config.TuneConfig`):

    >>> tune(epochs=0)
    Traceback (most recent call last):
    ...
    advisor.core.errors.InvalidValueError: epochs must be a positive whole number (1, 2, 3, ...), got 0.

    A small run on the embedded digits (a few seconds):

    >>> import tempfile
    >>> r = tune(trials=4, epochs=1, population=4, seeds=2, finalists=1, optimizers=["adam"],
    ...          device="cpu", out=tempfile.mkdtemp())
    >>> r.recommendation.torch.startswith("torch.optim.Adam("), r.trials["complete"] >= 1
    (True, True)
    """
    config = TuneConfig(**locals())  # the parameters above, by the same names (tested)
    # The budget counts from here, for every worker of the run; in the ``advisor`` command,
    # from its process's start (imports included, as a user timing the command sees it).
    started_at = budget_origin()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if config.workers > 1:
        return run_workers(config, started_at)
    return run_session(config, started_at)
