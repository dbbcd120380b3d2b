"""The finalist stage: which trials and seeds, and its tasks run exactly once when workers die."""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from advisor.data.dataset import Dataset
from advisor.data.datasets import load_dataset
from advisor.knowledge.optimizers import Range
from advisor.train import train_members
from advisor.tuning.finals import choose_finalists, final_seeds, is_canonical, run_finals
from advisor.tuning.readback import build_result
from advisor.tuning.schema import (
    BASELINE,
    DUPLICATE,
    SEED,
    SETUP_TASK,
    STATUS,
    TASK,
    WORKER,
    FinalistSpec,
    read_finalists,
    write_finalists,
)
from advisor.tuning.space import SearchSpace
from advisor.tuning.storage import open_storage, worker_id

pytestmark = pytest.mark.usefixtures("one_thread")

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


# ------------------------------------------------------------ the stage as tasks, with real training


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("mnist-5k")


def _search_study(path: Path) -> optuna.Study:
    storage, _ = open_storage(None, path)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.add_trials([_trial("adam", 0.003, 0.95), _trial("nesterov", 0.1, 0.9)])
    return study


def _dead_worker() -> str:
    pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return f"{socket.gethostname()}:{int(pid.stdout)}:dead"


def _finals(study: optuna.Study, data: Dataset, seeds: int = 2) -> optuna.Study:
    train = functools.partial(train_members, batch_size=128, device="cpu")
    return run_finals(
        study,
        SPACE,
        finalists=1,
        seeds=seeds,
        seed=0,
        train=train,
        data=data,
        epochs=1,
        worker=worker_id(),
        wait_s=60,
    )


def _held_by_dead_worker(final: optuna.Study, attrs: dict[str, object]) -> None:
    final.enqueue_trial({}, user_attrs=attrs)
    trial = final.ask()  # takes the enqueued task, as the dead worker did
    trial.set_user_attr(WORKER, _dead_worker())


def _seed_runs(final: optuna.Study) -> list[int]:
    done = final.get_trials(states=(TrialState.COMPLETE,))
    return sorted(int(t.user_attrs[SEED]) for t in done if SEED in t.user_attrs)


def test_each_seed_runs_once_and_the_result_reads_back(tmp_path: Path, digits: Dataset) -> None:
    study = _search_study(tmp_path / "s.journal")
    final = _finals(study, digits)
    assert _seed_runs(final) == final_seeds(0, 2)
    setups = [t for t in final.get_trials() if t.user_attrs.get(TASK) == SETUP_TASK]
    assert [t.state for t in setups] == [TrialState.COMPLETE]
    result = build_result(study._storage, "s")
    assert result.recommendation.label in {"adam#0", "baseline"}
    # a second worker arriving later finds the stage done and runs nothing
    assert len(_finals(study, digits).get_trials()) == len(final.get_trials())


def test_a_setup_whose_worker_died_is_taken_over(tmp_path: Path, digits: Dataset) -> None:
    study = _search_study(tmp_path / "s.journal")
    final = optuna.create_study(study_name="s.final", storage=study._storage, direction="maximize")
    _held_by_dead_worker(final, {TASK: SETUP_TASK})  # died before choosing the finalists
    final = _finals(study, digits)
    assert _seed_runs(final) == final_seeds(0, 2)
    setups = [t for t in final.get_trials() if t.user_attrs.get(TASK) == SETUP_TASK]
    assert [t.state for t in setups] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_setup_that_died_halfway_keeps_its_finalists_and_adds_the_missing_seeds(
    tmp_path: Path, digits: Dataset
) -> None:
    study = _search_study(tmp_path / "s.journal")
    final = optuna.create_study(study_name="s.final", storage=study._storage, direction="maximize")
    _held_by_dead_worker(final, {TASK: SETUP_TASK})
    chosen = [FinalistSpec("nesterov#1", "nesterov", {"lr": 0.1, "momentum": 0.9}, "cosine", 1)]
    write_finalists(final, [*chosen, BASELINE])  # then died, having enqueued one seed of three
    final.enqueue_trial({}, user_attrs={SEED: final_seeds(0, 3)[0]})
    final = _finals(study, digits, seeds=3)
    assert _seed_runs(final) == final_seeds(0, 3)
    assert read_finalists(final) == [*chosen, BASELINE]  # not chosen again


def test_a_task_enqueued_twice_runs_once(tmp_path: Path, digits: Dataset) -> None:
    study = _search_study(tmp_path / "s.journal")
    final = optuna.create_study(study_name="s.final", storage=study._storage, direction="maximize")
    write_finalists(final, [*choose_finalists(study, SPACE, 1), BASELINE])
    for s in final_seeds(0, 2) + final_seeds(0, 2):  # every seed twice
        final.enqueue_trial({}, user_attrs={SEED: s})
    _held_by_dead_worker(final, {SEED: final_seeds(0, 2)[0]})  # and a third copy, orphaned
    final = _finals(study, digits)
    assert _seed_runs(final) == final_seeds(0, 2)
    dupes = [t for t in final.get_trials() if t.user_attrs.get(STATUS) == DUPLICATE]
    assert len(dupes) == 2 and all(t.state == TrialState.FAIL for t in dupes)


def test_canonical_copy_is_the_lowest_one_not_failed() -> None:
    def task(number: int, state: TrialState, seed: int = 7) -> optuna.trial.FrozenTrial:
        t = create_trial(
            state=state,
            value=0.0 if state == TrialState.COMPLETE else None,
            user_attrs={SEED: seed},
        )
        t.number = number
        return t

    a, b, c = task(0, TrialState.FAIL), task(1, TrialState.RUNNING), task(2, TrialState.RUNNING)
    assert is_canonical([a, b, c], b) and not is_canonical([a, b, c], c)
    other_seed = task(0, TrialState.RUNNING, seed=8)
    assert is_canonical([other_seed, c], c)
    done = task(3, TrialState.COMPLETE)
    assert not is_canonical([a, c, done], c)  # one copy finished: no other runs
