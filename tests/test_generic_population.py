"""The generic (``torch.func``) population trainer against torch.optim, on four kinds of model.

Same protocol as ``test_population.py``: float64, every member against the reference
trainer (``torch.optim`` on one ``nn.Module``) from the same init and the same minibatches,
relative error at most 1e-9 on every parameter and buffer. Measured here after 30 steps:
1e-16 to 1e-14 for every optimizer on the CNN, the BatchNorm model and the GRU; the
transformer encoder stays within 1e-13 although its attention runs on the math kernel of
``scaled_dot_product_attention`` in the population (vmap has no batching rule for the fused
CPU kernel) and on the fused kernel in the reference.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable
from dataclasses import replace

import pytest
import torch
from data_helpers import subset
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from advisor.data.dataset import Dataset
from advisor.data.datasets import load_dataset
from advisor.data.task import Task
from advisor.knowledge.optimizers import list_optimizers
from advisor.train import MemberConfig, routing, train_members, train_reference
from advisor.train.func_fit import memory_population, step_flops, user_population, vmap_problem
from advisor.train.members import DIVERGENCE_FACTOR, divergence_reason, loss_limit
from advisor.train.population_loop import train_func_population

EPOCHS = 2
BATCH = 32  # 320 samples: 10 steps an epoch, 20 in all
TOLERANCE = 1e-9
# small float64 steps: one thread (on the shared 2 cores, two made this file 8x slower)
pytestmark = pytest.mark.usefixtures("one_thread")


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.MaxPool2d(2),  # [N, 1, 14, 14]: float64 convolutions are slow on the CPU
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [N, 8, 3, 3]
        nn.Flatten(),
        nn.Linear(72, 32),  # a hidden weight, for Muon
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def batchnorm_mlp() -> nn.Module:
    # no bias before BatchNorm: it would have no gradient but rounding noise, which adaptive
    # methods scale up to full steps (any two implementations then part at once)
    return nn.Sequential(
        nn.Linear(784, 32, bias=False),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


class TinyEncoder(nn.Module):
    """16 tokens of 49 pixels, one ``nn.TransformerEncoderLayer``, mean pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(49, 16)
        # bias=False: the key projection's bias has no gradient (softmax ignores a shift) but
        # rounding noise, which adaptive methods scale up to full steps, as above
        self.encoder = nn.TransformerEncoderLayer(
            16, 2, 32, dropout=0.0, batch_first=True, bias=False
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.view(x.shape[0], 16, 49))
        return self.head(self.encoder(tokens).mean(dim=1))  # type: ignore[no-any-return]


class PaddedEncoder(TinyEncoder):
    """TinyEncoder whose blank tokens (49 black pixels: the image's empty margins) are
    padding: ``src_key_padding_mask``, as padded text passes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.view(x.shape[0], 16, 49)
        pad = pixels.abs().sum(-1) == 0  # [N, 16], True: ignore this key
        h = self.encoder(self.embed(pixels), src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(1) / keep.sum(1))  # type: ignore[no-any-return]


class TinyGRU(nn.Module):
    """A GRU over the 28 rows of an image, unrolled from ``nn.GRUCell`` (``nn.GRU`` has no
    batching rule: see ``test_a_model_that_cannot_be_vmapped_falls_back``)."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(28, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.view(x.shape[0], 28, 28)
        h = x.new_zeros(x.shape[0], 16)
        for t in range(0, 28, 7):  # every seventh row: 4 steps
            h = self.cell(rows[:, t], h)
        return self.head(h)  # type: ignore[no-any-return]


class TinyLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(28, 8, batch_first=True)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.view(x.shape[0], 28, 28))
        return self.head(out[:, -1])  # type: ignore[no-any-return]


MODELS: dict[str, Callable[[], nn.Module]] = {
    "cnn": small_cnn,
    "batchnorm": batchnorm_mlp,
    "transformer": TinyEncoder,
    "transformer-padded": PaddedEncoder,
    "gru": TinyGRU,
}

