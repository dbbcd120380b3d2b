"""``train_members``: the one entry point of training; routes members to a trainer."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence

import torch
from torch import nn

from advisor.core.checks import positive_int
from advisor.data.dataset import Dataset
from advisor.train.members import MemberConfig, MemberResult, OnEpoch, member_keys
from advisor.train.population_loop import train_population
from advisor.train.reference import as_device, train_reference


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
) -> list[MemberResult]:
    """Train every member for ``epochs`` epochs; results in the order of ``configs``.

    With ``model_factory=None`` (the seed MLP), members whose optimizer the population
    trainer supports (``OptimizerInfo.population``) train together as populations of at
    most ``max_population`` members (``None``: all in one), sharing one minibatch order;
    the others (L-BFGS), and every member when a ``model_factory`` is given, go to the
    reference trainer one at a time. Populations and reference members run one after the
    other, so ``on_epoch`` sees epoch 1, 2, ... once per population and once per reference
    member, each report holding only the members of that run. It returns the keys of the
    members to stop (pruning); the others continue undisturbed. ``elapsed_s`` in reports
    counts from the start of this call.

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
    together = [i for i, c in enumerate(configs) if model_factory is None and c.info.population]
    chunk = max_population or max(1, len(together))
    for start in range(0, len(together), chunk):
        part = together[start : start + chunk]
        run = train_population(
            [configs[i] for i in part],
            data,
            keys=[keys[i] for i in part],
            **common,  # type: ignore[arg-type]
        )
        results.update(zip([keys[i] for i in part], run.results))
    alone = sorted(set(range(len(configs))) - set(together))
    for i in alone:
        ref = train_reference(
            configs[i],
            data,
            model_factory=model_factory,
            key=keys[i],
            **common,  # type: ignore[arg-type]
        )
        results[keys[i]] = ref.result
    return [results[key] for key in keys]
