"""The verdict of the finalist stage: the winner on validation, ties and notes on test."""

from __future__ import annotations

from dataclasses import replace

import pytest

from advisor.tuning.readback import _budget_note
from advisor.tuning.result import Finalist, judge
from advisor.tuning.schema import BASELINE_LABEL, StudySettings, lr_free_baselines
from advisor.tuning.stats import summarize


def _f(label: str, val: float, tests: list[float]) -> Finalist:
    return Finalist(
        label=label,
        optimizer="adam",
        hyperparameters={"lr": 1e-3},
        schedule="constant",
        trial=None,
        search_val_accuracy=None,
        val_accuracy=summarize([val] * len(tests)),
        test_accuracy=summarize(tests),
        curves=(),
    )


BASE = [0.880, 0.884, 0.879, 0.882, 0.881]


def test_validation_picks_the_winner_and_test_decides_the_ties() -> None:
    best = _f("adam#3", 0.95, [0.910, 0.915, 0.912, 0.914, 0.911])
    close = _f("nesterov#7", 0.94, [0.911, 0.913, 0.913, 0.912, 0.912])  # same on test
    far = _f("sgd#2", 0.93, [0.890, 0.892, 0.891, 0.889, 0.890])
    verdict = judge([best, close, far, _f(BASELINE_LABEL, 0.90, BASE)])
    assert verdict.best is best
    assert verdict.tied == ("nesterov#7",)
    assert verdict.difference["mean"] == pytest.approx(0.9124 - 0.8812)
    assert verdict.difference["p_value"] < 0.05
    assert verdict.notes == ()


def test_the_baseline_can_win() -> None:
    worse = _f("adam#1", 0.85, [0.86, 0.87, 0.86, 0.85, 0.86])
    verdict = judge([worse, _f(BASELINE_LABEL, 0.90, BASE)])
    assert verdict.best.label == BASELINE_LABEL
    assert verdict.notes[0].startswith("No tuned configuration beat the default")
    assert verdict.difference["mean"] == 0.0


def test_a_winner_below_the_baseline_on_test_is_flagged() -> None:
    lucky = _f("adam#1", 0.95, [0.870, 0.872, 0.869, 0.871, 0.870])  # validation lied
    verdict = judge([lucky, _f(BASELINE_LABEL, 0.90, BASE)])
    assert verdict.best is lucky
    assert verdict.notes[0].startswith("Warning: the recommendation scores below")
    assert verdict.notes[0].endswith("significant.")


def test_a_winner_within_noise_of_the_baseline_says_so() -> None:
    noisy = _f("adam#1", 0.95, [0.890, 0.870, 0.895, 0.872, 0.884])
    verdict = judge([noisy, _f(BASELINE_LABEL, 0.90, BASE)])
    assert verdict.difference["mean"] > 0
    assert verdict.notes == (
        "The recommendation is not significantly better than the default baseline.",
    )


def test_equal_validation_goes_to_the_earlier_finalist() -> None:
    a = _f("adam#1", 0.95, [0.91] * 5)
    b = _f("adam#2", 0.95, [0.92] * 5)
    assert judge([a, b, _f(BASELINE_LABEL, 0.90, BASE)]).best is a


def _lr_free(val: float, tests: list[float]) -> Finalist:
    spec = lr_free_baselines()[0]
    return replace(_f(spec.label, val, tests), optimizer=spec.optimizer, hyperparameters={})


def test_a_learning_rate_free_method_at_its_defaults_tied_with_the_winner_is_named() -> None:
    best = _f("adam#3", 0.95, [0.910, 0.915, 0.912, 0.914, 0.911])
    prodigy = _lr_free(0.94, [0.911, 0.913, 0.913, 0.912, 0.912])
    verdict = judge([best, _f(BASELINE_LABEL, 0.90, BASE), prodigy])
    assert verdict.best is best and verdict.tied == ()
    assert verdict.lr_free_tied == ("defaults:prodigy",)
    assert verdict.notes[-1].startswith("The tuning bought nothing over prodigy at its defaults")
    assert "prodigyopt.Prodigy(params, lr=1, betas=(0.9, 0.999))" in verdict.notes[-1]
    far = _lr_free(0.93, [0.890, 0.892, 0.891, 0.889, 0.890])
    assert judge([best, _f(BASELINE_LABEL, 0.90, BASE), far]).lr_free_tied == ()


def test_a_learning_rate_free_method_at_its_defaults_can_win() -> None:
    worse = _f("adam#1", 0.85, [0.86, 0.87, 0.86, 0.85, 0.86])
    prodigy = _lr_free(0.93, [0.90, 0.91, 0.90, 0.90, 0.91])
    verdict = judge([worse, _f(BASELINE_LABEL, 0.90, BASE), prodigy])
    assert verdict.best is prodigy
    assert "the tuning bought nothing over it" in verdict.notes[0]


def test_a_run_far_over_its_budget_says_why() -> None:
    settings = StudySettings(budget_s=300.0, member_epoch_s=2.0, final_member_epoch_s=12.0)
    assert _budget_note(settings, 400.0) == ()
    (note,) = _budget_note(settings, 2000.0)
    assert note.startswith("The run took 33m20s against its 5m00s budget")
    assert "2 s in the search, 12 s in the finalist stage" in note
