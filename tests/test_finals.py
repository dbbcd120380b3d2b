"""The finalist stage's choices, without training: which trials, which seeds."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from advisor.knowledge.optimizers import Range
from advisor.tuning.finals import choose_finalists, final_seeds
from advisor.tuning.space import SearchSpace

SPACE = SearchSpace(
    optimizers=("adam", "nesterov"),
    ranges={"adam": {"lr": Range(1e-4, 1e-1, log=True)}, "nesterov": {"lr": Range(1e-3, 1.0)}},
    schedules=("constant", "cosine"),
    fixed={"nesterov": {"momentum": 0.9}},
)
DISTS = {
    "optimizer": CategoricalDistribution(["adam", "nesterov"]),
    "schedule": CategoricalDistribution(["constant", "cosine"]),
}


def _trial(opt: str, lr: float, value: float | None, state: TrialState = TrialState.COMPLETE):
    params = {"optimizer": opt, f"{opt}.lr": lr, "schedule": "cosine"}
    dists = {**DISTS, f"{opt}.lr": FloatDistribution(1e-4, 1.0, log=True)}
    return create_trial(params=params, distributions=dists, value=value, state=state)


def _study(*trials: optuna.trial.FrozenTrial) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    return study


def test_best_distinct_complete_trials_first() -> None:
    study = _study(
        _trial("adam", 0.003, 0.95),  # 0
        _trial("nesterov", 0.1, 0.97),  # 1: the best
        _trial("adam", 0.003, 0.95),  # 2: the same configuration as trial 0
        _trial("adam", 0.01, 0.96),  # 3
        _trial("adam", 0.05, None, TrialState.PRUNED),  # 4: pruned, never a finalist
    )
    chosen = choose_finalists(study, SPACE, 3)
    assert [c.trial for c in chosen] == [1, 3, 0]  # trial 2 repeats trial 0: skipped
    assert [c.label for c in chosen] == ["nesterov#1", "adam#3", "adam#0"]
    # the optimizer's fixed settings come with it; parameter names lose their prefix
    assert chosen[0].hyperparameters == {"momentum": 0.9, "lr": 0.1}
    assert chosen[1].hyperparameters == {"lr": 0.01}
    assert chosen[0].schedule == "cosine" and chosen[0].search_val_accuracy == 0.97


def test_equal_values_keep_the_earlier_trial_and_k_caps_the_list() -> None:
    study = _study(_trial("adam", 0.01, 0.9), _trial("adam", 0.02, 0.9), _trial("adam", 0.03, 0.8))
    assert [c.trial for c in choose_finalists(study, SPACE, 2)] == [0, 1]


def test_no_complete_trial_no_finalist() -> None:
    study = _study(_trial("adam", 0.01, None, TrialState.PRUNED))
    assert choose_finalists(study, SPACE, 3) == []


def test_final_seeds_are_fresh_and_distinct() -> None:
    seeds = final_seeds(0, 5)
    assert seeds == [10_000, 10_001, 10_002, 10_003, 10_004]
    assert 0 not in seeds  # never the search seed
    # other search seeds give other final seeds: no run is judged twice on the same draws
    assert not set(final_seeds(1, 5)) & set(seeds)
