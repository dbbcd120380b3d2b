"""The validation scenarios: real data loaded offline, each model trained for one epoch on
a tiny slice through train_members, the held-out split, and rules marked unvalidated."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import scenarios  # noqa: E402
import validate_rules  # noqa: E402
import validation_grid  # noqa: E402
import validation_report  # noqa: E402
import validation_stats  # noqa: E402

import advisor  # noqa: E402
from advisor.cli import cli  # noqa: E402
from advisor.knowledge.rules import load_rules  # noqa: E402
from advisor.train import MemberConfig, train_members  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

#: issue 15's scenarios with a model of their own (the first eight are issue 7's)
NEW = [s for s in scenarios.SCENARIOS[8:] if s.model is not None]
BY_NAME = {s.name: s for s in scenarios.SCENARIOS}


def _data_or_skip(s: scenarios.Scenario) -> advisor.Dataset:
    try:
        return validation_grid.shrink(s.data(), rows=256)
    except (FileNotFoundError, ImportError) as e:  # a Debian package or statsmodels absent
        pytest.skip(f"{s.name}: its data is not on this machine: {e}")


def test_there_are_at_least_12_scenarios_and_the_held_out_ones_exist() -> None:
    names = [s.name for s in scenarios.SCENARIOS]
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert set(scenarios.HELD_OUT) <= set(names)
    # some scenarios stay to adjust rules on
    assert len(scenarios.HELD_OUT) < len(names) / 2


@pytest.mark.parametrize("s", NEW, ids=[s.name for s in NEW])
def test_each_new_scenario_trains_one_epoch_on_a_tiny_slice(s: scenarios.Scenario) -> None:
    data = _data_or_skip(s)
    assert s.model is not None
    task = validation_grid.task_keyword(s)
    (result,) = train_members(
        [MemberConfig("adam", {"lr": 1e-3}, init_seed=0)],
        data,
        epochs=1,
        batch_size=64,
        evaluate_test=True,
        model_factory=s.model(data),
        **task,
    )
    assert result.status == "complete", result.reason
    assert result.epochs_run == 1 and result.test_accuracy is not None


def test_the_text_data_is_real_and_split_three_ways() -> None:
    try:
        words, labels = scenarios.text.language_words(per_language=50)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    assert len(words) == 50 * len(scenarios.text.LANGUAGES) and set(labels) == set(range(7))
    assert len(set(words)) == len(words)  # no word in two languages
    ids = scenarios.text.ngram_ids("chat")
    assert ids == sorted(ids) and all(1 <= i <= scenarios.text.NGRAM_BUCKETS for i in ids)
    assert len(ids) == len({"<", "c", "h", "a", "t", ">"}) + 5 + 4 + 3  # 1- to 4-grams of <chat>


def test_the_l2_logistic_gradient_carries_the_penalty() -> None:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = scenarios.images.L2Logistic(5, 3, l2=0.1)
    x, y = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    F.cross_entropy(model(x), y).backward()
    w = model.linear.weight.detach().clone().requires_grad_(True)
    b = model.linear.bias.detach()
    loss = F.cross_entropy(x @ w.T + b, y) + 0.05 * (w**2).sum()
    loss.backward()
    torch.testing.assert_close(model.linear.weight.grad, w.grad)


def test_the_exploding_rnn_is_measured_as_exploding() -> None:
    s = BY_NAME["rnn-exploding-words"]
    data = _data_or_skip(s)
    assert s.model is not None
    measured = advisor.profile_model(s.model(data), data, device="cpu", batch_size=256)
    assert measured.gradients == "exploding", measured.gradients_reason


def test_every_rule_is_validated_by_scenarios_or_marked_unvalidated() -> None:
    names = {s.name for s in scenarios.SCENARIOS}
    rules = list(load_rules(()))
    for r in rules:
        assert set(r.validated) <= names, (r.id, r.validated)
    unvalidated = [r for r in rules if not r.validated]
    assert unvalidated  # the doc lists them; the validation run will shrink the list
    runner = CliRunner()
    shown = runner.invoke(cli, ["rules", "show", unvalidated[0].id])
    assert shown.exit_code == 0, shown.output
    assert "validated: UNVALIDATED" in shown.output
    validated = next(r for r in rules if r.validated)
    shown = runner.invoke(cli, ["rules", "show", validated.id])
    assert f"validated: {', '.join(validated.validated)}" in shown.output
    listed = json.loads(runner.invoke(cli, ["rules", "list", "--format", "json"]).output)
    assert {r["id"]: r["validated"] for r in listed}[validated.id] == list(validated.validated)


def test_a_validated_field_that_is_not_a_list_of_names_is_refused(tmp_path: Path) -> None:
    from advisor.knowledge.rules import check_rules

    (tmp_path / "x.toml").write_text(
        '[[rule]]\nid = "x"\nvalidated = "tiny-data-mlp"\nscores = { adam = 1.0 }\n'
        'reason = "r"\nsource = "s"\n'
    )
    problems = check_rules(str(tmp_path))
    assert any("validated" in p for p in problems), problems


#: validation_grid's globals main() sets (--smoke, --prune, the progress folder): restored after a test
GLOBALS = (
    "SEEDS",
    "LRS",
    "LBFGS_LRS",
    "MUON_LRS",
    "KNOB_VALUES",
    "MOMENTA",
    "SMOKE",
    "PRUNE_KEEP",
    "PROGRESS_DIR",
    "CHUNK_MODEL",
)


def test_the_smoke_pipeline_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--smoke --only`` on the fastest real scenario: profile, tiny grid, judge, save."""
    for name in GLOBALS:
        monkeypatch.setattr(validation_grid, name, getattr(validation_grid, name))
    out = tmp_path / "smoke.json"
    validate_rules.main(
        ["--smoke", "--prune", "1", "--only", "logistic-l2-digits", "--no-doc", "--json", str(out)]
    )
    saved = json.loads(out.read_text())
    (v,) = saved["verdicts"]
    assert v["scenario"] == "logistic-l2-digits" and len(v["tied"]) >= 1
    points = saved["points"]["logistic-l2-digits"]
    scored = [p for p in points if not p["pruned"]]
    assert {p["optimizer"] for p in scored} == set(advisor.list_optimizers()) - {"muon"}
    assert all(len(p["curves"]) == 2 and len(p["curves"][0]) == 1 for p in scored)
    kinds = [(p["optimizer"], p["momentum"]) for p in scored]
    assert len(kinds) == len(set(kinds))  # --prune 1: one point of each kind after seed 1
    # the points pruned after seed 1 keep that seed: nothing trained is thrown away
    pruned = [p for p in points if p["pruned"]]
    assert pruned and all(len(p["val"]) == len(p["curves"]) == 1 for p in pruned)
    grid = validation_grid.grid(optimizers=sorted({p["optimizer"] for p in points}))
    assert len(points) == len(grid)


