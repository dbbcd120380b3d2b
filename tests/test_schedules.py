from __future__ import annotations

import math

import pytest
import torch

from advisor.core.errors import InvalidValueError, UnknownNameError
from advisor.train import SCHEDULES
from advisor.train.batches import batch_bounds, epoch_permutation, steps_per_epoch
from advisor.train.schedules import lr_factor, lr_factors, lr_lambda, warmup_steps


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_listed_schedule_is_a_curve_from_one(schedule: str) -> None:
    """What SCHEDULES lists, lr_factor implements: the tuner searches exactly these names."""
    values = lr_factors(schedule, 50)
    assert len(values) == 50 and all(0.0 <= v <= 1.0 for v in values)
    assert max(values) == 1.0
    with pytest.raises(UnknownNameError) as err:
        lr_factor(schedule + "x", 0, 50)
    assert all(name in str(err.value) for name in SCHEDULES)  # the error lists the choices


def test_constant() -> None:
    assert lr_factors("constant", 7) == [1.0] * 7


def test_cosine_decays_from_one_towards_zero() -> None:
    total = 100
    values = lr_factors("cosine", total)
    assert values[0] == 1.0
    assert values[50] == pytest.approx(0.5)
    assert values[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert values[-1] < 0.001
    assert all(a > b for a, b in zip(values, values[1:]))
    assert lr_factor("cosine", total, total) == pytest.approx(0.0)


def test_warmup_cosine() -> None:
    total = 200
    warm = warmup_steps(total)
    assert warm == 10  # 5% of the steps
    values = lr_factors("warmup_cosine", total)
    assert values[:warm] == pytest.approx([(t + 1) / warm for t in range(warm)])
    assert values[warm - 1] == 1.0 and values[warm] == 1.0
    assert all(a > b for a, b in zip(values[warm:], values[warm + 1 :]))
    assert values[warm + (total - warm) // 2] == pytest.approx(0.5, abs=0.01)
    assert values[-1] < 0.001


def test_warmup_of_tiny_runs() -> None:
    assert warmup_steps(1) == 1
    assert lr_factors("warmup_cosine", 1) == [1.0]
    assert warmup_steps(21) == 2


def test_unknown_schedule_suggests_a_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'cosine'"):
        lr_factor("cosin", 0, 10)
    with pytest.raises(InvalidValueError):
        lr_factor("cosine", 0, 0)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_lambda_lr_follows_the_factors(schedule: str) -> None:
    total = 30
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(schedule, total))
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == [0.2 * f for f in lr_factors(schedule, total)]


def test_epoch_permutation_is_seeded_by_seed_and_epoch() -> None:
    a = epoch_permutation(100, data_seed=0, epoch=1)
    assert torch.equal(a, epoch_permutation(100, data_seed=0, epoch=1))
    assert sorted(a.tolist()) == list(range(100))
    assert not torch.equal(a, epoch_permutation(100, data_seed=0, epoch=2))
    assert not torch.equal(a, epoch_permutation(100, data_seed=1, epoch=1))


def test_batches_keep_the_last_partial_batch() -> None:
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert steps_per_epoch(55_000, 128) == 430
    with pytest.raises(InvalidValueError):
        batch_bounds(10, 0)
