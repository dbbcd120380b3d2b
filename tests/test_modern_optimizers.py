"""Muon, Adafactor, Lion, Schedule-Free AdamW and Prodigy: registry facts, memory, code that runs.

Every "fact" the registry states about them is checked here against the installed torch
and packages (defaults, accepted shapes, sparse gradients), and every printed snippet is
executed as printed.
"""

from __future__ import annotations

import inspect
import math

import lion_pytorch
import prodigyopt
import pytest
import schedulefree
import torch
from torch import nn

from advisor.core.errors import InvalidValueError, TrainingError
from advisor.knowledge.layout import ParamInfo, ParamLayout
from advisor.knowledge.optimizers import (
    create_optimizer,
    create_optimizers,
    get_optimizer_info,
    list_optimizers,
    torch_line,
)
from advisor.train.layout import model_kind, model_layout

NEW = ("muon", "adafactor", "lion", "schedulefree", "prodigy")


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 3)
    )


def _defaults(cls: type) -> dict[str, object]:
    return {
        k: v.default
        for k, v in inspect.signature(cls.__init__).parameters.items()
        if v.default is not inspect.Parameter.empty
    }


def test_the_facts_of_the_issue_hold_for_the_installed_versions() -> None:
    muon = _defaults(torch.optim.Muon)
    assert (muon["lr"], muon["weight_decay"], muon["momentum"]) == (1e-3, 0.1, 0.95)
    assert muon["nesterov"] is True and muon["ns_steps"] == 5
    with pytest.raises(ValueError, match="2D"):  # conv weights included
        torch.optim.Muon(nn.Conv2d(3, 4, 3).parameters())
    ada = _defaults(torch.optim.Adafactor)
    assert (ada["lr"], ada["beta2_decay"], ada["eps"], ada["d"], ada["weight_decay"]) == (
        1e-2,
        -0.8,
        (None, 1e-3),
        1.0,
        0.0,
    )
    assert _defaults(prodigyopt.Prodigy)["lr"] == 1.0
    assert _defaults(prodigyopt.Prodigy)["d_coef"] == 1.0
    assert _defaults(schedulefree.AdamWScheduleFree)["lr"] == 0.0025
    assert _defaults(lion_pytorch.Lion)["lr"] == 1e-4


def test_registry_entries_carry_flags_defaults_and_spaces() -> None:
    for name in NEW:
        info = get_optimizer_info(name)
        assert info.search_space[info.knob].low < info.search_space[info.knob].high
        for key, rng in info.search_space.items():
            assert rng.contains(info.resolve({})[key]), (name, key)
    assert get_optimizer_info("muon").param_shapes == "2d"
    assert get_optimizer_info("schedulefree").train_eval
    assert get_optimizer_info("prodigy").lr_free and get_optimizer_info("prodigy").knob == "d_coef"
    lion, adamw = get_optimizer_info("lion"), get_optimizer_info("adamw")
    # Lion: lr 3-10x smaller, weight decay 3-10x larger than AdamW's (Chen et al. 2023)
    assert 3 <= adamw.defaults["lr"] / lion.defaults["lr"] <= 10
    assert 3 <= lion.defaults["weight_decay"] / adamw.defaults["weight_decay"] <= 10


@pytest.mark.parametrize("name", NEW)
def test_sparse_gradient_flag_matches_what_the_class_does(name: str) -> None:
    emb = nn.Embedding(10, 4, sparse=True)
    info = get_optimizer_info(name)
    kwargs = info.torch_kwargs({})
    cls = torch.optim.Muon if name == "muon" else None
    optimizer = (cls or _class(name))(emb.parameters(), **kwargs)
    if info.train_eval:
        optimizer.train()
    emb(torch.tensor([1, 2])).sum().backward()
    if info.sparse_gradients:
        optimizer.step()
    else:
        with pytest.raises((RuntimeError, NotImplementedError)):
            optimizer.step()


def _class(name: str) -> type:
    info = get_optimizer_info(name)
    module = {"torch.optim": torch.optim, "lion_pytorch": lion_pytorch}.get(info.module)
    module = module or {"schedulefree": schedulefree, "prodigyopt": prodigyopt}[info.module]
    return getattr(module, info.torch_class)  # type: ignore[no-any-return]


def test_lion_on_sparse_gradients_equals_lion_on_dense_ones() -> None:
    def run(sparse: bool) -> torch.Tensor:
        torch.manual_seed(0)
        emb = nn.Embedding(50, 8, sparse=sparse)
        opt = lion_pytorch.Lion(emb.parameters(), lr=1e-2, weight_decay=0.1)
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            opt.zero_grad()
            (emb(torch.randint(0, 50, (7,), generator=g)) ** 2).sum().backward()
            opt.step()
        return emb.weight.detach()

    assert torch.equal(run(True), run(False))


def _run_snippet(code: str, model: nn.Module) -> list[torch.optim.Optimizer]:
    """Execute ``code`` as printed; return every optimizer it built."""
    namespace: dict[str, object] = {"torch": torch, "model": model, "params": model.parameters()}
    if "\n" not in code and not code.startswith("#"):
        namespace["optimizer"] = eval(code, namespace)
    else:
        exec(code, namespace)
    values = [w for v in namespace.values() for w in (v if isinstance(v, list) else [v])]
    return [v for v in values if isinstance(v, torch.optim.Optimizer)]


@pytest.mark.parametrize("name", list_optimizers())
def test_every_printed_line_runs_as_printed_and_steps(name: str) -> None:
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    optimizers = _run_snippet(torch_line(name), model)
    assert optimizers
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))

    def closure() -> torch.Tensor:
        for o in optimizers:
            o.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    closure()
    for o in optimizers:
        o.step(closure)
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert all(changed), name  # every parameter is trained by one of the optimizers


