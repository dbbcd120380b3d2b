"""Per-seed summaries and the paired test used to call finalists tied."""

from __future__ import annotations

import pytest

from advisor.tuning.stats import Summary, paired_p_value, summarize


def test_summary_matches_hand_computation() -> None:
    s = summarize([0.90, 0.92, 0.94])
    assert s.mean == pytest.approx(0.92)
    assert s.std == pytest.approx(0.02)
    # t(0.975, 2) = 4.302653
    half = 4.302653 * 0.02 / 3**0.5
    assert s.ci95 == pytest.approx((0.92 - half, 0.92 + half), rel=1e-5)
    assert Summary.from_dict(s.to_dict()) == s


def test_single_and_empty_samples() -> None:
    assert summarize([0.5]).ci95 == (0.5, 0.5)
    assert summarize([]).seeds == 0


def test_paired_test_separates_consistent_differences() -> None:
    a = [0.90, 0.91, 0.92, 0.93, 0.94]
    b = [x - 0.01 + d for x, d in zip(a, [0.001, -0.001, 0.0005, 0.0, -0.0005])]
    assert paired_p_value(a, b) < 0.01
    noisy = [x + d for x, d in zip(a, [0.02, -0.02, 0.01, -0.01, 0.0])]
    assert paired_p_value(a, noisy) > 0.5
    assert paired_p_value(a, a) == 1.0
    with pytest.raises(ValueError):
        paired_p_value(a, a[:2])
