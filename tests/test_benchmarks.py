"""The parts of the benchmark scripts that decide a verdict, and the scenarios' claims."""

from __future__ import annotations

import itertools
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import ablation  # noqa: E402
import doc_files  # noqa: E402
import scenarios  # noqa: E402
import screening  # noqa: E402
import validation_grid  # noqa: E402
import validation_judge  # noqa: E402

import advisor  # noqa: E402


@pytest.mark.parametrize("draws", [1, 2, 3])
def test_expected_best_of_draws_matches_enumeration(draws: int) -> None:
    val = [0.2, 0.9, 0.5, 0.5, 0.7]
    test = [0.3, 0.6, 0.8, 0.1, 0.9]
    picks = list(itertools.product(range(len(val)), repeat=draws))

    # validation picks among the draws; of two points with equal validation scores the
    # earlier one wins, as the formula ranks them
    def pick(p: tuple[int, ...]) -> int:
        return max(p, key=lambda i: (val[i], -i))

    brute_max = statistics.mean(max(val[i] for i in p) for p in picks)
    brute_test = statistics.mean(test[pick(p)] for p in picks)
    assert validation_judge.expected_best_of(val, val, draws) == pytest.approx(brute_max)
    assert validation_judge.expected_best_of(test, val, draws) == pytest.approx(brute_test)


def test_the_grid_covers_every_optimizer_and_lbfgs_only_at_full_batch_rates() -> None:
    grid = validation_grid.grid()
    assert {name for name, _ in grid} == set(advisor.list_optimizers())
    assert {h["lr"] for name, h in grid if name == "lbfgs"} == set(validation_grid.LBFGS_LRS)
    assert {h["momentum"] for name, h in grid if name == "nesterov"} == set(validation_grid.MOMENTA)
    # learning-rate-free: its defaults plus its one knob, never an lr
    prodigy = [h for name, h in grid if name == "prodigy"]
    assert (
        prodigy == [{"d_coef": k} for k in validation_grid.KNOB_VALUES]
        and {"d_coef": 1.0} in prodigy
    )
    assert {h["lr"] for name, h in grid if name == "muon"} == set(validation_grid.MUON_LRS)
    assert validation_grid._schedule("schedulefree") == "warmup_constant"
    assert validation_grid._schedule("adam") == "constant"


def test_muon_is_left_out_where_the_model_has_no_hidden_weight() -> None:
    data = scenarios.digits()
    logistic = scenarios.logistic_regression(data)
    assert not validation_grid.applies("muon", logistic, data)
    assert validation_grid.applies("muon", None, data)  # the seed MLP: 2.weight is hidden
    assert validation_grid.applies("adam", logistic, data)


def _points(accuracies: dict[str, list[list[float]]]) -> list[validation_grid.Point]:
    """Points at the grid's first learning rates; per optimizer, one list of 3 seeds per lr."""
    out = []
    for name, per_lr in accuracies.items():
        for lr, acc in zip(validation_grid.LRS, per_lr):
            out.append(validation_grid.Point(name, lr, None, acc, acc, 0))
    return out


def test_judge_counts_a_tied_optimizer_in_the_top_3_and_checks_lr_ranges() -> None:
    # the seed MLP's profile: advisor ranks the Adam family first
    profile = advisor.Profile(params="118k", samples="55k", convexity="nonconvex")
    top = [c.optimizer for c in advisor.recommend(profile).candidates[:3]]
    good, bad = [0.90, 0.91, 0.92], [0.50, 0.52, 0.51]
    acc = {name: [bad, bad] for name in advisor.list_optimizers()}
    acc["sgd"] = [bad, [0.95, 0.96, 0.97]]  # the measured best: not in the top 3
    # clearly worse than sgd (not tied), and best at lr 1.0, far above the Adam family's range
    acc[top[0]] = [bad] * 10 + [good]
    scenario = scenarios.Scenario("t", "test", scenarios.mnist_5k)
    v = validation_judge.judge(scenario, _points(acc), profile, 0.0)
    assert v.best == "sgd" and top[0] not in v.tied and not v.hit
    assert v.scores[top[0]]["best_lr"] == 1.0 and v.lr_checks[top[0]] is False
    assert v.lr_checks[top[1]] is True  # all its points tie: some lie in its range
    # noisy seeds: top[0] can no longer be told apart from sgd -> tied -> a hit
    acc[top[0]] = [[0.99, 0.80, 0.97], bad]
    v = validation_judge.judge(scenario, _points(acc), profile, 0.0)
    assert top[0] in v.tied and v.hit


