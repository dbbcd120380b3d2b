from __future__ import annotations

from collections.abc import Hashable

import pytest
import schedulefree
import torch
from data_helpers import subset
from torch import nn

from advisor.core.errors import InvalidValueError, TrainingError
from advisor.data.dataset import Dataset
from advisor.data.datasets import load_dataset
from advisor.train import EpochReport, MemberConfig, train_members, train_reference
from advisor.train.batches import batch_bounds, epoch_permutation


@pytest.fixture(scope="module")
def small() -> Dataset:
    return subset(load_dataset("mnist-5k"), 1000, 200)


def test_trains_the_seed_mlp(small: Dataset) -> None:
    run = train_reference(
        MemberConfig("adam", {"lr": 3e-3}, key="a"), small, epochs=3, evaluate_test=True
    )
    result = run.result
    assert result.key == "a" and result.status == "complete" and result.reason is None
    assert result.epochs_run == 3
    assert len(result.val_accuracy) == len(result.val_loss) == len(result.train_loss) == 3
    assert result.train_loss[-1] < result.train_loss[0]
    assert result.val_accuracy[-1] > 0.7
    assert result.test_accuracy is not None and 0.7 < result.test_accuracy <= 1.0


def test_same_seeds_same_run(small: Dataset) -> None:
    config = MemberConfig("momentum", {"lr": 0.05}, schedule="cosine", init_seed=2)
    a = train_reference(config, small, epochs=2, data_seed=5).result
    b = train_reference(config, small, epochs=2, data_seed=5).result
    c = train_reference(config, small, epochs=2, data_seed=6).result
    assert a.val_loss == b.val_loss
    assert a.val_loss != c.val_loss


def test_lbfgs_reduces_the_loss_of_a_convex_problem(small: Dataset) -> None:
    # multinomial logistic regression: a convex loss; L-BFGS takes full-batch steps
    run = train_reference(
        MemberConfig("lbfgs"), small, epochs=3, model_factory=lambda: nn.Linear(784, 10)
    )
    losses = run.result.train_loss  # full-batch loss at the start of each epoch's step
    assert run.result.status == "complete"
    assert losses[1] < 0.01 * losses[0]
    assert losses[2] <= losses[1]


def test_huge_learning_rate_diverges(small: Dataset) -> None:
    result = train_reference(MemberConfig("sgd", {"lr": 1e4}), small, epochs=2).result
    assert result.status == "diverged"
    assert result.reason is not None and "training loss" in result.reason
    assert result.epochs_run == 0


def test_on_epoch_can_stop_the_member(small: Dataset) -> None:
    reports: list[EpochReport] = []

    def on_epoch(report: EpochReport) -> list[Hashable]:
        reports.append(report)
        return ["m"] if report.epoch == 2 else []

    result = train_reference(
        MemberConfig("sgd", key="m"), small, epochs=4, on_epoch=on_epoch, evaluate_test=True
    ).result
    assert [r.epoch for r in reports] == [1, 2]
    assert set(reports[0].val_accuracy) == {"m"}
    assert reports[1].elapsed_s >= reports[0].elapsed_s > 0
    assert result.status == "stopped" and result.epochs_run == 2
    # tested as it stopped: the same run trained for exactly 2 epochs
    two = train_reference(MemberConfig("sgd", key="m"), small, epochs=2, evaluate_test=True)
    assert result.test_accuracy is not None
    assert result.test_accuracy == two.result.test_accuracy


def test_unknown_keys_from_on_epoch_are_an_error(small: Dataset) -> None:
    with pytest.raises(InvalidValueError, match="unknown member keys"):
        train_reference(MemberConfig("sgd", key="m"), small, epochs=1, on_epoch=lambda r: ["x"])


def test_model_factory_trains_in_the_generic_population(small: Dataset) -> None:
    seen: list[tuple[int, tuple[Hashable, ...]]] = []

    def on_epoch(report: EpochReport) -> None:
        seen.append((report.epoch, tuple(report.val_accuracy)))

    def factory() -> nn.Module:
        return nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))

    configs = [MemberConfig("adam", key="x"), MemberConfig("nesterov", key="y")]
    results = train_members(configs, small, epochs=2, model_factory=factory, on_epoch=on_epoch)
    assert [r.key for r in results] == ["x", "y"]
    assert all(r.status == "complete" and r.trainer == "func" for r in results)
    # a vmappable model: both members together, one report per epoch
    # (tests/test_generic_population.py checks them against this trainer)
    assert seen == [(1, ("x", "y")), (2, ("x", "y"))]
    # the factory ran under torch.manual_seed(init_seed): same init as a seeded call
    torch.manual_seed(0)
    expected = factory()
    run = train_reference(configs[0], small, epochs=0, model_factory=factory)
    assert all(torch.equal(a, b) for a, b in zip(expected.parameters(), run.model.parameters()))


def _bn_model() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


def test_schedule_free_trains_at_y_evaluates_at_x_and_recomputes_batchnorm(
    small: Dataset,
) -> None:
    config = MemberConfig("schedulefree", {"lr": 3e-3}, init_seed=3)
    run = train_reference(config, small, epochs=1, batch_size=64, model_factory=_bn_model)
    assert run.result.status == "complete"
    # the same steps written out with the package: train(), steps, eval(), fresh BN statistics
    torch.manual_seed(3)
    model = _bn_model()
    opt = schedulefree.AdamWScheduleFree(model.parameters(), lr=3e-3)
    model.train()
    opt.train()
    perm = epoch_permutation(small.x_train.shape[0], data_seed=0, epoch=1)
    for start, stop in batch_bounds(small.x_train.shape[0], 64):
        idx = perm[start:stop]
        opt.zero_grad()
        nn.functional.cross_entropy(model(small.x_train[idx]), small.y_train[idx]).backward()
        opt.step()
    opt.eval()
    trained_stats = model[1].running_mean.clone()
    bn = model[1]
    bn.reset_running_stats()
    bn.momentum = None
    with torch.no_grad():
        for start in range(0, min(small.x_train.shape[0], 50 * 64), 64):
            model(small.x_train[start : start + 64])
    bn.momentum = 0.1
    theirs = run.model.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(theirs[name], tensor), name
    assert not torch.equal(trained_stats, bn.running_mean)  # the statistics were recomputed


def test_muon_trains_hidden_weights_and_refuses_models_without_any(small: Dataset) -> None:
    def deep() -> nn.Module:
        return nn.Sequential(
            nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
        )

    run = train_reference(MemberConfig("muon", {"lr": 3e-3}), small, epochs=1, model_factory=deep)
    assert run.result.status == "complete" and run.result.val_accuracy[-1] > 0.5
    with pytest.raises(TrainingError, match="no hidden 2-D weight"):
        train_reference(
            MemberConfig("muon"), small, epochs=1, model_factory=lambda: nn.Linear(784, 10)
        )