def test_full_batch_optimizers_train_the_capped_epochs_in_grid_order() -> None:
    from dataclasses import replace

    s = replace(BY_NAME["logistic-l2-digits"], epochs=2, full_batch_epochs=1)
    data = _data_or_skip(s)
    assert s.model is not None
    configs = [
        MemberConfig(n, {"lr": lr}, init_seed=0)
        for n, lr in (("adam", 1e-2), ("lbfgs", 1.0), ("sgd", 0.1))
    ]
    results = validation_grid._train(s, configs, data, s.epochs, 0, s.model(data), {})
    assert [r.config.optimizer for r in results] == ["adam", "lbfgs", "sgd"]
    assert [r.epochs_run for r in results] == [2, 1, 2]


def test_a_grid_stopped_mid_seed_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run stopped after some chunks leaves its progress; run again, it trains only what
    is left and saves the grid an uninterrupted run saves (real training, no dropout)."""
    for name in GLOBALS:
        monkeypatch.setattr(validation_grid, name, getattr(validation_grid, name))
    monkeypatch.setattr(validation_grid, "CHUNK_MODEL", 8)
    args = ["--smoke", "--prune", "1", "--only", "logistic-l2-digits", "--no-doc"]
    whole, stopped = tmp_path / "whole.json", tmp_path / "stopped.json"
    validate_rules.main([*args, "--json", str(whole)])
    assert not (tmp_path / "whole-progress").exists()  # next to --json; gone once complete
    args += ["--progress", str(tmp_path / "shared")]

    train, calls = validation_grid._train, []

    def stop_after_three(*a: object, **k: object) -> object:
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt  # the user's Ctrl-C, mid seed
        return train(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(validation_grid, "_train", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        validate_rules.main([*args, "--json", str(stopped)])
    progress = tmp_path / "shared" / "logistic-l2-digits.json"
    saved = json.loads(progress.read_text())
    assert saved["seed_index"] == 0 and len(saved["current"]) == 3 * 8
    assert not stopped.exists()
    # the stopped sitting's time is saved; say it took 1000 s, and the resumed grid's wall
    # counts it beside its own (not the last sitting only)
    assert saved["elapsed_s"] > 0
    progress.write_text(json.dumps({**saved, "elapsed_s": 1000.0}))

    trained = []
    monkeypatch.setattr(
        validation_grid,
        "_train",
        lambda s, configs, *a: trained.extend(configs) or train(s, configs, *a),
    )
    t0 = time.perf_counter()
    validate_rules.main([*args, "--json", str(stopped)])
    resumed_s = time.perf_counter() - t0
    assert "resuming at seed 1/2, 24/" in capsys.readouterr().err
    (verdict,) = json.loads(stopped.read_text())["verdicts"]
    assert 1000 < verdict["wall_s"] <= 1000 + resumed_s + 0.1
    a, b = (json.loads(f.read_text())["points"]["logistic-l2-digits"] for f in (whole, stopped))
    assert a == b
    n_first = len(validation_grid.grid(optimizers=list(dict.fromkeys(p["optimizer"] for p in a))))
    n_scored = sum(not p["pruned"] for p in a)
    assert len(trained) == n_first - 24 + n_scored  # the rest of seed 1, then seed 2
    assert not progress.exists()  # the grid is complete: its progress is gone


def test_optimizers_join_a_saved_grid_only_on_its_seeds_and_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--optimizers X --merge`` adds X's points beside the saved ones: fine on the same
    seeds and epochs; refused (exit 2, before any training) when the scenario now asks for
    others, which would leave the comparisons unpaired."""
    for name in GLOBALS:
        monkeypatch.setattr(validation_grid, name, getattr(validation_grid, name))
    out = tmp_path / "grid.json"
    args = ["--smoke", "--only", "logistic-l2-digits", "--no-doc", "--json", str(out)]
    validate_rules.main(args)
    add = [*args, "--optimizers", "prodigy", "--merge"]
    validate_rules.main(add)  # the same seeds and epochs: joins
    points = json.loads(out.read_text())["points"]["logistic-l2-digits"]
    assert {len(p["val"]) for p in points} == {2}

    def tampered(change: object) -> None:
        saved = json.loads(out.read_text())
        for p in saved["points"]["logistic-l2-digits"]:
            change(p)  # type: ignore[operator]
        out.write_text(json.dumps(saved))

    tampered(lambda p: p["curves"][0].append(0.5))  # as if trained for 2 epochs
    with pytest.raises(SystemExit) as e:
        validate_rules.main(add)
    assert e.value.code == 2
    assert "trained with 2 epochs, the scenario asks 1" in capsys.readouterr().err
    tampered(lambda p: (p["val"].append(0.5), p["test"].append(0.5)))  # as if on 3 seeds
    with pytest.raises(SystemExit):
        validate_rules.main(add)
    assert "trained with 3 seed(s), the scenario asks 2" in capsys.readouterr().err