def test_the_deep_plain_mlp_is_measured_as_exploding(one_thread: None) -> None:
    data = scenarios.mnist_5k()
    factory = scenarios.deep_plain_mlp()(data)
    measured = advisor.profile_model(factory, data, device="cpu")
    assert measured.gradients == "exploding", measured.gradients_reason
    assert measured.convexity == "nonconvex"
    # ... while the first loss is that of a fresh classifier: ln(10)
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        loss = F.cross_entropy(factory()(data.x_train[:256]), data.y_train[:256])
    assert float(loss) == pytest.approx(2.302585, abs=1e-4)


def test_the_bag_of_words_model_sums_count_weighted_embeddings() -> None:
    import torch

    model = scenarios.BagOfWordsClassifier(vocabulary=6, n_classes=2, dim=3)
    counts = torch.tensor([[0.0, 2.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 3.0]])
    expected = model.out(counts @ model.embedding.weight)
    torch.testing.assert_close(model(counts), expected)


def test_each_ablation_switch_turns_its_part_off_and_is_restored_after() -> None:
    from advisor.tuning import space

    before = (space._SCHEDULES, space.TRIALS_FOR_WD_EPS, advisor.get_optimizer_info("adam"))
    seen = {}
    for variant in ablation.VARIANTS:
        with ablation.switched_off(variant) as extra:
            seen[variant] = (
                space.build_space(["adam"], {}, {}, expected_trials=500),
                advisor.get_optimizer_info("adam").population,
                extra,
            )
        assert (
            space._SCHEDULES,
            space.TRIALS_FOR_WD_EPS,
            advisor.get_optimizer_info("adam"),
        ) == before
    full_space, full_population, _ = seen["full"]
    assert full_population and "weight_decay" in full_space.ranges["adam"]
    assert set(full_space.schedules) > {"constant"}
    assert seen["no-schedule-search"][0].schedules == ("constant",)
    assert set(seen["no-extra-dims"][0].ranges["adam"]) == {"lr", "beta1"}
    assert seen["no-population"][1] is False
    assert seen["single-seed-selection"][2] == {"finalists": 1}
    assert seen["no-rules"][2] == {"optimizers": advisor.list_optimizers()}


def test_the_screen_replay_finds_a_slow_learning_rate_it_would_stop() -> None:
    """Four Adam points over 8 epochs: the smallest learning rate starts last and ends
    best. Looking at epoch 2 and finishing the best 3 stops it (a loss of 0.05); looking
    at epoch 6 keeps it. A progress file in its first seed is read as a saved grid is."""
    curves = {
        1e-4: [0.10, 0.20, 0.40, 0.60, 0.80, 0.88, 0.90, 0.95],  # slow, best at the end
        1e-3: [0.50, 0.70, 0.80, 0.85, 0.88, 0.89, 0.90, 0.90],
        1e-2: [0.60, 0.75, 0.80, 0.82, 0.83, 0.84, 0.85, 0.85],
        1e-1: [0.55, 0.65, 0.70, 0.70, 0.70, 0.70, 0.70, 0.70],
    }
    progress = {
        "seed_index": 0,
        "specs": [("adam", {"lr": lr}) for lr in curves],
        "current": [{"val": c[-1], "curve": c, "ok": True} for c in curves.values()],
    }
    groups = screening.first_seed(progress, None)
    saved = {
        "points": {
            "x": [
                {
                    "optimizer": "adam",
                    "lr": lr,
                    "momentum": None,
                    "d_coef": None,
                    "val": [c[-1]],
                    "curves": [c],
                }
                for lr, c in curves.items()
            ]
        }
    }
    assert screening.first_seed(saved, "x") == groups
    stopped, total, lost = screening.replay(groups, at_epoch=2, keep=3)
    assert (stopped, total) == (1, 4)
    assert lost == ["adam: best 0.0001 lost, kept 0.001, 0.05 worse"]
    assert screening.replay(groups, at_epoch=6, keep=3) == (1, 4, [])


def test_a_long_run_history_is_counted_up_top_and_listed_in_order_below() -> None:
    two = ["python b.py", "python b.py --merge"]
    assert doc_files.commands_line(two) == "`python b.py` then `python b.py --merge`"
    assert doc_files.commands_section(two) == ""
    three = [*two, "python b.py --only x"]
    line = doc_files.commands_line(three)
    assert line.startswith("3 runs") and doc_files.RUNS_HEADING in line
    section = doc_files.commands_section(three).splitlines()
    assert section[0] == f"## {doc_files.RUNS_HEADING}"
    assert section[2:] == [f"{i}. `{c}`" for i, c in enumerate(three, 1)]
