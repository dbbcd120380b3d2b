"""Time accounting: epochs a pruned trial runs, the finalist estimate, wall time already spent."""

from __future__ import annotations

import optuna
import pytest

from advisor.tuning.budget import expected_epochs, finals_estimate, sessions_spent
from advisor.tuning.schema import session_key


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
