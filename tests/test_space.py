"""The tuning search space: dimensions by budget, the Sobol first batch, round trips."""

from __future__ import annotations

import math

import optuna
import pytest

from advisor.knowledge.optimizers import Range, get_optimizer_info
from advisor.tuning.space import build_space, space_from_dict


def _space(n: int, opts: tuple[str, ...] = ("adam", "nesterov", "sgd")):
    return build_space(opts, {}, {}, n)


@pytest.mark.parametrize(
    ("trials", "dims"),
    [
        (5, ("optimizer", "lr")),
        (12, ("optimizer", "lr", "momentum", "beta1", "schedule")),
        (40, ("optimizer", "lr", "momentum", "beta1", "eps", "weight_decay", "schedule")),
        (150, ("optimizer", "lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "schedule")),
    ],
)
def test_dimensions_grow_with_the_trial_budget(trials: int, dims: tuple[str, ...]) -> None:
    space = _space(trials)
    assert space.dimensions == dims
    assert str(trials) in space.reason


def test_small_budgets_use_a_decaying_schedule() -> None:
    assert _space(5).schedules == ("cosine",)
    assert "constant" in _space(12).schedules


def test_rule_ranges_override_the_registry() -> None:
    lr = Range(1e-3, 1e-2, log=True, source="rule-x")
    space = build_space(("adam",), {"adam": lr}, {}, 5)
    assert space.ranges["adam"]["lr"] == lr
    assert space.dimensions == ("lr",)


def test_initial_design_is_stratified_and_inside_the_ranges() -> None:
    space = _space(40)
    design = space.initial_design(12, seed=3)
    assert len(design) == 12
    assert [d["optimizer"] for d in design[:3]] == ["adam", "nesterov", "sgd"]
    for params in design:
        opt = params["optimizer"]
        for name, r in space.ranges[opt].items():
            assert r.low <= params[f"{opt}.{name}"] <= r.high
        assert params["schedule"] in space.schedules
    # scrambled Sobol with a seed: reproducible, and a different seed gives other points
    assert design == space.initial_design(12, seed=3)
    assert design != space.initial_design(12, seed=4)


def test_initial_design_covers_the_log_range_evenly() -> None:
    space = build_space(("sgd",), {}, {}, 5)
    lrs = [p["sgd.lr"] for p in space.initial_design(16, seed=0)]
    r = get_optimizer_info("sgd").search_space["lr"]
    u = sorted((math.log(x) - math.log(r.low)) / (math.log(r.high) - math.log(r.low)) for x in lrs)
    # one point in each sixteenth of the log range (Sobol balance)
    assert [int(v * 16) for v in u] == list(range(16))


def test_suggest_replays_enqueued_parameters() -> None:
    space = _space(40)
    study = optuna.create_study(direction="maximize")
    params = space.initial_design(1, seed=0)[0]
    study.enqueue_trial(params)
    trial = study.ask()
    optimizer, hp, schedule = space.suggest(trial)
    assert optimizer == params["optimizer"]
    assert hp["lr"] == params[f"{optimizer}.lr"]
    assert schedule == params["schedule"]


def test_round_trip_through_a_dict() -> None:
    space = _space(40)
    again = space_from_dict(space.to_dict())
    assert again.signature() == space.signature()
    assert again.ranges == space.ranges


def test_a_pinned_hyperparameter_is_fixed_not_searched() -> None:
    pinned = Range(0.9, 0.9)
    space = build_space(("adam",), {}, {"adam": pinned}, 12)
    assert "beta1" not in space.ranges["adam"]
    assert space.fixed["adam"] == {"beta1": 0.9}
    assert "beta1" not in space.dimensions
    study = optuna.create_study(direction="maximize")
    _, hp, _ = space.suggest(study.ask())
    assert hp["beta1"] == 0.9
    assert space_from_dict(space.to_dict()).fixed == space.fixed


def test_learning_rate_free_and_schedule_free_methods() -> None:
    space = build_space(("prodigy", "schedulefree", "adam"), {}, {}, 40)
    # Prodigy: lr pinned at 1, its one knob d_coef searched in lr's place
    assert space.fixed["prodigy"] == {"lr": 1.0}
    assert space.ranges["prodigy"]["d_coef"] == get_optimizer_info("prodigy").search_space["d_coef"]
    assert "d_coef" in space.dimensions
    # schedule-free: its own schedule, never a sampled one
    design = space.initial_design(6, seed=0)
    for params in design:
        opt = params["optimizer"]
        assert ("schedule" in params) == (opt != "schedulefree")
        assert space.schedule_of(opt, params) == (
            "warmup_constant" if opt == "schedulefree" else params.get("schedule", "constant")
        )
    study = optuna.create_study(direction="maximize")
    for params in design:
        study.enqueue_trial(params)
        optimizer, hp, schedule = space.suggest(study.ask())
        assert optimizer == params["optimizer"]
        if optimizer == "prodigy":
            assert hp["lr"] == 1.0 and hp["d_coef"] == params["prodigy.d_coef"]
        if optimizer == "schedulefree":
            assert schedule == "warmup_constant"
