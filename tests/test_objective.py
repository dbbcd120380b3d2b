"""The objective API: your loop, advisor's search, pruning, finals and report."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from click.testing import CliRunner
from objectives import broken, quadratic, silent

import advisor
from advisor.cli import cli
from advisor.core.errors import InvalidValueError
from advisor.train import MemberConfig
from advisor.train.members import EpochReport
from advisor.tuning import schema
from advisor.tuning.objective import NO_REPORT_NOTE, NO_TEST_NOTE, ObjectiveError, ObjectiveTrainer

FAST: dict[str, Any] = dict(
    trials=8, epochs=3, seeds=2, finalists=2, optimizers=["adam", "sgd"], device="cpu"
)


def _tune(fn: Callable[..., Any] | str, tmp_path: Path, **kw: Any) -> advisor.TuneResult:
    return advisor.tune(objective=fn, out=tmp_path, budget="5m", **{**FAST, **kw})


def test_an_objective_is_searched_pruned_and_its_finalists_rerun(tmp_path: Path) -> None:
    seen: list[advisor.Trial] = []

    def objective(trial: advisor.Trial) -> Any:
        seen.append(trial)
        value = quadratic(trial)
        return {"value": value, "test": value - 0.01} if trial.evaluate_test else value

    result = _tune(objective, tmp_path)
    d = result.to_dict()
    assert d["trials"]["complete"] + d["trials"]["pruned"] == 8
    assert d["trials"]["pruned"] >= 1  # successive halving over what report() sent
    # finals: 2 finalists + the default Adam + Prodigy at its defaults, on 2 fresh seeds
    finals = [t for t in seen if t.evaluate_test]
    assert len(finals) == 2 * 4 and {t.seed for t in finals} == {10_000, 10_001}
    base = [t for t in finals if t.optimizer_name == "adam" and t.hyperparameters["lr"] == 1e-3]
    assert base and base[0].schedule == "constant"  # the baseline's config went through fn
    rec = result.recommendation
    assert rec.test_accuracy.mean == pytest.approx(rec.val_accuracy.mean - 0.01)
    assert NO_TEST_NOTE not in result.notes and NO_REPORT_NOTE not in result.notes
    assert any("objective" in n for n in result.notes)  # what the percentages are


def test_trial_builds_the_optimizer_and_scheduler() -> None:
    built: dict[str, Any] = {}

    def objective(trial: advisor.Trial) -> float:
        model = torch.nn.Linear(3, 2)
        opt = trial.optimizer(model.parameters())
        sched = trial.scheduler(opt, 10)
        built.update(opt=opt, lr=[], torch=trial.torch)
        for _ in range(10):
            built["lr"].append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return 0.5

    trainer = ObjectiveTrainer(objective)
    config = MemberConfig("nesterov", {"lr": 0.1}, "cosine", init_seed=7, key="a")
    (res,) = trainer([config], epochs=2)
    assert res.status == "complete" and res.val_accuracy == (0.5,)
    assert isinstance(built["opt"], torch.optim.SGD) and built["opt"].defaults["nesterov"]
    assert built["lr"][0] == pytest.approx(0.1) and built["lr"][-1] < 0.01  # cosine decay
    assert built["torch"].startswith("torch.optim.SGD(")


def test_a_schedule_free_optimizer_comes_in_train_mode_and_steps() -> None:
    def objective(trial: advisor.Trial) -> float:
        model = torch.nn.Linear(3, 2)
        optimizer = trial.optimizer(model.parameters())
        assert trial.train_eval
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()  # schedulefree refuses a step outside train mode
        optimizer.eval()  # type: ignore[attr-defined]
        return 1.0

    (res,) = ObjectiveTrainer(objective)([MemberConfig("schedulefree", {}, key=0)], epochs=1)
    assert res.status == "complete", res.reason


def test_muon_needs_the_model() -> None:
    def objective(trial: advisor.Trial) -> float:
        model = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)
        )
        with pytest.raises(InvalidValueError, match=r"trial.optimizers\(model\)"):
            trial.optimizer(model)
        assert len(trial.optimizers(model)) == 2  # Muon on hidden weights, AdamW on the rest
        return 1.0

    (res,) = ObjectiveTrainer(objective)([MemberConfig("muon", {}, key=0)], epochs=1)
    assert res.status == "complete", res.reason


def test_report_raises_trial_pruned_when_advisor_prunes() -> None:
    epochs_run: list[int] = []

    def objective(trial: advisor.Trial) -> float:
        for epoch in range(1, 6):
            epochs_run.append(epoch)
            trial.report(epoch, 0.1 * epoch)
        return 0.5

    def on_epoch(report: EpochReport) -> list[Any]:
        return ["a"] if report.epoch == 2 else []

    (res,) = ObjectiveTrainer(objective)(
        [MemberConfig("adam", key="a")], epochs=5, on_epoch=on_epoch
    )
    assert res.status == "stopped" and res.val_accuracy == pytest.approx((0.1, 0.2))
    assert epochs_run == [1, 2]


def test_a_minimized_metric_is_negated() -> None:
    trainer = ObjectiveTrainer(lambda trial: 0.25, maximize=False)
    (res,) = trainer([MemberConfig("adam")], epochs=1, evaluate_test=True)
    assert res.val_accuracy == (-0.25,) and res.test_accuracy == -0.25
    assert trainer.notes() == [NO_REPORT_NOTE, NO_TEST_NOTE]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_is_diverged(bad: float) -> None:
    (res,) = ObjectiveTrainer(lambda trial: bad)([MemberConfig("adam")], epochs=1)
    assert res.status == "diverged" and str(bad) in (res.reason or "")

    def reports_bad(trial: advisor.Trial) -> float:
        trial.report(1, 0.5)
        trial.report(2, bad)
        return 0.5

    (res,) = ObjectiveTrainer(reports_bad)([MemberConfig("adam")], epochs=3)
    assert res.status == "diverged" and "at epoch 2" in (res.reason or "")


def test_a_raising_trial_fails_and_the_study_goes_on(tmp_path: Path) -> None:
    def objective(trial: advisor.Trial) -> float:
        if trial.optimizer_name == "sgd" and not trial.evaluate_test:
            raise ValueError("sgd is not for me")
        return quadratic(trial)

    result = _tune(objective, tmp_path)
    trials = result.study.get_trials(deepcopy=False)
    reasons = [t.user_attrs.get(schema.REASON, "") for t in trials]
    sgd = [r for t, r in zip(trials, reasons) if t.params.get("optimizer") == "sgd"]
    assert sgd and all("the objective raised ValueError: sgd is not for me" in r for r in sgd)
    assert result.trials["complete"] >= 1 and result.recommendation.optimizer != "sgd"


def test_every_trial_of_the_first_batch_raising_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(ObjectiveError, match="RuntimeError: my loop is broken"):
        _tune(broken, tmp_path)


def test_an_objective_that_never_reports_runs_without_pruning(tmp_path: Path) -> None:
    result = _tune(silent, tmp_path)
    assert result.trials["pruned"] == 0 and result.trials["complete"] == 8
    assert NO_REPORT_NOTE in result.notes and NO_TEST_NOTE in result.notes
    text = result.to_text()
    assert "never called trial.report" in text
    assert text.startswith("advisor tune: your objective objectives:silent, 3 epochs")


def test_bad_objective_arguments() -> None:
    with pytest.raises(InvalidValueError, match="reads its own data"):
        advisor.TuneConfig(objective=silent, data=([0], [0]))
    with pytest.raises(InvalidValueError, match="'module:function'"):
        advisor.TuneConfig(objective=silent, workers=2)
    with pytest.raises(InvalidValueError, match="objective must be a callable"):
        advisor.TuneConfig(objective=3)  # type: ignore[arg-type]


def test_cli_objective_and_its_first_batch_error(tmp_path: Path) -> None:
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)  # the CLI imports objectives:NAME as a user's module
    try:
        common = ["--trials", "4", "--epochs", "2", "--seeds", "2", "--finalists", "1"]
        common += ["--optimizers", "adam", "--device", "cpu", "--quiet", "--format", "json"]
        res = CliRunner().invoke(
            cli, ["tune", "--objective", "objectives:quadratic", "--out", str(tmp_path), *common]
        )
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(
            # its own folder: a default study name is made to the second, so a run started
            # within the same second in the same folder would continue the first one's study
            cli,
            ["tune", "--objective", "objectives:broken", "--out", str(tmp_path / "b"), *common],
        )
        assert res.exit_code == 2
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "my loop is broken" in lines[0], res.output
    finally:
        sys.path.remove(here)


def test_optuna_trial_pruned_is_what_report_raises() -> None:
    def objective(trial: advisor.Trial) -> float:
        try:
            trial.report(1, 0.1)
        except optuna.TrialPruned:
            raise
        return 0.1

    (res,) = ObjectiveTrainer(objective)(
        [MemberConfig("adam", key=0)], epochs=2, on_epoch=lambda r: [0]
    )
    assert res.status == "stopped"


def test_a_minimized_objective_is_reported_as_itself(tmp_path: Path) -> None:
    def loss(trial: advisor.Trial) -> float:
        return (math.log10(trial.hyperparameters["lr"]) + 2.5) ** 2 + 0.5

    result = _tune(loss, tmp_path, direction="minimize", metric="val_loss")
    d = result.to_dict()
    assert d["settings"]["task"] == {
        "kind": "objective",
        "metric": "val_loss",
        "direction": "minimize",
    }
    assert d["recommendation"]["val_accuracy"]["mean"] <= -0.5  # stored to be maximized
    text = result.to_text()
    assert "test val_loss: 0.5" in text and "val %" not in text  # shown as the loss itself


def test_a_model_beside_the_objective_tells_the_rules_its_size(tmp_path: Path) -> None:
    def net() -> torch.nn.Module:
        return torch.nn.Linear(100, 10)  # 1,010 parameters

    result = _tune(quadratic, tmp_path, model=net, trials=4)
    assert result.settings.profile["params"] == 1010
    assert result.settings.model == "objective objectives:quadratic"