# The main optimizers, with per-member learning rates, schedules and inits.
MAIN = [
    MemberConfig("sgd", {"lr": 0.05}, key="sgd"),
    MemberConfig("sgd", {"lr": 0.1, "weight_decay": 1e-3}, "cosine", 1, key="sgd-2"),
    MemberConfig("momentum", {"lr": 0.02, "momentum": 0.9}, key="momentum"),
    MemberConfig("momentum", {"lr": 0.05, "momentum": 0.5}, "warmup_cosine", 2, key="momentum-2"),
    MemberConfig("adam", {"lr": 1e-3}, key="adam"),
    MemberConfig("adam", {"lr": 3e-3, "beta1": 0.8, "weight_decay": 1e-3}, "cosine", key="adam-2"),
    MemberConfig("adamw", {"lr": 2e-3}, "cosine", key="adamw"),
    MemberConfig("adamw", {"lr": 5e-3, "beta1": 0.85}, init_seed=3, key="adamw-2"),
]
# Every other population optimizer, on the CNN.
OTHERS = [
    MemberConfig("nesterov", {"lr": 0.02, "momentum": 0.9}, "cosine", key="nesterov"),
    MemberConfig("adagrad", {"lr": 0.01, "weight_decay": 1e-3}, key="adagrad"),
    MemberConfig("rmsprop", {"lr": 1e-3}, "cosine", key="rmsprop"),
    MemberConfig("nadam", {"lr": 2e-3, "beta1": 0.8}, key="nadam"),
    MemberConfig("radam", {"lr": 1e-3}, "warmup_cosine", key="radam"),
    MemberConfig("muon", {"lr": 3e-3, "momentum": 0.9, "weight_decay": 0.01}, key="muon"),
    MemberConfig("adafactor", {"lr": 1e-2, "weight_decay": 1e-2}, key="adafactor"),
    MemberConfig("lion", {"lr": 1e-4}, "cosine", key="lion"),
    MemberConfig("schedulefree", {"lr": 2.5e-3}, "warmup_constant", key="schedulefree"),
    MemberConfig("prodigy", {"d_coef": 0.5}, key="prodigy"),
]


@pytest.fixture(scope="module")
def small() -> Dataset:
    return subset(load_dataset("mnist-5k"), 320, 100)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    if not b.is_floating_point():
        return 0.0 if torch.equal(a, b) else math.inf
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


def check_exact(
    configs: list[MemberConfig],
    factory: Callable[[], nn.Module],
    data: Dataset,
    fused: bool | None = None,
) -> None:
    run = train_func_population(
        configs, data, model_factory=factory, epochs=EPOCHS, batch_size=BATCH,
        dtype=torch.float64, fused=fused,
    )  # fmt: skip
    assert all(r.status == "complete" and r.trainer == "func" for r in run.results)
    for config, result in zip(configs, run.results):
        ref = train_reference(
            config, data, model_factory=factory, epochs=EPOCHS, batch_size=BATCH,
            dtype=torch.float64,
        )  # fmt: skip
        mine = run.population.state_dict(config.key)
        theirs = ref.model.state_dict()
        assert set(mine) == set(theirs)
        for name, tensor in theirs.items():
            err = relative_error(mine[name], tensor)
            assert err <= TOLERANCE, f"{config.key} {name}: relative error {err:.2e}"
        assert result.val_loss == pytest.approx(ref.result.val_loss, rel=1e-9)
        assert result.val_accuracy == pytest.approx(ref.result.val_accuracy, abs=1e-6)


@pytest.mark.parametrize("model", list(MODELS))
def test_main_optimizers_follow_torch_optim_on_every_model(small: Dataset, model: str) -> None:
    check_exact(MAIN, MODELS[model], small)


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernels", "vectorized"])
def test_every_population_optimizer_follows_torch_optim_on_the_cnn(
    small: Dataset, fused: bool
) -> None:
    names = {c.optimizer for c in [*MAIN, *OTHERS]}
    assert names == set(list_optimizers(population=True))
    configs = OTHERS if fused else [*MAIN[::2], *OTHERS]
    check_exact(configs, small_cnn, small, fused=fused)


def test_routing_sends_a_user_model_to_the_generic_population(small: Dataset) -> None:
    configs = [MemberConfig("adam", key="a"), MemberConfig("lbfgs", key="l")]
    results = train_members(configs, small, epochs=1, batch_size=64, model_factory=small_cnn)
    assert [r.trainer for r in results] == ["func", "reference"]
    assert all(r.status == "complete" and r.note is None for r in results)
    assert results[0].seed == 0  # the population's random seed (data_seed by default)


def test_batchnorm_with_schedule_free_trains_alone(small: Dataset) -> None:
    configs = [MemberConfig("schedulefree", key="sf"), MemberConfig("sgd", key="s")]
    results = train_members(configs, small, epochs=1, batch_size=64, model_factory=batchnorm_mlp)
    assert [r.trainer for r in results] == ["reference", "func"]
    assert results[0].note is not None and "BatchNorm" in results[0].note


