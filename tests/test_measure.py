"""The measured profile on real models and real data (mnist-5k): sizes, convexity, gradient
health, the gradient noise scale, step time, and the rule thresholds each value meets."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import advisor
from advisor.core.errors import InvalidValueError, TrainingError
from advisor.data.dataset import Dataset
from advisor.data.datasets import load_dataset
from advisor.knowledge.profile import FIELDS
from advisor.knowledge.recommender import recommend
from advisor.probe.measure import (
    GRADIENT_CHECKS,
    MeasuredProfile,
    classify_gradients,
    convexity_of,
    profile_model,
)
from advisor.train.models import mnist_mlp

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def seed_mlp(data: Dataset) -> MeasuredProfile:
    return profile_model("advisor.models:mnist_mlp", data, device="cpu", budget="10m")


def deep_mlp(activation: Callable[[], nn.Module], std: float, depth: int = 10) -> nn.Module:
    """A deliberately badly initialized MLP: ``depth`` Linear layers of width 64, N(0, std)."""
    layers: list[nn.Module] = []
    width = 784
    for _ in range(depth - 1):
        layers += [nn.Linear(width, 64), activation()]
        width = 64
    net = nn.Sequential(*layers, nn.Linear(width, 10))
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
    return net


def test_the_seed_mlp(seed_mlp: MeasuredProfile) -> None:
    m = seed_mlp
    assert (m.params, m.samples, m.dataset, m.device) == (118_282, 3_600, "mnist-5k", "cpu")
    assert m.convexity == "nonconvex" and "ReLU '1'" in m.convexity_reason
    assert m.gradients == "healthy"
    assert list(m.gradient_norms) == ["0", "2", "4"]  # forward order
    assert all(0 < v < 10 for v in m.gradient_norms.values())
    assert m.optimizer_memory["adam"] == 118_282 * 4 * 4  # weights, grads, 2 moments
    assert m.optimizer_memory["sgd"] == 118_282 * 4 * 2
    assert m.memory is not None and m.memory > 10**9
    assert m.domain == "vision"
    assert 0 < m.step_s < 1 and m.member_step_s is not None and 0 < m.member_step_s < 1
    assert m.steps_per_epoch == 29 and m.trials is not None and m.trials >= 10
    assert m.trials == int(600 // m.trial_s)


def test_noise_scale_is_positive_and_finite(seed_mlp: MeasuredProfile) -> None:
    m = seed_mlp
    assert m.noise_scale is not None and math.isfinite(m.noise_scale) and m.noise_scale > 0
    assert m.noise["b_small"] == 16 and m.noise["b_big"] == 128
    assert m.noise["grad_sq"] > 0 and m.noise["trace_sigma"] > 0
    assert m.noise_scale == pytest.approx(m.noise["trace_sigma"] / m.noise["grad_sq"], rel=1e-3)
    b = m.suggested_batch_size
    assert b is not None and b & (b - 1) == 0  # a power of two near B_simple
    assert b / 2 <= m.noise_scale * 1.5 and m.noise_scale <= 1.5 * b


def test_to_profile_feeds_recommend(seed_mlp: MeasuredProfile) -> None:
    p = seed_mlp.to_profile()
    assert (p.params, p.samples) == (118_282, 3_600)
    assert (p.convexity, p.gradients) == ("nonconvex", "healthy")
    assert p.batch_size == 128 and p.budget == 600.0 and p.trials == seed_mlp.trials
    rec = recommend(p)
    assert "adam" in [c.optimizer for c in rec.candidates[:3]]
    given = seed_mlp.to_profile({"params": "1e9", "convexity": None})
    assert given.params == 10**9 and given.convexity == "nonconvex"


def test_to_dict_carries_the_compared_thresholds(seed_mlp: MeasuredProfile) -> None:
    d = seed_mlp.to_dict()
    json.dumps(d)  # JSON-ready
    assert set(FIELDS) <= set(d)
    params = d["params"]
    assert params["value"] == 118_282 and params["source"] == "measured"
    large = next(c for c in params["compared_with"] if c["rule"] == "model-large-adam")
    assert large == {
        "rule": "model-large-adam",
        "when": "all",
        "op": "ge",
        "threshold": 1_000_000,
        "condition": ">= 1M",
        "holds": False,
        "fired": False,
    }
    grads = d["gradients"]
    assert grads["value"] == "healthy"
    assert [c["check"] for c in grads["checks"]] == [c.id for c in GRADIENT_CHECKS]
    assert not any(c["holds"] for c in grads["checks"])
    clip = next(c for c in grads["compared_with"] if c["rule"] == "gradients-exploding-clip")
    assert clip["threshold"] == "exploding" and clip["holds"] is False
    assert d["noise_scale"]["value"] == seed_mlp.noise_scale
    assert d["memory_per_param"]["source"] == "derived"
    # a given value is marked as such, and compared with the rules at that value
    d2 = seed_mlp.to_dict(seed_mlp.to_profile({"params": "25M"}))
    assert d2["params"]["source"] == "given"
    large = next(c for c in d2["params"]["compared_with"] if c["rule"] == "model-large-adam")
    assert large["holds"] and large["fired"]


def test_text_pairs_measured_values_with_rules(seed_mlp: MeasuredProfile) -> None:
    text = seed_mlp.to_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("params"))
    assert "118,282 (measured)" in line
    assert "model-large-adam: >= 1M? no" in text
    assert "gradients-exploding-clip: = exploding? no" in text
    assert "B_simple" in text and "trials" in text


def test_model_arguments_and_the_callers_model_untouched(data: Dataset) -> None:
    torch.manual_seed(3)
    net = mnist_mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    m = profile_model(net, data, device="cpu", batches=2)
    assert m.params == 118_282 and m.model == "Sequential" and m.member_step_s is None
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(rng, torch.get_rng_state())
    by_function = profile_model(mnist_mlp, data, device="cpu", batches=2)
    assert by_function.model == "advisor.models:mnist_mlp"


def test_dropout_is_seeded_and_the_global_generator_restored(data: Dataset) -> None:
    def net() -> nn.Module:
        return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10))

    first = profile_model(net, data, device="cpu", batches=2)
    rng = torch.get_rng_state()
    again = profile_model(net, data, device="cpu", batches=2)
    assert torch.equal(rng, torch.get_rng_state())
    assert again.gradient_norms == first.gradient_norms
    assert again.noise_scale == first.noise_scale


def test_logistic_regression_is_convex(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    m = profile_model("examples.logistic_regression:logistic_regression", data, device="cpu")
    assert m.params == 7_850 and m.convexity == "convex" and m.gradients == "healthy"
    assert "affine" in m.convexity_reason
    rec = advisor.recommend(m.to_profile())
    assert "convex-small-full-batch" in [f.id for f in rec.fired]
    assert [c.optimizer for c in rec.candidates[:2]] == ["nesterov", "lbfgs"]


def test_small_cnn(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    m = profile_model("examples.small_cnn:small_cnn", data, device="cpu", batches=2)
    assert m.convexity == "nonconvex" and "Conv2d" in m.convexity_reason
    assert m.gradients == "healthy" and len(m.gradient_norms) == 3


def test_exploding_gradients_are_detected_and_clipping_advised(data: Dataset) -> None:
    m = profile_model(lambda: deep_mlp(nn.ReLU, 3.0), data, device="cpu", batches=2)
    assert m.gradients == "exploding" and m.gradient_quantities["max_norm"] > 1e3
    assert m.convexity == "nonconvex"
    rec = advisor.recommend(m.to_profile())
    assert "gradients-exploding-clip" in [f.id for f in rec.fired]
    assert "gradient_clipping" in [a.topic for a in rec.advice]
    checks = {c["check"]: c["holds"] for c in m.to_dict()["gradients"]["checks"]}
    assert checks["grad-norm-huge"]


def test_vanishing_gradients_are_detected(data: Dataset) -> None:
    m = profile_model(lambda: deep_mlp(nn.Sigmoid, 0.01), data, device="cpu", batches=2)
    assert m.gradients == "vanishing" and m.gradient_quantities["ratio"] < 1e-3
    norms = list(m.gradient_norms.values())
    assert norms[0] < norms[-1] * 1e-3  # the first layer gets almost nothing
    rec = advisor.recommend(m.to_profile())
    assert "initialization" in [a.topic for a in rec.advice]


def test_gradient_checks_are_data() -> None:
    assert classify_gradients({"ratio": 1.0, "max_norm": 1.0, "nonfinite": 0.0})[0] == "healthy"
    assert classify_gradients({"ratio": 1e4, "max_norm": 1.0, "nonfinite": 0.0})[0] == "exploding"
    assert classify_gradients({"ratio": 1.0, "max_norm": 1e-8, "nonfinite": 0.0})[0] == "vanishing"
    assert classify_gradients({"ratio": 1.0, "max_norm": 1.0, "nonfinite": 1.0})[0] == "exploding"
    for check in GRADIENT_CHECKS:
        assert check.verdict in ("exploding", "vanishing") and check.op in ("lt", "gt")
        assert "[" in check.text  # every threshold names its source


class _LastStep(nn.Module):
    """A sequence model that reads its last step: ``x[:, -1]`` (a slice in the traced graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)[:, -1])


