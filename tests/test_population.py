"""The population trainer against torch.optim, pruning, divergence and routing.

Exactness runs in float64: in float32 the population's GEMMs (one wide product for all
members, oneDNN) and fused optimizer kernels round differently from ``nn.Linear`` +
``torch.optim``, and adaptive methods amplify those last-bit differences at coordinates with
tiny gradients (measured after 87 steps: 2e-7 relative for the SGD family, up to 4e-3 for
Adagrad). In float64 the same code agrees to ~1e-13, so any formula slip shows at once.
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest
import torch
from data_helpers import subset

from advisor.core.errors import InvalidValueError, TrainingError, UnknownNameError
from advisor.data.dataset import Dataset
from advisor.data.datasets import load_dataset
from advisor.knowledge.optimizers import list_optimizers
from advisor.train import (
    EpochReport,
    MemberConfig,
    default_population,
    train_members,
    train_population,
    train_reference,
)
from advisor.train.models import mnist_mlp
from advisor.train.population_optim import SUPPORTED_CLASSES, torch_settings

EPOCHS = 3
BATCH = 32  # 1,250 samples: 39 full batches and one of 2 -> 120 steps


@pytest.fixture(scope="module")
def small() -> Dataset:
    return subset(load_dataset("mnist-5k"), 1250, 200)


# Every population optimizer, twice: momentum / beta1 varied, weight decay on and off, and
# every schedule.
CONFIGS = [
    MemberConfig("sgd", {"lr": 0.05}, key="sgd"),
    MemberConfig("sgd", {"lr": 0.1, "weight_decay": 1e-3}, "cosine", 1, key="sgd-wd"),
    MemberConfig("momentum", {"lr": 0.02, "momentum": 0.9}, key="momentum"),
    MemberConfig(
        "momentum",
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-3},
        "warmup_cosine",
        2,
        key="momentum-wd",
    ),
    MemberConfig("nesterov", {"lr": 0.02, "momentum": 0.9}, "cosine", key="nesterov"),
    MemberConfig(
        "nesterov",
        {"lr": 0.05, "momentum": 0.7, "weight_decay": 1e-3},
        init_seed=3,
        key="nesterov-wd",
    ),
    MemberConfig("adagrad", {"lr": 0.01}, key="adagrad"),
    MemberConfig("adagrad", {"lr": 0.03, "weight_decay": 1e-3}, "warmup_cosine", key="adagrad-wd"),
    MemberConfig("rmsprop", {"lr": 1e-3}, "cosine", key="rmsprop"),
    MemberConfig("rmsprop", {"lr": 3e-4, "weight_decay": 1e-3}, init_seed=4, key="rmsprop-wd"),
    MemberConfig("adam", {"lr": 1e-3}, key="adam"),
    MemberConfig(
        "adam", {"lr": 3e-3, "beta1": 0.8, "weight_decay": 1e-3}, "warmup_cosine", key="adam-wd"
    ),
    MemberConfig("adamw", {"lr": 1e-3}, "cosine", key="adamw"),  # registry default wd 0.01
    MemberConfig(
        "adamw", {"lr": 3e-3, "beta1": 0.85, "weight_decay": 0.0}, init_seed=5, key="adamw-no-wd"
    ),
    MemberConfig("nadam", {"lr": 2e-3}, key="nadam"),
    MemberConfig(
        "nadam", {"lr": 1e-3, "beta1": 0.8, "weight_decay": 1e-3}, "cosine", key="nadam-wd"
    ),
    MemberConfig("radam", {"lr": 1e-3}, "warmup_cosine", key="radam"),
    MemberConfig("radam", {"lr": 3e-3, "beta1": 0.8, "weight_decay": 1e-3}, key="radam-wd"),
]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def reference_weights(small: Dataset) -> dict[Hashable, dict[str, torch.Tensor]]:
    out = {}
    for config in CONFIGS:
        run = train_reference(config, small, epochs=EPOCHS, batch_size=BATCH, dtype=torch.float64)
        assert run.result.status == "complete"
        out[config.key] = run.model.state_dict()
    return out


def test_configs_cover_every_population_optimizer_and_schedule() -> None:
    # the newer methods (Muon, Adafactor, ...) are checked in test_population_modern.py
    newer = {"muon", "adafactor", "lion", "schedulefree", "prodigy"}
    names = [c.optimizer for c in CONFIGS]
    assert all(names.count(n) >= 2 for n in set(list_optimizers(population=True)) - newer)
    assert {c.schedule for c in CONFIGS} == {"constant", "cosine", "warmup_cosine"}
    assert EPOCHS * -(-1250 // BATCH) >= 100


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernels", "vectorized"])
def test_members_follow_torch_optim_exactly(
    small: Dataset, reference_weights: dict[Hashable, dict[str, torch.Tensor]], fused: bool
) -> None:
    run = train_population(
        CONFIGS, small, epochs=EPOCHS, batch_size=BATCH, dtype=torch.float64, fused=fused
    )
    assert all(r.status == "complete" for r in run.results)
    for config in CONFIGS:
        mine = run.population.state_dict(config.key)
        theirs = reference_weights[config.key]
        for name, tensor in theirs.items():
            err = relative_error(mine[name], tensor)
            assert err <= 1e-9, f"{config.key} {name}: relative error {err:.2e}"


def test_float32_default_path_tracks_the_reference(small: Dataset) -> None:
    """The production path (float32, oneDNN, fused kernels) stays close to torch.optim."""
    configs = [CONFIGS[i] for i in (0, 2, 10, 14)]
    run = train_population(configs, small, epochs=EPOCHS, batch_size=BATCH)
    for config, result in zip(configs, run.results):
        ref = train_reference(config, small, epochs=EPOCHS, batch_size=BATCH)
        assert result.val_loss == pytest.approx(ref.result.val_loss, rel=1e-3)
        assert result.train_loss == pytest.approx(ref.result.train_loss, rel=1e-3)
        mine = run.population.state_dict(config.key)
        for name, tensor in ref.model.state_dict().items():
            assert relative_error(mine[name], tensor) < 1e-2


def test_initial_weights_are_the_seeded_mlp(small: Dataset) -> None:
    configs = [MemberConfig("sgd", key="a", init_seed=7), MemberConfig("adam", key="b")]
    run = train_population(configs, small, epochs=0)
    for config in configs:
        torch.manual_seed(config.init_seed)
        expected = mnist_mlp().state_dict()
        model = mnist_mlp()
        model.load_state_dict(run.population.state_dict(config.key))
        assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)


PRUNE_CONFIGS = [
    MemberConfig("adam", {"lr": 2e-3}, key="a"),
    MemberConfig("sgd", {"lr": 0.05}, key="b"),
    MemberConfig("adam", {"lr": 1e-3}, "cosine", 1, key="c"),
    MemberConfig("nesterov", {"lr": 0.02}, key="d"),
    MemberConfig("rmsprop", {"lr": 1e-3}, key="e"),
]


def test_pruned_members_leave_the_others_unchanged(small: Dataset) -> None:
    reports: list[EpochReport] = []

    def prune(report: EpochReport) -> list[Hashable]:
        reports.append(report)
        return ["b", "e"] if report.epoch == 1 else []

    pruned = train_population(PRUNE_CONFIGS, small, epochs=EPOCHS, batch_size=BATCH, on_epoch=prune)
    alone_configs = [c for c in PRUNE_CONFIGS if c.key not in ("b", "e")]
    alone = train_population(alone_configs, small, epochs=EPOCHS, batch_size=BATCH)
    by_key = {r.key: r for r in pruned.results}
    assert by_key["b"].status == by_key["e"].status == "stopped"
    assert by_key["b"].epochs_run == 1 and by_key["b"].reason == "stopped by on_epoch"
    assert set(reports[0].val_accuracy) == {"a", "b", "c", "d", "e"}
    assert set(reports[1].val_accuracy) == {"a", "c", "d"}
    assert pruned.population.keys == alone.population.keys
    for config, result in zip(alone_configs, alone.results):
        assert by_key[config.key].status == "complete"
        assert by_key[config.key].val_loss == pytest.approx(result.val_loss, rel=1e-5)
        mine = pruned.population.state_dict(config.key)
        for name, tensor in alone.population.state_dict(config.key).items():
            assert relative_error(mine[name], tensor) <= 1e-5


def test_a_stopped_member_is_tested_as_it_stopped(small: Dataset) -> None:
    stop_b = lambda report: ["b"] if report.epoch == 1 else []  # noqa: E731
    run = train_population(
        PRUNE_CONFIGS, small, epochs=EPOCHS, batch_size=BATCH, on_epoch=stop_b, evaluate_test=True
    )
    b = next(r for r in run.results if r.key == "b")
    one = train_population(
        [PRUNE_CONFIGS[1]], small, epochs=1, batch_size=BATCH, evaluate_test=True
    )
    assert b.status == "stopped" and b.test_accuracy is not None
    # the same member trained for exactly one epoch (a population of one: float noise only)
    assert b.test_accuracy == pytest.approx(one.results[0].test_accuracy, abs=1 / len(small.y_test))
    assert all(r.test_accuracy is not None for r in run.results)


def test_a_diverging_member_is_dropped_and_the_others_complete(small: Dataset) -> None:
    reports: list[EpochReport] = []
    configs = [
        MemberConfig("adam", key="ok"),
        MemberConfig("sgd", {"lr": 1e4}, key="boom"),
        MemberConfig("momentum", {"lr": 0.02}, key="fine"),
    ]
    run = train_population(
        configs, small, epochs=2, batch_size=BATCH, on_epoch=reports.append, evaluate_test=True
    )
    ok, boom, fine = run.results
    assert boom.status == "diverged" and boom.epochs_run == 0
    assert boom.reason is not None and "training loss" in boom.reason
    assert boom.test_accuracy is None
    assert ok.status == fine.status == "complete" and ok.epochs_run == 2
    assert ok.test_accuracy is not None and ok.test_accuracy > 0.5
    assert set(reports[0].diverged) == {"boom"} and set(reports[0].val_accuracy) == {"ok", "fine"}
    assert not reports[1].diverged
    alone = train_population([configs[0], configs[2]], small, epochs=2, batch_size=BATCH)
    assert alone.results[0].val_loss == pytest.approx(ok.val_loss, rel=1e-5)
    assert alone.results[1].val_loss == pytest.approx(fine.val_loss, rel=1e-5)


def test_train_members_routes_and_keeps_the_order(small: Dataset) -> None:
    reports: list[tuple[int, frozenset[Hashable]]] = []

    def on_epoch(report: EpochReport) -> None:
        reports.append((report.epoch, frozenset(report.val_accuracy)))

    configs = [
        MemberConfig("adam", key="a"),
        MemberConfig("lbfgs", key="l"),
        MemberConfig("sgd", key="s"),
        MemberConfig("adam", {"lr": 2e-3}, key="a2"),
    ]
    results = train_members(configs, small, epochs=2, max_population=2, on_epoch=on_epoch)
    assert [r.key for r in results] == ["a", "l", "s", "a2"]
    assert all(r.status == "complete" for r in results)
    assert reports == [
        (1, frozenset({"a", "s"})),
        (2, frozenset({"a", "s"})),
        (1, frozenset({"a2"})),
        (2, frozenset({"a2"})),
        (1, frozenset({"l"})),
        (2, frozenset({"l"})),
    ]
    together = train_members([configs[0], configs[2], configs[3]], small, epochs=2)
    for alone, chunked in zip(together, [results[0], results[2], results[3]]):
        assert alone.val_loss == pytest.approx(chunked.val_loss, rel=1e-5)


def test_keys_default_to_positions_and_must_be_unique(small: Dataset) -> None:
    results = train_members([MemberConfig("sgd"), MemberConfig("adam")], small, epochs=1)
    assert [r.key for r in results] == [0, 1]
    with pytest.raises(InvalidValueError, match="unique"):
        train_members([MemberConfig("sgd", key=1), MemberConfig("adam", key=1)], small, epochs=1)


def test_configs_are_validated_eagerly() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'adam'"):
        MemberConfig("adan")
    with pytest.raises(InvalidValueError, match="does not take hyperparameter 'beta1'"):
        MemberConfig("sgd", {"beta1": 0.9})
    with pytest.raises(UnknownNameError, match="schedule"):
        MemberConfig("sgd", schedule="linear")
    with pytest.raises(InvalidValueError, match="finite"):
        MemberConfig("sgd", {"lr": float("nan")})


@pytest.mark.parametrize("name", list_optimizers(population=True))
def test_every_population_optimizer_has_an_update_rule(name: str) -> None:
    assert torch_settings(name, {})["class"] in SUPPORTED_CLASSES


def test_lbfgs_has_no_population_update_rule() -> None:
    with pytest.raises(TrainingError, match="reference trainer"):
        torch_settings("lbfgs", {})


def test_default_population() -> None:
    assert default_population("cpu") == 16
    assert default_population(torch.device("cuda", 0)) > default_population("cpu")
