"""Power, tie sets, the seed / test-size planner and the convergence test of rule validation."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import validation_grid  # noqa: E402
import validation_judge  # noqa: E402
import validation_report  # noqa: E402
import validation_stats as vs  # noqa: E402

from advisor.knowledge.rules import load_rules  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_mdd_is_the_t_formula_on_the_differences_sd() -> None:
    from scipy import stats

    d = [0.010, 0.014, 0.006, 0.012, 0.008]
    n, s_d = len(d), statistics.stdev(d)
    expected = (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.80, n - 1)) * s_d / math.sqrt(n)
    assert vs.mdd([d]) == pytest.approx(expected)
    # more seeds, same spread: a smaller detectable difference
    assert vs.mdd([d * 2]) < vs.mdd([d])
    assert vs.mdd([[0.01]]) == math.inf


def test_mdd_takes_the_median_comparison_not_an_erratic_one() -> None:
    calm = [[0.010, 0.012, 0.008]] * 4
    erratic = [[0.9, -0.5, 0.1]]
    assert vs.mdd(calm + erratic) == pytest.approx(vs.mdd(calm))


def test_a_difference_of_the_mdd_is_found_about_80_percent_of_the_time() -> None:
    """The definition checked by simulation: paired differences with mean = MDD."""
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    n, sd = 6, 0.004
    delta = vs.mdd_factor(n) * sd
    found = [
        bool(stats.ttest_1samp(rng.normal(delta, sd, n), 0.0).pvalue < 0.05) for _ in range(4000)
    ]
    assert statistics.mean(found) == pytest.approx(0.80, abs=0.03)


def test_the_tie_set_holds_the_best_and_what_the_paired_test_cannot_tell_from_it() -> None:
    scores = {
        "best": [0.90, 0.91, 0.92, 0.93],
        "noisy": [0.95, 0.80, 0.94, 0.85],  # mean 0.885, but erratic: tied
        "worse": [0.88, 0.89, 0.90, 0.91],  # 2 pp below at every seed: not tied
        "bad": [0.50, 0.52, 0.51, 0.50],
    }
    assert vs.tie_set(scores) == ["best", "noisy"]


def test_the_planner_finds_the_least_seeds_and_the_binomial_test_size() -> None:
    p = vs.plan(s_d=0.004, accuracy=0.9, test_size=10_000)
    assert vs.mdd_factor(p.seeds) * 0.004 <= vs.TARGET < vs.mdd_factor(p.seeds - 1) * 0.004
    # (z_0.975 + z_0.8)^2 * 2 p (1 - p) / 0.005^2
    assert p.test_examples == math.ceil(7.8489 * 0.18 / 0.005**2 + 0.5) or (
        abs(p.test_examples - 7.8489 * 0.18 / 0.005**2) < 5
    )
    assert not p.test_ok
    # models that disagree on 2 % of the examples need far fewer
    assert vs.plan(0.004, 0.9, 10_000, disagreement=0.02).test_ok
    assert vs.plan(s_d=0.1, accuracy=0.9, test_size=100).seeds is None  # beyond MAX_SEEDS


def test_convergence_is_under_a_tenth_of_a_point_over_the_last_k_epochs() -> None:
    rising = [0.5 + 0.01 * i for i in range(12)]
    flat = [0.5, 0.7, 0.8, *[0.8005] * 8]
    assert not vs.converged(rising)
    assert vs.converged(flat)
    assert not vs.converged(flat[:5])  # too short to tell
    # a late gain of 0.2 pp within the last k epochs is not convergence
    assert not vs.converged([*flat, 0.8025])


def _saved_verdicts() -> list[validation_judge.Verdict]:
    saved = json.loads((ROOT / "docs" / "benchmarks" / "validation.json").read_text())
    return [validation_judge.Verdict(**v) for v in saved["verdicts"]]


def test_the_saved_grids_still_load_and_the_report_parts_render(tmp_path: Path) -> None:
    verdicts = _saved_verdicts()
    table = validation_report.power_table(verdicts)
    assert table.count("\n") == len(verdicts) + 1
    text = validation_report.generalization(verdicts, ("tiny-data-mlp", "absent"))
    tiny = next(v for v in verdicts if v.scenario == "tiny-data-mlp")
    assert f"in {int(tiny.hit)} of 1 (tiny-data-mlp)" in text
    assert "not in these grids yet: absent" in text
    coverage = validation_report.rule_coverage(verdicts)
    rules = list(load_rules(()))
    unvalidated = next(r.id for r in rules if not r.validated)
    validated = next(r.id for r in rules if r.validated)
    assert f"`{unvalidated}`" in coverage and f"`{validated}`" not in coverage


def test_a_range_only_rule_is_judged_by_the_ranges_it_moved_not_by_the_ranking() -> None:
    verdicts = {v.scenario: v for v in _saved_verdicts()}
    sparse = verdicts["sparse-hashed-ngrams"]
    assert "sparse-adaptive-larger-lr" in sparse.fired and "sparse-adagrad" in sparse.fired

    def validated_by(v: validation_judge.Verdict) -> set[str]:
        return {rid for rid, names in validation_report.derived_validated([v]).items() if names}

    sparse.hit = False  # a miss: the scoring rule falls, the range rule stands
    assert "sparse-adaptive-larger-lr" in validated_by(sparse)
    assert "sparse-adagrad" not in validated_by(sparse)
    # Adam's best lr far above the range the rule moved: now it falls too
    sparse.scores["adam"]["tied_lrs"] = [30.0]
    assert "sparse-adaptive-larger-lr" not in validated_by(sparse)
    # a hit where the rule moved only ranges outside the top 3 (SGD's) validates nothing
    batch = verdicts["large-batch-4096"]
    assert batch.hit and "batch-large-linear-scaling" in batch.fired
    assert "batch-large-linear-scaling" not in validated_by(batch)


def test_a_scenario_plot_marks_the_top_3(tmp_path: Path) -> None:
    v = _saved_verdicts()[0]
    v.scores = {n: v.scores[n] for n in list(v.scores)[:4]}  # a tiny input
    v.top = list(v.scores)[:3]
    path = validation_report.plot_scenario(v, tmp_path / "one.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_judge_reports_power_tie_size_and_convergence() -> None:
    import scenarios

    import advisor

    profile = advisor.Profile(params="118k", samples="55k", convexity="nonconvex")
    points = []
    for i, name in enumerate(advisor.list_optimizers()):
        noise = (0.0, 0.002, 0.001, 0.003)
        acc = [0.80 + 0.001 * i + noise[(i + k) % 4] for k in range(4)]
        curve = [[0.5, 0.7, *[a] * 6] for a in acc]
        lr = 1.0 if advisor.get_optimizer_info(name).lr_free else 1e-3
        d_coef = 1.0 if advisor.get_optimizer_info(name).lr_free else None
        points.append(validation_grid.Point(name, lr, None, acc, acc, 0, d_coef, curve))
    s = scenarios.Scenario("t", "test", scenarios.mnist_5k, seeds=4)
    v = validation_judge.judge(s, points, profile, 0.0)
    assert v.converged is True and v.best == v.tied[0] and len(v.tied) < len(v.scores)
    assert 0 < v.mdd < 0.05 and v.plan["test_size"] == 1000
    assert "prodigy" + validation_judge.DEFAULTS_SUFFIX in v.scores


def test_prune_keeps_each_optimizers_best_points_per_momentum() -> None:
    P = validation_grid.Point
    points = [
        P("adam", 1e-3, None, [0.5], [0.5], 0),
        P("adam", 1e-2, None, [0.9], [0.9], 0),
        P("adam", 1e-1, None, [0.7], [0.7], 0),
        P("momentum", 1e-2, 0.9, [0.6], [0.6], 0),
        P("momentum", 1e-1, 0.9, [0.8], [0.8], 0),
        P("momentum", 1e-2, 0.5, [0.4], [0.4], 0),
    ]
    assert validation_grid.prune(points, 1) == [1, 4, 5]
    assert validation_grid.prune(points, 2) == [1, 2, 3, 4, 5]
    # a learning-rate-free method's defaults stay whatever their first seed: their own row
    prodigy = [
        P("prodigy", 1.0, None, [v], [v], 0, d) for d, v in ((0.5, 0.9), (1.0, 0.1), (2.0, 0.8))
    ]
    assert validation_grid.prune(points + prodigy, 1) == [1, 4, 5, 6, 7]


def test_a_pruned_point_is_kept_but_never_scored() -> None:
    """A point --prune dropped after its first seed keeps that seed (for the curves), but
    its one-seed mean, however high, is not the optimizer's pick: the scored points are."""
    P = validation_grid.Point
    points = [
        P("adam", 1e-3, None, [0.80, 0.81, 0.79], [0.78, 0.80, 0.79], 0),
        P("adam", 1e-2, None, [0.95], [0.95], 0, pruned=True),
    ]
    (score,) = validation_judge.optimizer_scores(points, {}, None).values()
    assert score["best_lr"] == 1e-3 and score["tied_lrs"] == [1e-3]
    assert score["test"] == [0.78, 0.80, 0.79]


