"""Time accounting for tuning: how long a member-epoch takes, what the finalist stage needs,
how many epochs a pruned trial runs, and how much wall time a study has already used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from advisor.train import MemberConfig
from advisor.tuning import schema

if TYPE_CHECKING:
    import optuna

    from advisor.data.dataset import Dataset


def subset(data: Dataset, n_train: int) -> Dataset:
    frac = n_train / len(data.x_train)
    n_val = max(int(len(data.x_val) * frac), 32)
    return replace(
        data,
        x_train=data.x_train[:n_train],
        y_train=data.y_train[:n_train],
        x_val=data.x_val[:n_val],
        y_val=data.y_val[:n_val],
    )


def calibrate(
    train: Callable[..., Any],
    data: Dataset,
    k: int,
    batch_size: int,
    optimizer: str | Sequence[str],
) -> float:
    """Seconds per member-epoch on the full data at population size ``k``, timed on a slice.

    Several optimizers take turns in the population: their steps cost very different times
    (Muon's bfloat16 Newton-Schulz iterations cost 100x an Adam step on a CPU without
    native bfloat16), so the search is timed with the optimizers it will train.
    """

    steps = 8
    n = min(len(data.x_train), steps * batch_size)
    sub = subset(data, n)
    stamps: list[float] = []
    names = [optimizer] if isinstance(optimizer, str) else list(optimizer)
    configs = [
        MemberConfig(names[i % len(names)], {}, "constant", init_seed=0, key=i) for i in range(k)
    ]

    def on_epoch(report: Any) -> list[Any]:
        stamps.append(time.perf_counter())
        return []

    train(configs, sub, epochs=3, data_seed=0, on_epoch=on_epoch)
    per_epoch = min(b - a for a, b in zip(stamps, stamps[1:])) if len(stamps) >= 2 else 0.0
    # with one member per call (reference trainer) on_epoch fires per member-epoch
    members_per_stamp = 1 if len(stamps) > 3 else k
    return per_epoch * (len(data.x_train) / n) / members_per_stamp


def sessions_spent(study: optuna.Study) -> float:
    """Wall time already spent on the study: the union of all workers' session intervals."""
    return schema.union_length(schema.session_spans(study))


def expected_epochs(epochs: int) -> float:
    """Mean epochs per trial under successive halving with reduction factor 3 (rungs 1, 3, 9...)."""
    total, alive, rung, prev = 0.0, 1.0, 1, 0
    while rung < epochs:
        total += alive * (rung - prev)
        alive /= 3
        prev, rung = rung, rung * 3
    return total + alive * (epochs - prev)


def finals_estimate(member_epoch_s: float, finalists: int, seeds: int, epochs: int) -> float:
    """Seconds the finalist stage needs: seeds × (finalists + baseline) × epochs, plus a margin."""
    return 1.25 * member_epoch_s * (finalists + 1) * seeds * epochs + 1.0
