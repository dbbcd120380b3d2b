"""The epoch loop of both population trainers: batches, divergence checks, pruning, results."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import Tensor, nn

from advisor.data.dataset import Dataset
from advisor.data.task import Task
from advisor.train.batches import batch_bounds, epoch_permutation
from advisor.train.func_population import FuncPopulation
from advisor.train.members import (
    CHECK_EVERY,
    LossLimit,
    MemberConfig,
    MemberLog,
    MemberResult,
    OnEpoch,
    divergence_reason,
    epoch_report,
    keys_to_stop,
    loss_limit,
    task_limit,
)
from advisor.train.population import Population
from advisor.train.reference import as_device


@dataclass(frozen=True)
class PopulationRun:
    """Results in the caller's order, and the population as it ended (for its weights)."""

    results: list[MemberResult]
    population: Population


def train_population(
    configs: Sequence[MemberConfig],
    data: Dataset,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    data_seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: OnEpoch | None = None,
    evaluate_test: bool = False,
    keys: Sequence[Hashable] | None = None,
    known_keys: Iterable[Hashable] | None = None,
    start_time: float | None = None,
    dtype: torch.dtype = torch.float32,
    fused: bool | None = None,
    gemm: str = "auto",
) -> PopulationRun:
    """Train ``configs`` as one population; see :func:`advisor.train.train_members`."""
    t0 = time.perf_counter() if start_time is None else start_time
    dev = as_device(device)
    keys = (
        [c.key if c.key is not None else i for i, c in enumerate(configs)]
        if keys is None
        else list(keys)
    )
    known = set(keys) if known_keys is None else set(known_keys)
    data = data.to(dev)
    x_train = data.x_train.to(dtype)
    bounds = batch_bounds(x_train.shape[0], batch_size)
    pop = Population(
        configs,
        keys,
        n_features=data.n_features,
        n_classes=data.n_classes,
        total_steps=epochs * len(bounds),
        device=dev,
        dtype=dtype,
        fused=fused,
        gemm=gemm,
    )
    results = run_epochs(
        pop,
        dict(zip(keys, configs)),
        data,
        x_train,
        epochs=epochs,
        batch_size=batch_size,
        data_seed=data_seed,
        on_epoch=on_epoch,
        evaluate_test=evaluate_test,
        known=known,
        start_time=t0,
        limit=loss_limit(None, data.n_classes),
        trainer="population",
    )
    return PopulationRun([results[key] for key in keys], pop)


class Trainable(Protocol):
    """What :func:`run_epochs` needs of a population (both population trainers have it)."""

    keys: list[Hashable]
    loss_sum: torch.Tensor  # [K] float64: the sum of each member's batch losses

    @property
    def size(self) -> int: ...

    def train_step(self, x_all: Tensor, y_all: Tensor, idx: Tensor, step: int) -> None: ...

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[list[float], list[float]]: ...

    def remove(self, keys: Iterable[Hashable]) -> None: ...

    def train_mode(self) -> None: ...

    def eval_mode(self) -> None: ...