def test_the_muon_snippet_splits_the_measured_model() -> None:
    model = mlp()
    layout = model_layout(model, torch.zeros(2, 6))
    assert layout.names("hidden") == ("2.weight", "4.weight")
    assert layout.names("input", "head") == ("0.weight", "5.weight")
    code = torch_line("muon", layout=layout)
    assert "hidden = {'2.weight', '4.weight'}" in code
    assert "Muon for 2 hidden 2-D weight(s) (128 parameters)" in code
    muon, adamw = _run_snippet(code, model)
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    assert [p.shape for p in muon.param_groups[0]["params"]] == [(8, 8), (8, 8)]
    assert muon.defaults["adjust_lr_fn"] == "match_rms_adamw"
    built = create_optimizers("muon", model, layout=layout)
    assert [type(o).__name__ for o in built] == ["Muon", "AdamW"]


def test_muon_needs_hidden_weights_and_a_layout() -> None:
    with pytest.raises(InvalidValueError, match="create_optimizers"):
        create_optimizer("muon", mlp().parameters())
    # without a layout, the split the printed code makes: Linear layers 2..n-1 are hidden
    generic = create_optimizers("muon", mlp())
    assert [type(o).__name__ for o in generic] == ["Muon", "AdamW"]
    assert [p.shape for p in generic[0].param_groups[0]["params"]] == [(8, 8), (8, 8)]
    linear = nn.Linear(4, 2)
    layout = model_layout(linear, torch.zeros(1, 4))
    with pytest.raises(TrainingError, match="no hidden 2-D weight"):
        create_optimizers("muon", linear, layout=layout)
    code = torch_line("muon", layout=layout)
    assert code.startswith("# Muon does not apply")
    assert len(_run_snippet(code, linear)) == 1
    # without a layout, one Linear layer: AdamW alone, in code and in create_optimizers
    generic = [type(o).__name__ for o in _run_snippet(torch_line("muon"), linear)]
    assert generic == [type(o).__name__ for o in create_optimizers("muon", linear)] == ["AdamW"]


def test_layout_roles_and_model_kinds() -> None:
    class Text(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(1000, 16)
            self.hidden = nn.Linear(16, 16)
            self.out = nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.hidden(self.emb(x).mean(1))))

    text = Text()
    layout = model_layout(text, torch.zeros(2, 3, dtype=torch.long))
    roles = {p.name: p.role for p in layout.params}
    # the first linear layer reads embeddings, not the input: it is hidden
    assert roles["emb.weight"] == "embedding" and roles["hidden.weight"] == "hidden"
    assert roles["out.weight"] == "head"
    assert model_kind(text, layout) == "embedding-heavy"
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    cnn_layout = model_layout(cnn, torch.zeros(1, 1, 28, 28))
    assert model_kind(cnn, cnn_layout) == "cnn" and cnn_layout.hidden_share == 0
    block = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    assert model_kind(block, model_layout(block, torch.zeros(1, 3, 16))) == "transformer"
    assert model_kind(nn.LSTM(4, 4), model_layout(nn.LSTM(4, 4))) == "rnn"


def test_state_memory_per_shape() -> None:
    ada = get_optimizer_info("adafactor")
    assert ada.state_numbers((1024, 1024)) / 1024**2 == pytest.approx(0.002, abs=5e-5)
    assert ada.state_numbers((64, 64, 3, 3)) / (64 * 64 * 9) == pytest.approx(2 / 3)
    assert ada.state_numbers((100,)) == 100  # a vector keeps a full second moment
    muon = get_optimizer_info("muon")
    assert muon.state_numbers((8, 8), hidden=True) == 64  # momentum only
    assert muon.state_numbers((8, 8)) == 128  # not hidden: AdamW's two moments
    assert get_optimizer_info("lion").state_numbers((8, 8)) == 64
    assert get_optimizer_info("prodigy").state_numbers((8, 8)) == 4 * 64
    layout = ParamLayout(
        (
            ParamInfo("w", (8, 8), "hidden"),
            ParamInfo("b", (8,), "vector"),
            ParamInfo("h", (2, 8), "head"),
        )
    )
    assert muon.state_bytes(layout) == 4 * (64 + 2 * 8 + 2 * 16)
    assert muon.memory_bytes(layout.total, layout, 2) == 2 * (2 * 88 + 64 + 16 + 32)


def test_the_measured_memory_matches_torchs_own_state() -> None:
    """The memory model counts what the optimizers really allocate, tensor by tensor."""
    model = mlp()
    layout = model_layout(model, torch.zeros(2, 6))
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    for name in NEW:
        optimizers = _run_snippet(torch_line(name, layout=layout), model)
        for o in optimizers:
            if hasattr(o, "train"):
                o.train()
        nn.functional.cross_entropy(model(x), y).backward()
        for o in optimizers:
            o.step()
        numbers = sum(
            t.numel()
            for o in optimizers
            for state in o.state.values()
            for key, t in state.items()
            if torch.is_tensor(t) and t.dim() > 0 and key != "step"
        )
        assert numbers == get_optimizer_info(name).state_bytes(layout) // 4, name


def test_assumed_layout_without_a_model() -> None:
    layout = ParamLayout.assumed(7 * 10**9)
    assert layout.total == 7 * 10**9 and layout.hidden_share == 0
    ada = get_optimizer_info("adafactor").state_bytes(layout)
    assert ada / (4 * 7e9) == pytest.approx(2 / 1024, rel=0.1)  # plus one remainder vector
    assert math.isclose(ParamLayout.assumed(10**9, 0.9).hidden_share or 0, 0.9, abs_tol=0.01)
