"""The LR range test on mnist-5k: the population run, the reference run, the narrowed range
against a grid search, the tuner's probe_ranges hook and the plot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from advisor.core.errors import InvalidValueError, UnknownNameError
from advisor.data.dataset import Dataset
from advisor.data.datasets import load_dataset
from advisor.knowledge.optimizers import Range
from advisor.knowledge.profile import Profile
from advisor.knowledge.recommender import recommend
from advisor.probe.lr_range import (
    LRRangeResult,
    apply_lr_range,
    lr_ramp,
    lr_range_test,
    narrow_range,
    probe_ranges,
    steepest_descent,
)
from advisor.train import MemberConfig, Population, train_members
from advisor.train.models import mnist_mlp

ROOT = Path(__file__).resolve().parents[1]
GRID = {"adam": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "nesterov": [1e-2, 3e-2, 0.1, 0.3, 1.0]}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def population(data: Dataset) -> dict[str, LRRangeResult]:
    return lr_range_test(["adam", "nesterov"], data, device="cpu")


def test_ramp_and_helpers() -> None:
    lrs = lr_ramp(1e-6, 10.0, 100)
    assert lrs[0] == 1e-6 and lrs[-1] == pytest.approx(10.0)
    assert all(b / a == pytest.approx(lrs[1] / lrs[0]) for a, b in zip(lrs, lrs[1:]))
    # the steepest descent of a curve falling fastest at step 30 (after the 10 skipped)
    curve = [2.0 - math.tanh((i - 30) / 5) for i in range(60)]
    assert steepest_descent(list(range(60)), curve) == 30
    assert steepest_descent([1.0, 2.0], [1.0, 0.5]) is None
    r = narrow_range(0.1)
    assert (r.low, r.high, r.log, r.source) == (0.001, 0.1, True, "lr_range_test")
    assert narrow_range(0.1, still_falling=True).high == pytest.approx(1.0)


def test_population_run(population: dict[str, LRRangeResult]) -> None:
    assert list(population) == ["adam", "nesterov"]
    for r in population.values():
        n = len(r.lrs)
        assert 20 < n <= 100 and len(r.losses) == len(r.smoothed) == n
        assert r.lrs == tuple(lr_ramp(1e-6, 10.0, 100)[:n])
        assert r.losses[0] == pytest.approx(math.log(10), abs=0.1)  # a fresh net guesses
        assert r.stopped == "diverged" and r.diverged_lr == r.lrs[-1]
        assert r.smoothed[-1] > 4.0 * min(r.smoothed)  # the stop criterion
        assert r.min_loss_lr == r.lrs[r.smoothed.index(min(r.smoothed))]
        assert r.suggested_lr is not None and r.lrs[10] <= r.suggested_lr <= r.lrs[-2]
        assert r.range is not None and r.range.source == "lr_range_test"
        assert r.range.high == pytest.approx(r.min_loss_lr, rel=1e-2)
        assert r.range.low == pytest.approx(r.min_loss_lr / 100, rel=1e-2)
    # Adam tolerates ten times smaller learning rates than SGD before it diverges
    assert population["adam"].diverged_lr < population["nesterov"].diverged_lr  # type: ignore[operator]


def test_population_matches_the_reference_run(
    data: Dataset, population: dict[str, LRRangeResult]
) -> None:
    """A factory (even of the seed MLP) goes through torch.optim one candidate at a time:
    same weights, batches and learning rates, so the same curves (to float32 rounding)."""
    reference = lr_range_test(["adam", "nesterov"], data, model=lambda: mnist_mlp(), device="cpu")
    for name, r in population.items():
        ref = reference[name]
        assert ref.lrs[:40] == r.lrs[:40]
        assert ref.losses[:40] == pytest.approx(r.losses[:40], rel=1e-4)
        assert ref.range == r.range


def test_the_range_holds_the_grid_search_best(
    data: Dataset, population: dict[str, LRRangeResult]
) -> None:
    """5 epochs, batch 128, constant and cosine schedules, 2 seeds: the best learning rate
    of the grid (by mean validation accuracy) lies in the narrowed range."""
    configs = [
        MemberConfig(
            opt, {"lr": lr}, schedule=schedule, init_seed=seed, key=(opt, lr, schedule, seed)
        )
        for opt, lrs in GRID.items()
        for lr in lrs
        for schedule in ("constant", "cosine")
        for seed in (0, 1)
    ]
    results = train_members(configs, data, epochs=5, batch_size=128, device="cpu")
    accuracy: dict[tuple[str, float, str], list[float]] = {}
    for res in results:
        opt, lr, schedule, _ = res.key  # type: ignore[misc]
        final = res.val_accuracy[-1] if res.status == "complete" else 0.0
        accuracy.setdefault((opt, lr, schedule), []).append(final)
    for opt in GRID:
        r = population[opt].range
        assert r is not None
        for schedule in ("constant", "cosine"):
            scores = {lr: sum(accuracy[(opt, lr, schedule)]) / 2 for lr in GRID[opt]}
            best = max(scores, key=scores.__getitem__)
            assert r.contains(best), (opt, schedule, best, r, scores)
        assert r.high / r.low == pytest.approx(100, rel=0.05)  # two decades, not the registry's 3+


def test_a_custom_model_runs_one_candidate_at_a_time(
    data: Dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    rng = torch.get_rng_state()
    plot = tmp_path / "lr.png"
    res = lr_range_test(
        "adam", data, model="examples.small_cnn:small_cnn", device="cpu", steps=60, plot=plot
    )
    assert torch.equal(rng, torch.get_rng_state())  # nothing global changed
    r = res["adam"]
    assert len(r.lrs) <= 60 and r.range is not None
    assert min(r.losses) < r.losses[0]  # it trained
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_ranges_for_the_tuner(data: Dataset) -> None:
    ranges = probe_ranges(
        ["Adam", "nesterov", "lbfgs"], data, model=None, device="cpu", batch_size=128, seed=0
    )
    assert list(ranges) == ["adam", "nesterov"]  # L-BFGS keeps its range
    assert all(isinstance(r, Range) and r.source == "lr_range_test" for r in ranges.values())
    assert probe_ranges(["lbfgs"], data, device="cpu") == {}
    with pytest.raises(UnknownNameError, match="Did you mean 'adam'"):
        probe_ranges(["adma"], data, device="cpu")


def test_apply_lr_range(population: dict[str, LRRangeResult]) -> None:
    rec = recommend(Profile(params=118_282, samples=3_600, convexity="nonconvex"))
    applied = apply_lr_range(rec, population)
    for c in applied.candidates:
        if c.optimizer in population:
            r = population[c.optimizer]
            assert c.search_space["lr"] == r.range
            assert r.range is not None and r.range.contains(c.hyperparameters["lr"])
            assert f"lr={c.hyperparameters['lr']:.4g}" in c.torch
            assert c.reasons[-1].rule == "lr-range-test"
        else:
            before = next(b for b in rec.candidates if b.optimizer == c.optimizer)
            assert c == before
    assert applied.to_dict()["candidates"][0]["search_space"]["lr"]["source"] in (
        "registry",
        "lr_range_test",
    )


def test_population_lr_table_hook() -> None:
    configs = [MemberConfig("sgd", {"lr": 0.1}, key=0)]
    with pytest.raises(InvalidValueError, match="lr_table"):
        Population(configs, [0], n_features=784, n_classes=10, total_steps=5, lr_table=[1.0] * 4)
    pop = Population(
        configs, [0], n_features=784, n_classes=10, total_steps=3, lr_table=[1.0, 2.0, 4.0]
    )
    assert pop.lr_tables == [[1.0, 2.0, 4.0]] and pop.base_lrs == [0.1]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"candidates": ["lbfgs"]}, InvalidValueError, "line search"),
        ({"candidates": []}, InvalidValueError, "at least one"),
        ({"candidates": ["adamm"]}, UnknownNameError, "adam"),
        ({"min_lr": 1.0, "max_lr": 0.1}, InvalidValueError, "min_lr"),
        ({"steps": 1}, InvalidValueError, "steps"),
        ({"smooth": 1.0}, InvalidValueError, "smooth"),
        ({"diverge_factor": 1.0}, InvalidValueError, "diverge_factor"),
    ],
)
def test_bad_arguments(data: Dataset, kwargs: dict[str, object], error: type, words: str) -> None:
    args: dict[str, object] = {"candidates": ["adam"], "device": "cpu", **kwargs}
    with pytest.raises(error, match=words):
        lr_range_test(args.pop("candidates"), data, **args)  # type: ignore[arg-type]


def test_a_regression_is_probed_with_its_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LR range test of a regression follows the task's MSE (standardized targets: the
    curve starts near the targets' variance, 1) and narrows a range from it."""
    from advisor.data.sources import load_user_data
    from advisor.data.task import Task

    monkeypatch.syspath_prepend(str(ROOT))
    from examples.regression import data as diabetes
    from examples.regression import mlp

    ds = load_user_data(diabetes(), kind="regression")
    res = lr_range_test("adam", ds, model=mlp, device="cpu", steps=60, task=Task("regression"))
    r = res["adam"]
    assert 0.5 < r.losses[0] < 3.0 and min(r.losses) < 0.8 * r.losses[0]
    assert r.range is not None
    ranges = probe_ranges(["adam", "lbfgs"], ds, model=mlp, device="cpu", task=Task("regression"))
    assert list(ranges) == ["adam"]
    with pytest.raises(InvalidValueError, match="seed MLP is a classifier"):
        lr_range_test("adam", ds, device="cpu", task=Task("regression"))
