"""The search's sampler steered away from optimizers over their budget share."""

from __future__ import annotations

import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import create_trial

from advisor.tuning import schema
from advisor.tuning.sampler import make_sampler


def _study_where_lbfgs_wins(n: int = 30) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for i in range(n):
        opt = "lbfgs" if i % 2 else "adam"
        study.add_trial(
            create_trial(
                params={"optimizer": opt, f"{opt}.lr": 0.01 + i / 1000},
                distributions={
                    "optimizer": CategoricalDistribution(["adam", "lbfgs"]),
                    f"{opt}.lr": FloatDistribution(1e-4, 1.0, log=True),
                },
                value=0.9 if opt == "lbfgs" else 0.5,
            )
        )
    return study


def _optimizers_asked(study: optuna.Study, n: int) -> list[str]:
    picked = []
    for _ in range(n):
        trial = study.ask()
        opt = trial.suggest_categorical("optimizer", ["adam", "lbfgs"])
        trial.suggest_float(f"{opt}.lr", 1e-4, 1.0, log=True)
        study.tell(trial, 0.5)
        picked.append(opt)
    return picked


def test_tpe_follows_the_better_optimizer_unless_it_is_to_be_avoided() -> None:
    free = _study_where_lbfgs_wins()
    free.sampler = make_sampler(0, 10, "host:1:a")
    assert _optimizers_asked(free, 10).count("lbfgs") >= 7  # TPE alone: mostly the winner
    steered = _study_where_lbfgs_wins()
    steered.sampler = make_sampler(0, 10, "host:1:a", avoid=lambda: {"lbfgs"})
    assert _optimizers_asked(steered, 10) == ["adam"] * 10
    # every sampled trial is stamped with its worker when it is created
    assert all(t.user_attrs[schema.WORKER] == "host:1:a" for t in steered.trials[30:])


def test_only_the_chosen_optimizers_groups_are_sampled() -> None:
    """Plain grouped TPE samples every optimizer's parameters for every trial; advisor's
    sampler samples the optimizer first, then only that optimizer's group."""
    plain = _study_where_lbfgs_wins()
    with warnings.catch_warnings():  # multivariate/group are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plain.sampler = optuna.samplers.TPESampler(
            seed=0, n_startup_trials=10, multivariate=True, group=True, constant_liar=True
        )
    assert set(plain.ask().relative_params) == {"optimizer", "adam.lr", "lbfgs.lr"}
    lazy = _study_where_lbfgs_wins()
    lazy.sampler = make_sampler(0, 10, "host:1:a")
    for _ in range(5):
        trial = lazy.ask()
        opt = trial.relative_params["optimizer"]
        assert set(trial.relative_params) == {"optimizer", f"{opt}.lr"}
        lazy.tell(trial, state=optuna.trial.TrialState.PRUNED)