def test_grids_saved_by_parallel_runs_combine_into_one() -> None:
    """Two runs, each with some scenarios (one in both: the later file's wins), combine to
    the saved grids of the committed file, in scenario order."""
    saved = json.loads(validate_rules.RAW.read_text())
    names = [v["scenario"] for v in saved["verdicts"]]
    half = len(names) // 2

    def part(chosen: list[str], machine: str, command: str) -> dict[str, object]:
        return {
            "machine": machine,
            "commands": [command],
            "verdicts": [v for v in saved["verdicts"] if v["scenario"] in chosen],
            "points": {k: saved["points"][k] for k in chosen},
        }

    stale = part(names[half:], "box A", "run A")  # the second half first: order restored
    stale["points"][names[half]] = []  # type: ignore[index]  # replaced by the later file
    later = part(names[: half + 1], "box A; box B; box B", "run B")  # itself combined
    again = part(names[:1], "box B", "run C")
    both = validate_rules.combine([stale, later, again])
    assert [v["scenario"] for v in both["verdicts"]] == names
    assert both["points"] == {k: saved["points"][k] for k in names}
    assert both["commands"] == ["run A", "run B", "run C"]
    assert both["machine"] == "box A; box B"  # each machine once


def test_the_saved_profiles_say_what_todays_probe_says_of_each_model() -> None:
    """The saved verdicts were judged on the profiles measured when their grids ran. A probe
    that has changed since (the convexity of a GRU, ...) makes them stale: measure them
    again with ``--from-json docs/benchmarks/validation.json --reprofile <scenarios>``."""
    from advisor.probe.convexity import convexity_of

    saved = json.loads(validate_rules.RAW.read_text())
    by_name = {s.name: s for s in scenarios.SCENARIOS}
    stale = []
    for v in saved["verdicts"]:
        s = by_name[v["scenario"]]
        if s.model is None:
            continue  # the seed MLP: nonconvex, tested with the probe
        now, _ = convexity_of(s.model(_data_or_skip(s))())
        if v["profile_fields"]["convexity"] != now:
            stale.append(f"{s.name}: saved {v['profile_fields']['convexity']}, now {now}")
    assert not stale, stale


