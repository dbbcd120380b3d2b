"""Your own data in every accepted form, your task, and the checks before anything trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import advisor
from advisor.cli import cli
from advisor.core.errors import DataError, InvalidValueError
from advisor.data.sources import TEST_FRACTION, load_user_data
from advisor.data.task import Task
from advisor.train.task_check import check_model_task
from advisor.tuning.config import TuneConfig, make_task

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 3, 4, 4)).astype(np.float32)
Y = np.arange(200) % 4


def test_four_arrays_keep_their_shape_for_a_model() -> None:
    ds = load_user_data((X[:150], Y[:150], X[150:], Y[150:]), flatten=False, validation=30)
    assert ds.x_train.shape == (120, 3, 4, 4) and ds.x_val.shape == (30, 3, 4, 4)
    assert ds.feature_shape == (3, 4, 4) and ds.n_features == 48 and ds.n_classes == 4
    assert torch.equal(ds.x_test, torch.from_numpy(X[150:]))
    flat = load_user_data((X[:150], Y[:150], X[150:], Y[150:]))  # the seed MLP's form
    assert flat.x_train.shape == (135, 48)


def test_a_pair_gets_a_held_out_test_set_stratified_and_seeded() -> None:
    ds = load_user_data((X, Y), seed=3)
    assert len(ds.y_test) == round(TEST_FRACTION * 200)
    assert torch.bincount(ds.y_test).tolist() == [10, 10, 10, 10]
    again = load_user_data((X, Y), seed=3)
    assert torch.equal(ds.x_test, again.x_test) and torch.equal(ds.x_val, again.x_val)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 200


def test_a_torch_dataset_and_a_dataloader_factory_are_materialized() -> None:
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    from_ds = load_user_data(TensorDataset(tx, ty), flatten=False, seed=1)
    from_pair = load_user_data((X, Y), flatten=False, seed=1)
    assert torch.equal(from_ds.x_train, from_pair.x_train)

    def loaders(split: str) -> DataLoader[tuple[torch.Tensor, ...]] | None:
        part = slice(0, 160) if split == "train" else slice(160, 200)
        return DataLoader(TensorDataset(tx[part], ty[part]), batch_size=32)

    ds = load_user_data(loaders, flatten=False)
    assert len(ds.y_test) == 40 and len(ds.y_train) + len(ds.y_val) == 160

    def train_only() -> DataLoader[tuple[torch.Tensor, ...]]:
        return DataLoader(TensorDataset(tx, ty), batch_size=50)

    assert len(load_user_data(train_only).y_test) == 40
    assert len(load_user_data(train_only()).y_test) == 40  # a DataLoader itself


def test_regression_targets_are_floats_split_at_random() -> None:
    y = RNG.normal(size=200).astype(np.float64)
    ds = load_user_data((X, y), kind="regression", flatten=False)
    assert ds.y_train.dtype == torch.float32 and ds.regression and ds.n_classes == 1
    # a random split, not the smallest values (a class-stratified split of unique values)
    assert float(ds.y_test.min()) > float(y.min()) or float(ds.y_test.max()) < float(y.max())
    multi = load_user_data((X, RNG.normal(size=(200, 3))), kind="regression")
    assert multi.y_train.shape[1:] == (3,) and multi.n_classes == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((X, Y, X), "got 3 items"),
        (
            (X, RNG.normal(size=200)),
            r"classification needs integer class labels .*task='regression'",
        ),
        ((X, Y[:10]), "one target per sample"),
        (object(), "not supported"),
        (lambda split: [(1, 2, 3)], "must give \\(x, y\\) batches"),
    ],
)
def test_bad_data_is_one_readable_error(data: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_user_data(data)


def test_make_task_and_module_function_names() -> None:
    assert make_task(None, None, None, None) == Task()
    t = make_task("regression", "torch.nn.functional:l1_loss", None, None)
    assert t.loss is torch.nn.functional.l1_loss and t.metric == "neg_mse"
    assert make_task(Task("regression"), None, "neg_mse", "maximize").kind == "regression"
    with pytest.raises(InvalidValueError, match="cannot import the loss module"):
        make_task(None, "no_such_module:fn", None, None)
    with pytest.raises(InvalidValueError, match="needs its direction"):
        TuneConfig(metric=lambda out, y: 0.0)
    assert TuneConfig(task="regression").the_task.loss == "mse"


def _model(n_out: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(48, n_out))


@pytest.mark.parametrize(
    ("task", "y", "n_out", "message"),
    [
        ("classification", Y, 4, None),
        ("regression", RNG.normal(size=200), 1, None),
        ("regression", RNG.normal(size=200), 3, r"outputs \(4, 3\), targets \(4,\)"),
        ("classification", Y, 3, r"4 classes but the model gives 3 outputs"),
    ],
)
def test_check_model_task_names_the_shapes(
    task: str, y: np.ndarray, n_out: int, message: str | None
) -> None:
    ds = load_user_data((X, y), kind=task, flatten=False)
    if message is None:
        check_model_task(_model(n_out), ds, Task(task))
    else:
        with pytest.raises(InvalidValueError, match=message):
            check_model_task(_model(n_out), ds, Task(task))


def test_the_check_leaves_the_model_and_the_random_stream_as_they_were() -> None:
    """The checked model is the one that trains next: no BatchNorm statistics moved, no
    dropout mask drawn from the global generator, training mode kept."""
    ds = load_user_data((X, Y), flatten=False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.BatchNorm1d(8), nn.Dropout(0.5))
    model.append(nn.Linear(8, 4))
    before = model[2].running_mean.clone()
    state = torch.get_rng_state()
    check_model_task(model, ds, Task("classification"))
    assert torch.equal(model[2].running_mean, before)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training


def test_a_regression_target_given_to_a_classification_loss() -> None:
    ds = load_user_data((X, RNG.normal(size=200)), kind="regression", flatten=False)
    with pytest.raises(InvalidValueError, match=r"integer class targets.*\(4,\)"):
        check_model_task(_model(4), ds, Task("classification"))


def test_a_loss_of_the_wrong_shape() -> None:
    ds = load_user_data((X, Y), flatten=False)

    def per_sample(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out, y, reduction="none")

    with pytest.raises(InvalidValueError, match=r"scalar tensor.*got \(4,\)"):
        check_model_task(_model(4), ds, Task(loss=per_sample))


def test_a_metric_that_is_not_a_number() -> None:
    ds = load_user_data((X, Y), flatten=False)

    def per_sample(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out.argmax(dim=1) == y).float()

    task = Task(metric=per_sample, direction="maximize")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match=r"must return a number for outputs \(4, 4\)"):
        check_model_task(_model(4), ds, task)


def test_tune_and_the_cli_stop_on_a_wrong_shape_with_exit_2(tmp_path: Path) -> None:
    y = RNG.normal(size=200).astype(np.float32)
    with pytest.raises(InvalidValueError, match="regression needs outputs of the targets' shape"):
        advisor.tune(
            model=lambda: _model(3), data=(X, y), task="regression", out=tmp_path, device="cpu"
        )
    module = tmp_path / "bad_shapes_mod.py"
    module.write_text(
        "import numpy as np\nfrom torch import nn\n"
        "def model():\n    return nn.Sequential(nn.Flatten(), nn.Linear(48, 3))\n"
        "def data():\n    rng = np.random.default_rng(0)\n"
        "    return rng.normal(size=(60, 3, 4, 4)).astype('f4'), rng.normal(size=60)\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        args = ["tune", "--model", "bad_shapes_mod:model", "--data", "bad_shapes_mod:data"]
        res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "o"), "--quiet"])
        assert res.exit_code == 2, res.output
        assert "classification needs integer class labels" in res.output
        assert "--task regression" in res.output and "Traceback" not in res.output
        res = CliRunner().invoke(
            cli, [*args, "--task", "regression", "--out", str(tmp_path / "o"), "--quiet"]
        )
        assert res.exit_code == 2, res.output
        assert "outputs (4, 3), targets (4,)" in res.output
    finally:
        sys.path.remove(str(tmp_path))


#: a tune run of seconds: Adam only, 2 trials of 1 epoch, one finalist on 2 seeds
SMALL_RUN: dict[str, Any] = {
    "trials": 2,
    "epochs": 1,
    "seeds": 2,
    "finalists": 1,
    "optimizers": ["adam"],
    "device": "cpu",
    "budget": "5m",
}


def test_a_cnn_on_images_of_their_own_shape(tmp_path: Path) -> None:
    """[N, C, H, W] images reach a model of your own unflattened (the reference trainer)."""

    def cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 4)
        )

    result = advisor.tune(model=cnn, data=(X, Y), out=tmp_path, **SMALL_RUN)
    assert result.settings.n_test == 40 and result.recommendation.test_accuracy.seeds == 2


def test_a_regression_with_the_lr_range_test(tmp_path: Path) -> None:
    """``probe_lr`` on a regression: the LR range test follows the task's loss (it used
    cross-entropy, which fails on float targets) and narrows the searched range."""
    y = (X.reshape(200, -1) @ RNG.normal(size=48)).astype(np.float32)
    result = advisor.tune(
        model=lambda: _model(1),
        data=(X, y / y.std()),
        task="regression",
        probe_lr=True,
        out=tmp_path,
        **SMALL_RUN,
    )
    assert result.settings.space["ranges"]["adam"]["lr"]["source"] == "lr_range_test"


def test_a_minimized_metric_is_oriented_for_the_study() -> None:
    from types import MappingProxyType

    from advisor.train import MemberConfig
    from advisor.train.members import EpochReport, MemberResult
    from advisor.tuning.task_run import oriented

    seen: list[float] = []

    def train(configs: list[MemberConfig], data: object, *, on_epoch: Any = None) -> list[Any]:
        report = EpochReport(1, MappingProxyType({0: 0.25}), {}, {}, {}, 0.0)
        assert on_epoch is not None
        on_epoch(report)
        c = configs[0]
        return [MemberResult(0, c, "complete", None, (0.25,), (0.0,), (0.0,), 0.5, 1)]

    def hook(report: EpochReport) -> list[Any]:
        seen.append(report.val_accuracy[0])
        return []

    assert oriented(train, maximize=True) is train
    (res,) = oriented(train, maximize=False)([MemberConfig("adam")], None, on_epoch=hook)
    assert seen == [-0.25] and res.val_accuracy == (-0.25,) and res.test_accuracy == -0.5


def test_cli_model_and_data_of_your_own(tmp_path: Path) -> None:
    import sys

    module = tmp_path / "own_data_mod.py"
    module.write_text(
        "import numpy as np\nimport torch\nfrom torch import nn\n"
        "from torch.utils.data import TensorDataset\n"
        "def model():\n    return nn.Sequential(nn.Flatten(), nn.Linear(48, 4))\n"
        "rng = np.random.default_rng(0)\nx = torch.tensor(rng.normal(size=(120, 3, 4, 4)), dtype=torch.float32)\n"
        "y = torch.arange(120) % 4\nx[:, 0, 0, 0] += 3 * y\n"
        "dataset = TensorDataset(x, y)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        args = ["tune", "--model", "own_data_mod:model", "--data", "own_data_mod:dataset"]
        args += ["--trials", "2", "--epochs", "1", "--seeds", "2", "--finalists", "1"]
        args += ["--optimizers", "adam", "--device", "cpu", "--quiet", "--format", "json"]
        res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "o")])
        assert res.exit_code == 0, res.output
        import json

        d = json.loads(res.output)
        assert d["settings"]["n_test"] == 24 and d["settings"]["dataset"] == "custom"
    finally:
        sys.path.remove(str(tmp_path))


def test_the_task_reaches_train_members(tmp_path: Path) -> None:
    """Every training call of the session (search, finals, calibration) gets ``task=``."""
    import functools

    from advisor.tuning.session import Session

    y = RNG.normal(size=200).astype(np.float32)
    config = TuneConfig(model=lambda: _model(1), data=(X, y), task="regression", out=tmp_path)
    session = Session.open(config)
    assert isinstance(session.train, functools.partial)
    assert session.train.keywords["task"] == Task("regression")
    assert session.data.regression and session.data.x_train.shape[1:] == (3, 4, 4)
    seed_task = Session.open(TuneConfig(out=tmp_path, device="cpu"))
    assert "task" not in seed_task.train.keywords  # type: ignore[attr-defined]