def test_the_widest_gap_in_the_tie_set_skips_the_defaults_rows() -> None:
    v = _saved_verdicts()[0]

    def row(mean_test: float) -> dict[str, object]:
        return {**v.scores[v.best], "mean_test": mean_test}

    v.scores = {"a": row(0.90), "b": row(0.897), "c": row(0.893), "c-defaults": row(0.80)}
    v.best, v.tied = "a", ["a", "b", "c", "c-defaults"]
    assert validation_report.tie_gap(v) == pytest.approx(0.007)
    assert validation_report.score(v, validation_report.tie_gap(v)) == "0.70"
    v.tied = ["a"]
    assert validation_report.tie_gap(v) == 0.0


def test_stopped_runs_counts_early_stops_against_the_grids_epochs() -> None:
    flat = [0.5] * 10
    stopped = validation_grid.Point("adam", 1e-3, None, [], [], 0, curves=[flat, flat])
    stopped.stopped_at = [6, 0]  # seed 1 stopped after 6 of 10 epochs, seed 2 ran all 10
    full = validation_grid.Point("sgd", 1e-2, None, [], [], 0, curves=[flat], stopped_at=[0])
    old = validation_grid.Point("sgd", 1e-1, None, [], [], 0, curves=[flat])  # saved before
    text = validation_report.stopped_runs([stopped, full, old])
    assert text == " Runs stopped once converged: 1 of 3, after 60 % of their epochs on average."
    assert validation_report.stopped_runs([full, old]) == ""
    # saved and read back, the count is the same: a point where no run stopped keeps its
    # zeros (dropping them made it look saved before runs could stop, out of the "of N")
    assert stopped.to_dict()["stopped_at"] == [6, 0] and full.to_dict()["stopped_at"] == [0]
    assert "stopped_at" not in old.to_dict()
    back = [validation_grid.Point(**p.to_dict()) for p in (stopped, full, old)]
    assert validation_report.stopped_runs(back) == text