def test_the_saved_grids_judged_by_todays_rules_are_what_the_doc_reports() -> None:
    """CI's check of the rules against the truth: the committed grids, judged again with the
    rules as they are now, give the doc's summary table; every rule's ``validated`` list is
    exactly the scenarios where it fires and what it changes holds (derived_validated)."""
    saved = json.loads(validate_rules.RAW.read_text())
    verdicts = validate_rules.rejudge(saved)
    doc = validation_report.DOC.read_text()
    assert validation_report.summary_table(verdicts) in doc, (
        "a rule changed since docs/VALIDATION.md was written: redraw it with "
        "python benchmarks/validate_rules.py --from-json docs/benchmarks/validation.json"
    )
    claimed = {r.id: list(r.validated) for r in load_rules(()) if r.enabled}
    assert claimed == validation_report.derived_validated(verdicts), (
        "the rules' `validated` lists are not what the grids say: rewrite them with "
        "python benchmarks/validate_rules.py --from-json docs/benchmarks/validation.json "
        "--write-validated"
    )


def test_write_validated_rewrites_only_the_lists_that_changed(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(validate_rules.ROOT / "rules", tmp_path / "rules")
    rules = {r.id: list(r.validated) for r in load_rules(()) if r.enabled}
    target = next(rid for rid, names in rules.items() if names)
    path = next(
        p for p in (tmp_path / "rules").glob("*.toml") if f'id = "{target}"' in p.read_text()
    )
    original = path.read_text()
    wanted = {**rules, target: ["noisy-digits"]}
    assert validation_report.write_validated(wanted, tmp_path / "rules") == [target]
    assert f'id = "{target}"\nvalidated = ["noisy-digits"]\n' in path.read_text()
    assert validation_report.write_validated(rules, tmp_path / "rules") == [target]
    assert path.read_text() == original
    assert validation_report.write_validated(rules, tmp_path / "rules") == []


def test_a_missing_word_list_names_the_debian_package_that_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scenarios.text, "DICT", tmp_path)
    scenarios.text.language_words.cache_clear()
    try:
        with pytest.raises(scenarios.text.MissingData, match="apt-get install wamerican$"):
            scenarios.text.language_words(per_language=5)
        (tmp_path / "american-english").write_text("cat\n")
        with pytest.raises(scenarios.text.MissingData, match="apt-get install wngerman$"):
            scenarios.text.language_words(per_language=5)
    finally:
        scenarios.text.language_words.cache_clear()


def test_a_run_stops_once_its_curve_has_converged_and_is_tested_as_it_stopped() -> None:
    s = replace(BY_NAME["logistic-digits"], stop_converged=True, batch_size=128)
    assert s.model is not None
    data = validation_grid.shrink(s.data(), rows=256)  # scikit-learn's digits: always here
    # lr 1e-5 barely moves the weights: the validation score is flat from the first epoch
    slow = MemberConfig("sgd", {"lr": 1e-5}, init_seed=0)
    (stopped,) = validation_grid._train(s, [slow], data, 12, 30_000, s.model(data), {})
    k = validation_stats.CONVERGED_K
    assert stopped.status == "stopped" and stopped.epochs_run == k + 1
    assert len(stopped.val_accuracy) == 12  # carried to the grid's epochs at its last score
    assert set(stopped.val_accuracy[k:]) == {stopped.val_accuracy[k]}
    (same,) = train_members(
        [slow],
        data,
        epochs=k + 1,
        batch_size=128,
        data_seed=30_000,
        evaluate_test=True,
        model_factory=s.model(data),
    )
    assert stopped.test_accuracy is not None and stopped.test_accuracy == same.test_accuracy
    # without the option every run trains its epochs
    (full,) = validation_grid._train(
        replace(s, stop_converged=False), [slow], data, 8, 30_000, s.model(data), {}
    )
    assert full.status == "complete" and full.epochs_run == 8