def run_epochs(
    pop: Trainable,
    configs: Mapping[Hashable, MemberConfig],
    data: Dataset,
    x_train: Tensor,
    *,
    epochs: int,
    batch_size: int,
    data_seed: int,
    on_epoch: OnEpoch | None,
    evaluate_test: bool,
    known: set[Hashable],
    start_time: float,
    limit: LossLimit,
    trainer: str,
    seed: int | None = None,
) -> dict[Hashable, MemberResult]:
    """The epoch loop of a population (``pop.keys`` in ``configs``): batches, divergence
    checks against ``limit``, evaluation (metric and loss), ``on_epoch``, compaction."""
    t0, dev, y_train = start_time, x_train.device, data.y_train
    bounds = batch_bounds(x_train.shape[0], batch_size)
    keys = list(pop.keys)
    logs = {key: MemberLog(key, configs[key]) for key in keys}
    for log in logs.values():
        log.trainer, log.seed = trainer, seed

    def drop(bad: dict[Hashable, str], status: str) -> None:
        for key, reason in bad.items():
            logs[key].end(status, reason)
        pop.remove(bad)

    for epoch in range(1, epochs + 1):
        perm = epoch_permutation(x_train.shape[0], data_seed=data_seed, epoch=epoch, device=dev)
        pop.train_mode()
        pop.loss_sum.zero_()
        seen, seen_sums = 0, [0.0] * pop.size
        diverged: dict[Hashable, str] = {}
        for i, (start, stop) in enumerate(bounds, 1):
            pop.train_step(x_train, y_train, perm[start:stop], (epoch - 1) * len(bounds) + i - 1)
            if i % CHECK_EVERY == 0 or i == len(bounds):
                sums = pop.loss_sum.tolist()  # one device sync per window
                bad = {}
                for key, now, before in zip(pop.keys, sums, seen_sums):
                    reason = divergence_reason(
                        (now - before) / (i - seen), data.n_classes, limit=limit
                    )
                    if reason is not None:
                        bad[key] = reason
                if bad:
                    diverged.update(bad)
                    drop(bad, "diverged")
                    if pop.size == 0:
                        break
                seen, seen_sums = i, (pop.loss_sum.tolist() if bad else sums)
        train_losses = [s / len(bounds) for s in pop.loss_sum.tolist()]
        pop.eval_mode()
        if pop.size:
            accuracy, val_loss = pop.evaluate(data.x_val, data.y_val)
            bad = {}
            for key, acc, loss, train_loss in zip(pop.keys, accuracy, val_loss, train_losses):
                reason = divergence_reason(loss, data.n_classes, "validation loss")
                if reason is None:
                    logs[key].add_epoch(acc, loss, train_loss)
                else:
                    bad[key] = reason
            if bad:
                diverged.update(bad)
                drop(bad, "diverged")
        if on_epoch is not None:
            running = [logs[key] for key in pop.keys]
            report = epoch_report(epoch, running, diverged, time.perf_counter() - t0)
            stop_keys = keys_to_stop(on_epoch(report), pop.keys, known)
            if evaluate_test and stop_keys:  # a stopped member is tested as it stopped
                accuracy, _ = pop.evaluate(data.x_test, data.y_test)
                for key, acc in zip(pop.keys, accuracy):
                    if key in stop_keys:
                        logs[key].test_accuracy = acc
            drop({key: "stopped by on_epoch" for key in stop_keys}, "stopped")
        if pop.size == 0:
            break
    if evaluate_test and pop.size:
        accuracy, _ = pop.evaluate(data.x_test, data.y_test)
        for key, acc in zip(pop.keys, accuracy):
            logs[key].test_accuracy = acc
    return {key: log.result() for key, log in logs.items()}


@dataclass(frozen=True)
class FuncPopulationRun:
    """Results in the caller's order, and the generic population as it ended."""

    results: list[MemberResult]
    population: FuncPopulation


def train_func_population(
    configs: Sequence[MemberConfig],
    data: Dataset,
    *,
    model_factory: Callable[[], nn.Module] | None,
    task: Task | None = None,
    epochs: int = 5,
    batch_size: int = 128,
    data_seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: OnEpoch | None = None,
    evaluate_test: bool = False,
    keys: Sequence[Hashable] | None = None,
    known_keys: Iterable[Hashable] | None = None,
    start_time: float | None = None,
    dtype: torch.dtype = torch.float32,
    fused: bool | None = None,
    seed: int | None = None,
) -> FuncPopulationRun:
    """Train ``configs`` as one generic population (:mod:`advisor.train.func_population`).

    The model must vmap (:func:`~advisor.train.func_population.vmap_problem`); routing
    through :func:`advisor.train.train_members` checks that. ``seed`` (default
    ``data_seed``) seeds the members' random draws (dropout) and is recorded in each
    result.
    """
    t0 = time.perf_counter() if start_time is None else start_time
    dev = as_device(device)
    keys = (
        [c.key if c.key is not None else i for i, c in enumerate(configs)]
        if keys is None
        else list(keys)
    )
    known = set(keys) if known_keys is None else set(known_keys)
    data = data.to(dev)
    x_train = data.x_train.to(dtype)
    if task is not None and task.kind == "regression":
        data = replace(
            data,
            y_train=data.y_train.to(dtype),
            y_val=data.y_val.to(dtype),
            y_test=data.y_test.to(dtype),
        )
    seed = data_seed if seed is None else seed
    pop = FuncPopulation(
        configs,
        keys,
        model_factory=model_factory,
        data=data,
        task=task,
        total_steps=epochs * len(batch_bounds(x_train.shape[0], batch_size)),
        device=dev,
        dtype=dtype,
        fused=fused,
        seed=seed,
    )
    results = run_epochs(
        pop,
        dict(zip(keys, configs)),
        data,
        x_train,
        epochs=epochs,
        batch_size=batch_size,
        data_seed=data_seed,
        on_epoch=on_epoch,
        evaluate_test=evaluate_test,
        known=known,
        start_time=t0,
        limit=task_limit(task, data),
        trainer="func",
        seed=seed,
    )
    return FuncPopulationRun([results[key] for key in keys], pop)