class _Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(784, 10))
        self.b = nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w + self.b


class _SeriesGRU(nn.Module):
    """A GRU reading the raw series, its last state to a linear head (a forecaster): the
    GRU's weights act on the input, where a fixed feature map would be convex."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.out = nn.GRU(1, 8, batch_first=True), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x.unsqueeze(-1))
        return self.out(states.select(1, -1))


class _NewLeaf(nn.Linear):
    """A torch.nn module the probe has never heard of (torch.fx keeps torch.nn modules whole)."""


_NewLeaf.__module__ = "torch.nn.modules.new_in_a_later_torch"


class _Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


@pytest.mark.parametrize(
    ("build", "verdict", "words"),
    [
        (lambda: nn.Sequential(nn.Linear(784, 10), nn.LogSoftmax(dim=1)), "convex", "LogSoftmax"),
        (lambda: nn.Sequential(nn.Linear(784, 64), nn.Linear(64, 10)), "nonconvex", "stacked"),
        (
            lambda: nn.Sequential(nn.Linear(784, 64), nn.Tanh(), nn.Linear(64, 10)),
            "nonconvex",
            "Tanh",
        ),
        (lambda: nn.Sequential(nn.Linear(784, 10), nn.Softmax(dim=1)), "unknown", "logits"),
        (lambda: nn.Sequential(nn.Linear(784, 10), nn.Sigmoid()), "unknown", "Sigmoid"),
        (lambda: nn.Sequential(nn.Linear(784, 64), nn.LSTM(64, 10)), "nonconvex", "LSTM"),
        (_SeriesGRU, "nonconvex", "GRU 'rnn' applies non-linearities between its own weights"),
        (
            lambda: nn.Sequential(nn.Embedding(50, 8), nn.MultiheadAttention(8, 2)),
            "nonconvex",
            "MultiheadAttention",
        ),
        (lambda: nn.Sequential(_NewLeaf(784, 10)), "unknown", "_NewLeaf '0', which has trainable"),
        (
            lambda: nn.Sequential(
                nn.Linear(784, 64).requires_grad_(False), nn.ReLU(), nn.Linear(64, 10)
            ),
            "convex",
            "Linear '2'",
        ),
        (
            lambda: nn.Sequential(nn.Linear(784, 64), nn.BatchNorm1d(64), nn.Linear(64, 10)),
            "nonconvex",
            "BatchNorm1d",
        ),
        (_Affine, "convex", "parameter 'w'"),
        (_Branching, "unknown", "torch.fx"),
        (_LastStep, "nonconvex", "stacked"),
    ],
)
def test_convexity_verdicts(build: Callable[[], nn.Module], verdict: str, words: str) -> None:
    got, reason = convexity_of(build())
    assert got == verdict, reason
    assert words in reason


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"model": "no_such_module_xyz:factory"}, TrainingError, "cannot import"),
        ({"model": "advisor.train.models:no_such_factory"}, TrainingError, "no_such_factory"),
        ({"model": "no-colon"}, InvalidValueError, "module:factory"),
        ({"model": 42}, InvalidValueError, "nn.Module"),
        ({"batch_size": 0}, InvalidValueError, "batch_size"),
        ({"batches": 1.5}, InvalidValueError, "batches"),
        ({"data": 7}, InvalidValueError, "dataset name"),
        ({"model": nn.ReLU()}, InvalidValueError, "no trainable parameters"),
        (
            {"model": nn.Linear(10, 2)},
            InvalidValueError,
            r"fails on samples of shape \(4, 784\) \(float32\)",
        ),
    ],
)
def test_bad_inputs(data: Dataset, kwargs: dict[str, object], error: type, words: str) -> None:
    args: dict[str, object] = {"model": None, "data": data, "device": "cpu", **kwargs}
    with pytest.raises(error, match=words):
        profile_model(args.pop("model"), args.pop("data"), **args)  # type: ignore[arg-type]


class PixelBag(nn.Module):
    """Pixel intensities as word ids (16 levels) into ``nn.EmbeddingBag(sparse=True)``, then a
    linear head: a model whose table gets sparse gradient tensors."""

    def __init__(self, sparse: bool = True) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(16, 8, mode="mean", sparse=sparse)
        self.out = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = (x.flatten(1) * 15).round().long().clamp(0, 15)
        return self.out(self.embedding(ids))


def test_sparse_embeddings_are_measured_and_probed_with_the_printed_optimizers(
    data: Dataset,
) -> None:
    # Adam raises on sparse gradient tensors: the step time and the LR range test train the
    # table as the printed code does (SparseAdam for the table, Adam for the head)
    advice = advisor.recommend_model(PixelBag, data, device="cpu", probe_lr=True, top=3)
    assert advice.measured.sparse_gradients and advice.profile.sparse_gradients
    assert advice.measured.step_s > 0
    assert advice.measured.to_dict(advice.profile)["sparse_gradients"]["source"] == "measured"
    # an embedding-heavy model: Adafactor and Adam lead (embedding-heavy-adafactor)
    top = {c.optimizer: c for c in advice.recommendation.candidates[:3]}
    assert {"adafactor", "adam"} <= set(top)
    adam = top["adam"]
    assert adam.sparse is not None and adam.sparse.mode == "split"
    assert advice.lr_range["adam"].range is not None
    lr = adam.hyperparameters["lr"]
    assert adam.sparse.code == adam.torch and f"SparseAdam(tables, lr={lr:.4g}" in adam.torch
    assert any(r.rule == "lr-range-test" for r in adam.reasons)
    # Adafactor's line is for dense gradients: its code makes the embeddings dense first
    assert top["adafactor"].sparse is not None and top["adafactor"].sparse.mode == "dense"
    assert not profile_model(
        lambda: PixelBag(sparse=False), data, device="cpu", batches=2
    ).sparse_gradients


def test_a_regression_is_measured_with_its_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """Float targets: the gradient statistics and the step time use the task's MSE (they
    used cross-entropy, which fails on float targets); the wrong task is one readable line."""
    from advisor.data.sources import load_user_data
    from advisor.data.task import Task

    monkeypatch.syspath_prepend(str(ROOT))
    from examples.regression import data as diabetes
    from examples.regression import mlp

    ds = load_user_data(diabetes(), kind="regression")
    m = profile_model(mlp, ds, device="cpu", batches=4, task=Task("regression"))
    assert m.params == 10 * 32 + 32 + 32 + 1 and m.samples == len(ds.y_train)
    assert m.gradients == "healthy" and all(v > 0 for v in m.gradient_norms.values())
    assert m.step_s > 0
    with pytest.raises(InvalidValueError, match="classification needs integer class targets"):
        profile_model(mlp, ds, device="cpu", batches=2)
    with pytest.raises(InvalidValueError, match="seed MLP is a classifier"):
        profile_model(None, ds, device="cpu", task=Task("regression"))
