"""The epoch loop of the population trainer: batches, divergence checks, pruning, results."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import torch

from advisor.data.dataset import Dataset
from advisor.train.batches import batch_bounds, epoch_permutation
from advisor.train.members import (
    CHECK_EVERY,
    MemberConfig,
    MemberLog,
    MemberResult,
    OnEpoch,
    divergence_reason,
    epoch_report,
    keys_to_stop,
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
    x_train, y_train = data.x_train.to(dtype), data.y_train
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
    logs = {key: MemberLog(key, config) for key, config in zip(keys, configs)}

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
                    reason = divergence_reason((now - before) / (i - seen), data.n_classes)
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
            drop({key: "stopped by on_epoch" for key in stop_keys}, "stopped")
        if pop.size == 0:
            break
    if evaluate_test and pop.size:
        accuracy, _ = pop.evaluate(data.x_test, data.y_test)
        for key, acc in zip(pop.keys, accuracy):
            logs[key].test_accuracy = acc
    return PopulationRun([logs[key].result() for key in keys], pop)