def test_a_model_that_cannot_be_vmapped_falls_back(small: Dataset) -> None:
    x, y = small.x_train[:4], small.y_train[:4]
    reason = vmap_problem(TinyLSTM(), x, y)
    assert reason is not None and "cannot be vmapped" in reason and "lstm" in reason
    assert "\n" not in reason
    assert vmap_problem(TinyGRU(), x, y) is None
    configs = [MemberConfig("adam", key="a"), MemberConfig("sgd", {"lr": 0.1}, key="s")]
    routing._warned.clear()  # (another test may have warned about TinyLSTM already)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = train_members(configs, small, epochs=1, batch_size=64, model_factory=TinyLSTM)
        # A study's next batch of trials: noted again, but not warned again.
        again = train_members(configs[:1], small, epochs=1, batch_size=64, model_factory=TinyLSTM)
    lines = [str(w.message) for w in caught if "vmapped" in str(w.message)]
    assert len(lines) == 1 and lines[0].startswith("TinyLSTM: trained alone")
    for r in [*results, *again]:
        assert r.status == "complete" and r.trainer == "reference"
        assert r.note is not None and r.note == lines[0].removeprefix("TinyLSTM: ")


class Dropped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def test_dropout_draws_different_masks_per_member_reproducibly(small: Dataset) -> None:
    twins = [MemberConfig("sgd", {"lr": 0.1}, key=k) for k in ("a", "b")]

    def run(seed: int) -> dict[Hashable, dict[str, torch.Tensor]]:
        pop = train_func_population(
            twins, small, model_factory=Dropped, epochs=1, batch_size=64, seed=seed
        )
        assert [r.seed for r in pop.results] == [seed, seed]
        return {k: pop.population.state_dict(k) for k in ("a", "b")}

    first, again, other = run(5), run(5), run(6)
    w = "net.0.weight"
    assert not torch.equal(first["a"][w], first["b"][w])  # same init, different masks
    assert torch.equal(first["a"][w], again["a"][w]) and torch.equal(first["b"][w], again["b"][w])
    assert not torch.equal(first["a"][w], other["a"][w])


