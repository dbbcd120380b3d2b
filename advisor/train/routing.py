"""``train_members``: the one entry point of training; routes members to a trainer."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from advisor.core.checks import positive_int
from advisor.data.dataset import Dataset
from advisor.data.task import Task
from advisor.train.func_fit import func_unsupported, memory_population, vmap_problem
from advisor.train.members import MemberConfig, MemberResult, OnEpoch, member_keys
from advisor.train.population_loop import train_func_population, train_population
from advisor.train.reference import as_device, build_model, train_reference

# Warnings already given in this process. A study plans one batch of trials at a time, and
# torch and Optuna reset the `warnings` module's own once-registry (`catch_warnings`), so
# without this a user would read the same line once per batch.
_warned: set[str] = set()


def seed_task(task: Task | None) -> bool:
    """Whether the hand-written seed-MLP trainer serves ``task`` (cross-entropy, accuracy)."""
    return task is None or (task.loss == "cross_entropy" and task.metric == "accuracy")


def train_members(
    configs: Sequence[MemberConfig],
    data: Dataset,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    data_seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: OnEpoch | None = None,
    evaluate_test: bool = False,
    model_factory: Callable[[], nn.Module] | None = None,
    max_population: int | None = None,
    task: Task | None = None,
) -> list[MemberResult]:
    """Train every member for ``epochs`` epochs; results in the order of ``configs``.

    ``task`` (default: classification, cross-entropy, accuracy) gives the loss and the
    metric; the metric's values are the results' ``val_accuracy``. Members whose optimizer
    has a population update rule (``OptimizerInfo.population``) train together, sharing
    one minibatch order:

    - the seed MLP (``model_factory=None``) on the default task goes to the hand-written
      population trainer (:mod:`advisor.train.population`), in populations of at most
      ``max_population`` members (``None``: all in one);
    - any other model (or task) goes to the generic ``torch.func`` population
      (:mod:`advisor.train.func_population`), in populations of at most
      ``max_population`` members (``None``: as many as fit in memory,
      :func:`~advisor.train.func_population.memory_population`), when its forward can be
      vmapped; when it cannot, every member trains alone and the reason is given once as a
      warning and in each result's ``note``. With ``max_population=1`` they train alone
      on the reference trainer (a population of one is slower than torch.optim).

    The others (L-BFGS) go to the reference trainer one at a time. Populations and reference
    members run one after the other, so ``on_epoch`` sees epoch 1, 2, ... once per
    population and once per reference member, each report holding only the members of that
    run. It returns the keys of the members to stop (pruning); the others continue
    undisturbed. ``elapsed_s`` in reports counts from the start of this call.

    >>> from advisor.data.datasets import load_dataset
    >>> data = load_dataset("mnist-5k")
    >>> results = train_members([MemberConfig("adam", {"lr": 3e-3}, key="a")], data, epochs=1)
    >>> results[0].key, results[0].status, len(results[0].val_accuracy)
    ('a', 'complete', 1)
    """
    t0 = time.perf_counter()
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    positive_int("max_population", max_population, optional=True)
    configs = list(configs)
    keys = member_keys(configs)
    dev = as_device(device)
    data = data.to(dev)
    common = {
        "epochs": epochs,
        "batch_size": batch_size,
        "data_seed": data_seed,
        "device": dev,
        "on_epoch": on_epoch,
        "evaluate_test": evaluate_test,
        "known_keys": keys,
        "start_time": t0,
    }
    results: dict[Hashable, MemberResult] = {}
    if not configs:
        return []
    if model_factory is None and seed_task(task):
        together = [i for i, c in enumerate(configs) if c.info.population]
        chunk = max_population or max(1, len(together))
        notes: dict[int, str] = {}
        train: Callable[..., list[MemberResult]] = _mlp_population
    else:
        together, chunk, notes = _generic_plan(
            configs, data, model_factory, task, dev, batch_size, max_population
        )
        train = _func_population
    for start in range(0, len(together), chunk):
        part = together[start : start + chunk]
        run = train(
            [configs[i] for i in part],
            data,
            keys=[keys[i] for i in part],
            model_factory=model_factory,
            task=task,
            **common,
        )
        results.update(zip([keys[i] for i in part], run))
    alone = sorted(set(range(len(configs))) - set(together))
    for i in alone:
        ref = train_reference(
            configs[i],
            data,
            model_factory=model_factory,
            key=keys[i],
            task=task,
            **common,  # type: ignore[arg-type]
        )
        note = notes.get(i)
        results[keys[i]] = ref.result if note is None else replace(ref.result, note=note)
    return [results[key] for key in keys]


def _mlp_population(
    configs: list[MemberConfig], data: Dataset, *, model_factory: object, task: object, **kw: Any
) -> list[MemberResult]:
    return train_population(configs, data, **kw).results


def _func_population(
    configs: list[MemberConfig],
    data: Dataset,
    *,
    model_factory: Callable[[], nn.Module] | None,
    task: Task | None,
    **kw: Any,
) -> list[MemberResult]:
    return train_func_population(
        configs, data, model_factory=model_factory, task=task, **kw
    ).results


def _generic_plan(
    configs: Sequence[MemberConfig],
    data: Dataset,
    model_factory: Callable[[], nn.Module] | None,
    task: Task | None,
    device: torch.device,
    batch_size: int,
    max_population: int | None,
) -> tuple[list[int], int, dict[int, str]]:
    """Which members train in the generic population, how many at once, and why the others
    train alone (one line each, also warned once per process)."""
    if max_population == 1 or not any(c.info.population for c in configs):
        return [], 1, {}  # one at a time: the reference trainer is faster, and exact
    model = build_model(configs[0], data, model_factory).to(device)
    x = data.x_train[: min(4, data.x_train.shape[0])]
    y = data.y_train[: x.shape[0]]
    if task is not None and task.kind == "regression":
        y = y.to(x.dtype)
    problem = vmap_problem(model, x, y, task)
    together, notes = [], {}
    for i, config in enumerate(configs):
        why = problem or func_unsupported(config, model)
        if why is None:
            together.append(i)
        elif config.info.population:  # (L-BFGS always trains alone: nothing to say)
            notes[i] = f"trained alone on the reference trainer: {why}"
    if problem is not None and notes:
        message = f"{type(model).__name__}: {next(iter(notes.values()))}"
        if message not in _warned:
            _warned.add(message)
            warnings.warn(message, stacklevel=3)
    chunk = max_population
    if chunk is None and together:
        batch = data.x_train[: min(batch_size, data.x_train.shape[0])]
        chunk = memory_population(
            model, batch, optimizer=configs[together[0]].optimizer, device=device
        )
    return together, chunk or 1, notes
