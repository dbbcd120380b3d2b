"""Time accounting: epochs a pruned trial runs, the finalist estimate, wall time already spent."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from advisor.tuning.budget import (
    CostModel,
    by_optimizer,
    calibrate_costs,
    expected_epochs,
    finals_estimate,
    sessions_spent,
    timed_apart,
)
from advisor.tuning.schema import session_key


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_command_line_budget_counts_from_the_process_start() -> None:
    """In the ``advisor`` command a budget counts from the process's start (what a user
    timing the command from the shell counts); called from Python, from the call."""
    code = (
        "import time; time.sleep(0.5); imported = time.time()\n"
        "from advisor.core import clock\n"
        "print(imported - clock.budget_origin())\n"
        "clock.mark_command_start()  # what the console script's main() does\n"
        "print(imported - clock.budget_origin())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from_python, from_command = map(float, out.stdout.split())
    assert from_python < 0 < 0.5 <= from_command < 60


@pytest.mark.parametrize(
    ("epochs", "expected"),
    [
        (1, 1.0),  # no rung before the end: every trial runs its one epoch
        (2, 1 + 1 / 3),  # all run epoch 1, a third goes on to epoch 2
        (3, 1 + 2 / 3),  # rung at 1, then a third runs epochs 2 and 3
        (5, 1 + 2 / 3 + 2 / 9),  # rungs at 1 and 3: a ninth runs epochs 4 and 5
        (9, 1 + 2 / 3 + 6 / 9),
    ],
)
def test_expected_epochs_under_successive_halving(epochs: int, expected: float) -> None:
    assert expected_epochs(epochs) == pytest.approx(expected)


def test_finals_estimate_counts_every_member_seed_epoch() -> None:
    # 2 s per member-epoch, 3 finalists + baseline, 5 seeds, 4 epochs: 160 s, +25 % and 1 s
    assert finals_estimate(2.0, 3, 5, 4) == pytest.approx(1.25 * 160 + 1)


def test_sessions_spent_is_the_union_of_worker_sessions() -> None:
    study = optuna.create_study()
    study.set_user_attr(session_key("a"), [100.0, 160.0])
    study.set_user_attr(session_key("b"), [130.0, 190.0])  # overlaps a: counted once
    study.set_user_attr(session_key("c"), [300.0, 310.0])
    study.set_user_attr(session_key("d"), [140.0, 150.0])  # inside a
    study.set_user_attr("advisor_settings", {"not": "a session"})
    assert sessions_spent(study) == pytest.approx(90.0 + 10.0)
    assert sessions_spent(optuna.create_study()) == 0.0


def test_cost_model_follows_the_batches_and_caps_the_share() -> None:
    costs = CostModel(search={"adam": 0.01, "lbfgs": 0.4}, final={"adam": 0.02, "lbfgs": 0.4})
    costs.observe("lbfgs", member_epochs=5, seconds=4.0, trials=1)  # 0.8 s per member-epoch
    assert costs.search["lbfgs"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.8)
    costs.observe("adam", member_epochs=100, seconds=1.0, trials=40)
    assert costs.trials == {"lbfgs": 1, "adam": 40}
    # 5 s of search: each of 2 optimizers may use 1.5 * 5 / 2 = 3.75 s; lbfgs used 4 s
    assert costs.over_share(["adam", "lbfgs"], search_s=5.0) == {"lbfgs"}
    assert costs.over_share(["adam", "lbfgs"], search_s=20.0) == set()
    assert costs.over_share(["lbfgs"], search_s=5.0) == set()  # alone: nothing to share
    # finals: one lbfgs finalist and the Adam baseline, 2 seeds of 3 epochs, plus margins
    assert costs.finals_s(["lbfgs"], 2, 3) == pytest.approx(1.25 * (0.4 + 0.02) * 6 + 1.0)
    assert costs.to_dict()["lbfgs"]["seconds"] == 4.0


def test_per_optimizer_spend_adds_up_over_workers() -> None:
    a = {"adam": {"trials": 10, "seconds": 2.0}}
    b = {"adam": {"trials": 5, "seconds": 1.0}, "lbfgs": {"trials": 1, "seconds": 3.0}}
    assert by_optimizer([a, b]) == {
        "adam": {"trials": 15, "seconds": 3.0},
        "lbfgs": {"trials": 1, "seconds": 3.0},
    }


def test_calibration_times_each_lone_optimizer_on_its_own() -> None:
    """L-BFGS trains alone, full batch: measured apart, it costs far more per member-epoch
    than a member of an Adam population."""
    import functools

    from advisor.data.datasets import load_dataset
    from advisor.train import train_members

    data = load_dataset("mnist-5k")
    train = functools.partial(train_members, batch_size=128, device="cpu", max_population=8)
    costs = calibrate_costs(
        train, data, ["nesterov", "lbfgs"], k=8, k_final=3, batch_size=128, reference_only=False
    )
    assert set(costs.search) == {"nesterov", "lbfgs", "adam"}
    assert costs.search["nesterov"] == costs.search["adam"]  # one population, taking turns
    assert costs.final["nesterov"] == pytest.approx(costs.final["adam"])  # scaled like Adam's
    assert timed_apart("muon") and not timed_apart("prodigy")  # Newton-Schulz: on its own
    # about 20 full-batch passes per epoch against an eighth of a population epoch: a
    # ratio of tens, so a factor 3 holds on any machine however loaded
    assert costs.search["lbfgs"] > 3 * costs.search["adam"]
    assert costs.final["lbfgs"] == costs.search["lbfgs"]  # alone in the finals too


def test_a_lone_optimizers_finals_follow_its_trials() -> None:
    """L-BFGS trains one member at a time in the search and in the finals: what its trials
    cost is what its finals will cost; a population optimizer's finals keep their scale."""
    costs = CostModel(search={"adam": 0.01, "lbfgs": 1.0}, final={"adam": 0.02, "lbfgs": 1.0})
    costs.alone.add("lbfgs")
    costs.observe("lbfgs", member_epochs=2, seconds=10.0)  # 5 s an epoch, not 1
    costs.observe("adam", member_epochs=10, seconds=1.0)
    assert costs.final["lbfgs"] == costs.search["lbfgs"] > 1.0
    assert costs.final["adam"] == 0.02