def regression_data(n: int = 400, features: int = 8) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, generator=g)
    y = x @ w + 0.1 * torch.randn(n, generator=g)
    cut = (n * 3 // 4, n * 7 // 8)
    return Dataset(
        "regression", x[: cut[0]], y[: cut[0]], x[cut[0] : cut[1]], y[cut[0] : cut[1]],
        x[cut[1] :], y[cut[1] :], n_classes=1,
    )  # fmt: skip


def regressor() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def test_a_regression_trains_and_reports_negative_mse() -> None:
    data, task = regression_data(), Task("regression")
    configs = [
        MemberConfig("adam", {"lr": 1e-2}, key="a"),
        MemberConfig("sgd", {"lr": 0.05}, key="s"),
    ]
    results = train_members(
        configs, data, epochs=5, batch_size=32, model_factory=regressor, task=task,
        evaluate_test=True,
    )  # fmt: skip
    for r in results:
        assert r.status == "complete" and r.trainer == "func"
        assert r.train_loss[-1] < r.train_loss[0] / 4
        assert all(m < 0 for m in r.val_accuracy)  # the metric: negative MSE
        assert r.val_accuracy == pytest.approx([-v for v in r.val_loss], rel=1e-5)
        assert r.test_accuracy is not None and r.test_accuracy < 0
    ref = train_reference(
        configs[0], data, epochs=5, batch_size=32, model_factory=regressor, task=task
    )
    assert ref.result.val_accuracy == pytest.approx(results[0].val_accuracy, rel=1e-4)


def test_regression_divergence_is_ten_times_the_loss_of_predicting_zero() -> None:
    data = regression_data()
    square = float(data.y_train.square().mean())
    limit = loss_limit(Task("regression"), 1, square)
    assert limit[0] == pytest.approx(DIVERGENCE_FACTOR * square)
    assert divergence_reason(0.5 * limit[0], 1, limit=limit) is None  # type: ignore[operator]
    assert "mean(y**2)" in str(divergence_reason(2 * limit[0], 1, limit=limit))  # type: ignore[operator]
    assert loss_limit(Task("regression", loss=lambda o, y: (o - y).abs().mean()), 1) == (None, "")
    assert divergence_reason(1e30, 1, limit=(None, "")) is None
    assert divergence_reason(math.inf, 1, limit=(None, "")) == "training loss is inf"
    configs = [MemberConfig("sgd", {"lr": 1e3}, key="boom"), MemberConfig("adam", key="ok")]
    results = train_members(
        configs, data, epochs=2, batch_size=32, model_factory=regressor, task=Task("regression")
    )
    assert results[0].status == "diverged" and results[1].status == "complete"


def test_population_size_follows_memory() -> None:
    x = torch.zeros(128, 784)
    small_k = memory_population(nn.Linear(784, 10), x, cap=10**9)
    big_k = memory_population(
        nn.Sequential(nn.Linear(784, 4096), nn.Linear(4096, 10)), x, cap=10**9
    )
    assert small_k > big_k >= 1
    assert memory_population(nn.Linear(784, 10), x) == 16  # capped at the CPU's useful size
    tiny = replace(regression_data(), name="tiny")
    assert vmap_problem(regressor(), tiny.x_train[:4], tiny.y_train[:4], Task("regression")) is None


def test_a_compute_bound_model_trains_one_at_a_time_on_a_cpu() -> None:
    x = torch.randn(128, 784)
    wide = nn.Sequential(nn.Linear(784, 2048), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 10))
    wide[1].eval()  # a module the user left in eval mode stays so
    k, why = user_population(wide, x)
    # 2 * 128 * (784 * 2048 + 2048 * 10) multiply-adds forward, times 3 for the step
    assert step_flops(wide, x) == 3 * 2 * 128 * (784 * 2048 + 2048 * 10)
    assert (k, why) == (
        1,
        "one model at a time: on a CPU, a training step of 1.2 GFLOP already keeps the cores busy",
    )
    assert wide.training and not wide[1].training and wide[2].training
    narrow = nn.Sequential(nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))
    rng = torch.get_rng_state()
    k, why = user_population(narrow, x)
    assert k > 1 and why == f"{k} models at once (the generic torch.func population)"
    assert torch.equal(torch.get_rng_state(), rng)  # nothing drawn
    assert torch.equal(narrow[1].running_mean, torch.zeros(128))  # no statistics moved
    assert narrow[1].num_batches_tracked.item() == 0
    assert all(p.grad is None for p in narrow.parameters())
    # a transformer layer is counted as in training (in eval mode its fused fast path
    # would hide every matmul from the counter)
    encoder = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True)
    tokens = torch.randn(128, 16, 32)
    with FlopCounterMode(display=False) as counter:
        encoder(tokens)  # training mode, with gradients: no fast path
    assert step_flops(encoder, tokens) == 3 * counter.get_total_flops() > 0
    assert torch.backends.mha.get_fastpath_enabled()  # restored


def test_pruned_members_leave_the_others_unchanged(small: Dataset) -> None:
    configs = [
        MemberConfig("adam", {"lr": 2e-3}, key="a"),
        MemberConfig("adam", {"lr": 1e-3}, key="b"),
        MemberConfig("nadam", key="c"),
        MemberConfig("momentum", {"lr": 0.02}, key="d"),
    ]

    def prune(report: object) -> list[Hashable]:
        return ["b", "c"] if getattr(report, "epoch", 0) == 1 else []

    kw = {"model_factory": batchnorm_mlp, "epochs": EPOCHS, "batch_size": BATCH}
    pruned = train_func_population(configs, small, on_epoch=prune, dtype=torch.float64, **kw)  # type: ignore[arg-type]
    alone = train_func_population(
        [configs[0], configs[3]],
        small,
        dtype=torch.float64,
        **kw,  # type: ignore[arg-type]
    )
    assert [r.status for r in pruned.results] == ["complete", "stopped", "stopped", "complete"]
    for key in ("a", "d"):
        mine, theirs = pruned.population.state_dict(key), alone.population.state_dict(key)
        for name, tensor in theirs.items():
            assert relative_error(mine[name], tensor) <= 1e-12, (key, name)


def test_a_population_of_one_is_the_reference_trainer(small: Dataset) -> None:
    configs = [MemberConfig("adam", key="a"), MemberConfig("sgd", key="s")]
    results = train_members(
        configs, small, epochs=1, batch_size=64, model_factory=small_cnn, max_population=1
    )
    assert [r.trainer for r in results] == ["reference", "reference"]
    assert all(r.note is None for r in results)
