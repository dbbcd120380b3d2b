"""Small, honest statistics for multi-seed results: mean, std, a t-based 95 % CI and a paired test.

>>> s = summarize([0.90, 0.91, 0.92])
>>> round(s.mean, 3), s.seeds
(0.91, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and 95 % confidence interval of per-seed values."""

    mean: float
    std: float
    ci95: tuple[float, float]
    seeds: int
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "ci95": list(self.ci95),
            "seeds": self.seeds,
            "values": list(self.values),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        return cls(
            mean=float(d["mean"]),
            std=float(d["std"]),
            ci95=(float(d["ci95"][0]), float(d["ci95"][1])),
            seeds=int(d["seeds"]),
            values=tuple(float(v) for v in d.get("values", ())),
        )


def summarize(values: Sequence[float]) -> Summary:
    """Summary of per-seed values; the CI uses Student's t with n - 1 degrees of freedom."""
    from scipy import stats

    n = len(values)
    if n == 0:
        nan = float("nan")
        return Summary(nan, nan, (nan, nan), 0, ())
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(mean, 0.0, (mean, mean), 1, tuple(values))
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, (mean - half, mean + half), n, tuple(float(v) for v in values))


def paired_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of a paired t-test (pairs share a seed: same init and batch order).

    Identical samples give 1.0; fewer than two pairs give 1.0 (nothing can be told apart).
    """
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return 1.0
    diffs = [x - y for x, y in zip(a, b)]
    if all(abs(d - diffs[0]) < 1e-12 for d in diffs):
        return 1.0 if abs(diffs[0]) < 1e-12 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)
