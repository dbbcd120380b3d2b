"""The verdict of the rule validation (validate_rules.py) on one scenario: each optimizer's
score from its grid (validation picks, the test set judges), the tie set with the best,
power, convergence, and whether advisor's top 3 holds the best or a tie.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import validation_stats
from scenarios import HELD_OUT, Scenario
from validation_grid import Point

import advisor
from advisor.data.task import Task
from advisor.knowledge.optimizers import Range
from advisor.tuning.stats import paired_p_value

TIED_P = validation_stats.ALPHA
TOP = 3


def expected_best_of(test: list[float], val: list[float], draws: int) -> float:
    """E[test score of the pick with the best ``val``] over ``draws`` uniform picks with replacement.

    Ranked by ``val`` (ties by position), the k-th of m points is the pick with probability
    (k/m)^draws - ((k-1)/m)^draws. With ``test == val`` this is E[max of the draws].
    """
    order = sorted(range(len(val)), key=lambda i: (val[i], -i))
    m = len(order)
    return sum(
        test[i] * ((k / m) ** draws - ((k - 1) / m) ** draws) for k, i in enumerate(order, 1)
    )


def optimizer_scores(
    points: list[Point], ranges: dict[str, Range], draws: int | None
) -> dict[str, dict[str, Any]]:
    """Per optimizer: per-seed test accuracy of its pick, the best grid point, the lrs tied with it.

    Validation picks (the best mean validation accuracy, as a user would pick), the test set
    judges: picking and judging on the same numbers would favour optimizers with more grid
    points (the winner's curse).
    """
    out: dict[str, dict[str, Any]] = {}
    for name in advisor.list_optimizers():
        mine = [p for p in points if p.optimizer == name and not p.pruned]
        if not mine:  # not in the grid: it does not apply (Muon without hidden weights)
            continue
        best = max(mine, key=lambda p: p.mean_val)
        if draws is None:
            val, test = list(best.val), list(best.test)
        else:
            default_m = advisor.get_optimizer_info(name).defaults.get("momentum")
            pool = [
                p
                for p in mine
                if ranges[name].contains(p.knob) and (p.momentum is None or p.momentum == default_m)
            ] or [min(mine, key=lambda p: abs(p.knob - ranges[name].low))]
            seeds = range(len(best.val))
            val = [
                expected_best_of([p.val[i] for p in pool], [p.val[i] for p in pool], draws)
                for i in seeds
            ]
            test = [
                expected_best_of([p.test[i] for p in pool], [p.val[i] for p in pool], draws)
                for i in seeds
            ]
        tied_lrs = sorted(
            {p.knob for p in mine if p is best or paired_p_value(best.test, p.test) >= TIED_P}
        )
        out[name] = {
            "tied_lrs": tied_lrs,
            "val": val,
            "test": test,
            "mean_val": statistics.mean(val),
            "mean_test": statistics.mean(test),
            "best_lr": best.knob,
            "best_momentum": best.momentum,
            "curve": mean_curve(best),
        }
        info = advisor.get_optimizer_info(name)
        default = [p for p in mine if info.lr_free and p.d_coef == 1.0]
        if default:  # issue 15: a learning-rate-free method at its defaults, a row of its own
            d = default[0]
            out[name + DEFAULTS_SUFFIX] = {
                "tied_lrs": [d.knob],
                "val": list(d.val),
                "test": list(d.test),
                "mean_val": d.mean_val,
                "mean_test": statistics.mean(d.test),
                "best_lr": d.knob,
                "best_momentum": None,
                "curve": mean_curve(d),
            }
    return out


DEFAULTS_SUFFIX = "-defaults"


def mean_curve(p: Point) -> list[float]:
    """The validation metric per epoch, averaged over the seeds (empty in old grids)."""
    if not p.curves or any(len(c) != len(p.curves[0]) for c in p.curves):
        return []
    return [statistics.mean(col) for col in zip(*p.curves)]


@dataclass
class Verdict:
    scenario: str
    what: str
    profile: str
    top: list[str]
    ranges: dict[str, list[float]]
    scores: dict[str, dict[str, Any]]
    best: str
    tied: list[str]
    hit: bool
    lr_checks: dict[str, bool]
    fired: list[str]
    wall_s: float
    profile_fields: dict[str, Any]
    #: issue 15: minimal detectable paired difference at 80 % power (metric units)
    mdd: float = math.nan
    #: whether the best optimizer's validation curve converged (None: not measured, or
    #: a fixed-budget scenario)
    converged: bool | None = None
    held_out: bool = False
    #: validation_stats.plan: seeds / test examples a 0.5 pp difference needs
    plan: dict[str, Any] = field(default_factory=dict)
    #: "classification" (scores: accuracy) or "regression" (scores: negative MSE)
    task: str = "classification"

    @property
    def lr_ok(self) -> bool:
        return all(self.lr_checks.values())


def holds_best_lr(rng: Range, score: dict[str, Any]) -> bool:
    """Whether ``rng`` holds an optimizer's best learning rate or one tied with it
    (``score``: its entry in :func:`optimizer_scores`)."""
    return any(rng.contains(lr) for lr in score["tied_lrs"])


def judge(s: Scenario, points: list[Point], profile: advisor.Profile, wall: float) -> Verdict:
    rec = advisor.recommend(profile)
    ranges = {
        c.optimizer: c.search_space[advisor.get_optimizer_info(c.optimizer).knob]
        for c in rec.candidates
    }
    scores = optimizer_scores(points, ranges, s.lr_draws)
    per_seed = {n: sc["test"] for n, sc in scores.items()}
    tied = validation_stats.tie_set(per_seed, TIED_P)
    best = tied[0]
    mdd = validation_stats.scenario_mdd(per_seed, best)
    curve = scores[best].get("curve") or []
    converged = validation_stats.converged(curve) if s.converge and curve else None
    test_size = _test_size(s)
    others = [[b - o for b, o in zip(per_seed[best], per_seed[n])] for n in per_seed if n != best]
    s_d = (
        statistics.median(statistics.stdev(d) for d in others)
        if others and len(per_seed[best]) >= 2
        else math.nan
    )
    plan = (
        asdict(validation_stats.plan(s_d, scores[best]["mean_test"], test_size))
        if s.task == "classification" and not math.isnan(s_d)
        else {}
    )
    top = [c.optimizer for c in rec.candidates[:TOP]]
    lr_checks = {n: holds_best_lr(ranges[n], scores[n]) for n in top if n in scores}
    return Verdict(
        scenario=s.name,
        what=s.what,
        profile=profile.describe(),
        top=top,
        ranges={n: [r.low, r.high] for n, r in ranges.items()},
        scores=scores,
        best=best,
        tied=tied,
        hit=any(n in tied for n in top),
        lr_checks=lr_checks,
        fired=[f.rule.id for f in rec.fired],
        wall_s=round(wall, 1),
        profile_fields={k: v for k, v in profile.to_dict().items() if k != "derived"},
        mdd=mdd,
        converged=converged,
        held_out=s.name in HELD_OUT,
        plan=plan,
        task=s.task,
    )


#: scenario -> its test-set size, filled by :func:`remember_test_size` or loaded once
_TEST_SIZES: dict[str, int] = {}


def remember_test_size(s: Scenario, data: advisor.Dataset) -> None:
    """Note the test-set size of data already loaded (judge then need not load it again)."""
    _TEST_SIZES[s.name] = len(data.y_test)


def _test_size(s: Scenario) -> int:
    """The scenario's test-set size (loads its data once per process)."""
    if s.name not in _TEST_SIZES:
        try:
            _TEST_SIZES[s.name] = len(s.data().y_test)
        except (FileNotFoundError, ImportError):  # its data is not on this machine
            _TEST_SIZES[s.name] = 0
    return _TEST_SIZES[s.name]


def measure_profile(s: Scenario, data: advisor.Dataset) -> advisor.Profile:
    """The profile ``advisor tune`` would measure, plus what only the user can say."""
    factory = None if s.model is None else s.model(data)
    measured = advisor.profile_model(
        factory, data, device="cpu", batch_size=s.batch_size, task=Task(s.task)
    )
    return measured.to_profile(s.overrides)
