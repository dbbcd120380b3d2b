"""Power, tie sets, a seed / test-size planner and a convergence test for rule validation.

All comparisons are *paired*: every grid point trains on the same seeds (weights and
minibatch order), so optimizer A's seed-i score is compared with optimizer B's seed-i
score. Two-sided paired t-test, alpha = 0.05, power 80 % unless told otherwise.

- :func:`mdd`: the minimal detectable paired difference, from the seeds' paired
  differences: ``(t[1 - alpha/2, n-1] + t[power, n-1]) * s_d / sqrt(n)``.
- :func:`tie_set`: the optimizers that the paired test cannot tell from the best.
- :func:`plan`: how many seeds (and test examples) a 0.5 pp difference needs.
- :func:`converged`: whether a validation curve has stopped improving.

>>> round(mdd([[0.010, 0.012, 0.008, 0.011, 0.009]]), 4)
0.0026
>>> tie_set({"a": [0.90, 0.91, 0.92], "b": [0.80, 0.81, 0.82], "c": [0.91, 0.90, 0.92]})
['a', 'c']
>>> converged([0.50, 0.60, 0.660, 0.6605, 0.6607, 0.6608, 0.6609, 0.6609], k=5)
True
>>> converged([0.50, 0.60, 0.65, 0.66, 0.67, 0.68, 0.69], k=5)
False
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from advisor.tuning.stats import paired_p_value

ALPHA = 0.05
POWER = 0.80
#: the smallest true difference the validation must detect (issue 15): 0.5 pp
TARGET = 0.005
#: convergence: the best validation score improved by less than this over the last K epochs
CONVERGED_TOL = 0.001
CONVERGED_K = 5
MAX_SEEDS = 50


def _t(q: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(q, df))


def _z(q: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(q))


def mdd_factor(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """``(t[1 - alpha/2, n-1] + t[power, n-1]) / sqrt(n)``: the MDD per unit of ``s_d``."""
    if n < 2:
        return math.inf
    return (_t(1 - alpha / 2, n - 1) + _t(power, n - 1)) / math.sqrt(n)


def mdd(
    differences: Sequence[Sequence[float]], alpha: float = ALPHA, power: float = POWER
) -> float:
    """The minimal detectable paired difference (accuracy units) at ``power``.

    ``differences``: one list of per-seed paired differences per comparison (e.g. the best
    optimizer against each other one), all of ``n`` seeds. ``s_d`` is taken over the
    comparisons as their median standard deviation: the scenario's typical noise, not
    that of a few erratic optimizers (diverging at some seeds) that would dominate a mean. Fewer than
    two seeds: infinite (a single seed detects nothing).
    """
    rows = [list(d) for d in differences if len(d) >= 2]
    if not rows:
        return math.inf
    n = min(len(d) for d in rows)
    s_d = statistics.median(statistics.stdev(d[:n]) for d in rows)
    return mdd_factor(n, alpha, power) * s_d


def scenario_mdd(scores: Mapping[str, Sequence[float]], best: str) -> float:
    """:func:`mdd` of the best optimizer's per-seed scores against every other optimizer's."""
    return mdd([[b - o for b, o in zip(scores[best], scores[n])] for n in scores if n != best])


def tie_set(scores: Mapping[str, Sequence[float]], alpha: float = ALPHA) -> list[str]:
    """The best optimizer (highest mean) and those the paired t-test cannot tell from it
    (p >= ``alpha``), best first. ``scores``: per optimizer, its per-seed test scores."""
    best = max(scores, key=lambda n: statistics.mean(scores[n]))
    tied = [n for n in scores if n == best or paired_p_value(scores[best], scores[n]) >= alpha]
    return sorted(tied, key=lambda n: -statistics.mean(scores[n]))


@dataclass(frozen=True)
class Plan:
    """What a scenario needs so that a ``target`` true difference is detected at ``power``.

    ``seeds``: seeds for the paired t-test over seeds (the tie-set test, on this test set);
    ``None`` when even ``MAX_SEEDS`` do not suffice. ``test_examples``: test-set size at
    which the test set's own sampling noise of a difference (binomial, see :func:`plan`)
    alone stays below what ``target`` allows with ``seeds`` -> infinity: the size for the
    measured difference to hold beyond this test set.
    """

    seeds: int | None
    test_examples: int
    s_d: float
    accuracy: float
    test_size: int

    @property
    def test_ok(self) -> bool:
        return self.test_size >= self.test_examples


def plan(
    s_d: float,
    accuracy: float,
    test_size: int,
    target: float = TARGET,
    alpha: float = ALPHA,
    power: float = POWER,
    disagreement: float | None = None,
) -> Plan:
    """Seeds and test examples needed to detect a ``target`` paired difference.

    The variance of one seed's paired difference, as a stand-in for the population
    difference, is ``s_d**2`` (training randomness, measured: a pilot run or saved grid)
    plus the test set's sampling variance ``q / N`` of a difference between two classifiers
    that disagree on a fraction ``q`` of examples (McNemar). Without per-example
    predictions ``q`` defaults to ``2 p (1 - p)`` (independent errors at accuracy ``p``):
    an upper bound for models that err on the same hard examples.

    The seed count is the least ``n`` with ``mdd_factor(n) * s_d <= target`` (the tie-set
    test: it compares optimizers on one fixed test set); the test size is the least ``N``
    with ``(z[1 - alpha/2] + z[power]) * sqrt(q / N) <= target``.

    >>> p = plan(s_d=0.004, accuracy=0.9, test_size=10_000)
    >>> p.seeds, p.test_examples
    (8, 56512)
    """
    q = 2 * accuracy * (1 - accuracy) if disagreement is None else disagreement
    z = _z(1 - alpha / 2) + _z(power)
    test_examples = math.ceil(q * (z / target) ** 2)
    seeds = next(
        (n for n in range(2, MAX_SEEDS + 1) if mdd_factor(n, alpha, power) * s_d <= target),
        None,
    )
    return Plan(seeds, test_examples, s_d, accuracy, test_size)


def converged(curve: Sequence[float], k: int = CONVERGED_K, tol: float = CONVERGED_TOL) -> bool:
    """Whether the best score of the last ``k`` epochs beats the best before them by less
    than ``tol`` (0.1 pp): the validation metric has stopped improving. A curve of ``k``
    epochs or fewer has not shown it.
    """
    if len(curve) <= k:
        return False
    return max(curve[-k:]) - max(curve[:-k]) < tol
