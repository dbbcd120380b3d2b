"""Sparse gradients: every printed line runs on ``nn.Embedding(sparse=True)`` models, with
bounded state, and never pairs SGD momentum with sparse gradient tensors (issues 12, 17).

The code is run as printed, through the harness of ``benchmarks/sparse_step_time.py``; the
state is counted, not timed, on a small table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import sparse_step_time as bench  # noqa: E402

from advisor.knowledge.optimizers import OPTIMIZERS, get_optimizer_info, list_optimizers  # noqa: E402
from advisor.knowledge.profile import Profile  # noqa: E402
from advisor.knowledge.recommender import Candidate, recommend  # noqa: E402
from advisor.knowledge.sparse import SPARSE_MODES, build_optimizers, sparse_setup  # noqa: E402

# Adagrad's sparse update builds its tensor unchecked, and torch says so
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks")

SEED = {"params": 118_282, "samples": 55_000, "convexity": "nonconvex", "budget": "10m"}
#: Sparse profiles that put different optimizers first (L-BFGS, Adam, SGD, ...).
PROFILES = {
    "unknown": Profile(sparse_gradients=True),
    "seed-mlp": Profile(**SEED, sparse_gradients=True),
    "real-text": Profile(**bench.PROFILE),
    "small-convex": Profile(params=650, samples=1797, convexity="convex", sparse_gradients=True),
    "large-batch": Profile(**SEED, batch_size=8192, gradients="exploding", sparse_gradients=True),
    "1e9-in-8GB": Profile(params="1e9", memory="8GB", sparse_gradients=True),
}
#: A small table for the state counts: 512 x 8, batches of 16 bags of 30 ids.
SMALL = {"vocabulary": 512, "dim": 8}


class EmbeddingModel(nn.Module):
    """``nn.Embedding(64, 4, sparse=True)``, mean over the sequence, ``Linear(4, 3)``."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(64, 4, sparse=True)
        self.out = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.embedding(x).mean(dim=1))


def _embedding_model() -> EmbeddingModel:
    torch.manual_seed(0)
    return EmbeddingModel()


def _small_batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return bench.batches(steps, vocabulary=SMALL["vocabulary"], batch=16, tokens=30, classes=4)


def _momentum_on_sparse_tensors(optimizers: list[torch.optim.Optimizer]) -> list[str]:
    """SGD parameter groups with momentum whose parameters hold sparse gradient tensors."""
    return [
        f"{type(o).__name__} momentum {g['momentum']} on a {tuple(p.shape)} sparse gradient"
        for o in optimizers
        if isinstance(o, torch.optim.SGD)
        for g in o.param_groups
        if g["momentum"]
        for p in g["params"]
        if p.grad is not None and p.grad.is_sparse
    ]


def _candidates() -> list[tuple[str, Candidate]]:
    """Each distinct printed code of every profile's candidates, with the profile's name."""
    seen: dict[str, tuple[str, Candidate]] = {}
    for name, p in PROFILES.items():
        for c in recommend(p).candidates:
            seen.setdefault(c.torch, (name, c))
    return list(seen.values())


# ---------------------------------------------------------------- every printed line runs


@pytest.mark.parametrize(
    ("profile", "candidate"), _candidates(), ids=lambda v: getattr(v, "optimizer", v)
)
def test_every_printed_line_takes_a_step_on_an_embedding_with_sparse_gradients(
    profile: str, candidate: Candidate
) -> None:
    """Issue 12: one step with each candidate's code, as printed, on nn.Embedding(sparse=True)."""
    model = _embedding_model()
    table = model.embedding.weight
    before = table.detach().clone()
    optimizers = bench.optimizers_from_code(candidate.torch, model)
    assert optimizers, candidate.torch
    x = torch.tensor([[1, 2, 3], [3, 4, 5]])
    loss = bench.train_step(model, optimizers, x, torch.tensor([0, 2]))
    assert torch.isfinite(torch.tensor(loss))
    assert not torch.equal(table[[1, 2, 3, 4, 5]], before[[1, 2, 3, 4, 5]]), (
        "the table did not learn"
    )
    assert candidate.sparse is not None and candidate.sparse.mode in SPARSE_MODES
    # where the code keeps the gradients sparse, the step really ran on sparse tensors
    assert table.grad is not None
    assert table.grad.is_sparse == (candidate.sparse.mode != "dense")
    assert not _momentum_on_sparse_tensors(optimizers)


def test_where_a_line_needs_dense_gradients_the_first_advice_line_says_to_make_them_dense() -> None:
    rec = recommend(PROFILES["seed-mlp"])
    text = rec.to_text().splitlines()
    dense = [c for c in rec.candidates if c.sparse is not None and c.sparse.mode == "dense"]
    assert {c.optimizer for c in dense} >= {"momentum", "nesterov", "rmsprop"}
    for c in dense:
        assert c.sparse is not None and c.sparse.advice.startswith("Make the embeddings dense")
        head = text.index(f"{c.rank}. {c.optimizer}  (score {c.score:.2f})")
        advice = text.index(f"   sparse gradients: {c.sparse.advice}", head)
        assert text[advice + 1 :][: len(c.torch.splitlines())] == [
            f"   {line}" for line in c.torch.splitlines()
        ]
        assert "m.sparse = False" in c.torch
    data = rec.to_dict()["candidates"]
    assert all(c["sparse"]["mode"] in SPARSE_MODES and c["sparse"]["advice"] for c in data)
    assert all(c["sparse"] is None for c in recommend(Profile(**SEED)).to_dict()["candidates"])


def test_the_registry_flags_decide_the_mode() -> None:
    for name, info in OPTIMIZERS.items():
        mode = sparse_setup(name).mode
        decays = bool(info.defaults.get("weight_decay")) and info.module == "torch.optim"
        assert mode == (
            "sparse"
            if info.sparse_gradients and not decays
            else "split"
            if info.sparse_adam_tables
            else "dense"
        ), name
        assert not (info.sparse_gradients and info.sparse_adam_tables), name
    assert sparse_setup("adam").mode == "split" and sparse_setup("sgd").mode == "sparse"
    assert sparse_setup("lion").mode == "sparse"  # its weight decay is applied densely
    assert sparse_setup("momentum").mode == sparse_setup("nesterov").mode == "dense"


def test_weight_decay_turns_a_sparse_line_dense_because_torch_refuses_it_on_sparse_tensors() -> (
    None
):
    setup = sparse_setup("sgd", {"lr": 0.1, "weight_decay": 1e-4})
    assert setup.mode == "dense" and "weight decay" in setup.advice
    model = _embedding_model()
    optimizers = bench.optimizers_from_code(setup.code, model)
    bench.train_step(model, optimizers, torch.tensor([[1, 2]]), torch.tensor([1]))
    # as printed for dense models, the same line raises on the sparse tensors
    model = _embedding_model()
    plain = bench.optimizers_from_code(
        "torch.optim.SGD(params, lr=0.1, weight_decay=0.0001)", model
    )
    with pytest.raises(RuntimeError):
        bench.train_step(model, plain, torch.tensor([[1, 2]]), torch.tensor([1]))


def test_the_split_code_runs_without_a_sparse_table_and_without_dense_parameters() -> None:
    code = sparse_setup("adamw").code
    dense = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 2))
    assert [type(o).__name__ for o in bench.optimizers_from_code(code, dense)] == ["AdamW"]
    tables_only = nn.Embedding(10, 4, sparse=True)  # word2vec-like: nothing dense to train
    assert [type(o).__name__ for o in bench.optimizers_from_code(code, tables_only)] == [
        "SparseAdam"
    ]


@pytest.mark.parametrize("name", list_optimizers())
def test_build_optimizers_builds_what_the_printed_code_builds(name: str) -> None:
    hp = {"lr": 0.05}
    printed, built = _embedding_model(), _embedding_model()
    a = bench.optimizers_from_code(sparse_setup(name, hp).code, printed)
    b = build_optimizers(built, name, hp)
    assert [type(o) for o in a] == [type(o) for o in b]
    x, y = torch.tensor([[1, 2, 3], [7, 8, 9]]), torch.tensor([1, 0])
    bench.train_step(printed, a, x, y)
    bench.train_step(built, b, x, y)
    for p, q in zip(printed.parameters(), built.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


# ---------------------------------------------------------------- bounded state


def _entries_after(code: str, steps: int) -> tuple[int, int]:
    """State entries after ``steps`` steps on the small table, and the model's parameters."""
    model = bench.sparse_model(**SMALL, classes=4)
    optimizers = bench.optimizers_from_code(code, model)
    for x, y in _small_batches(steps):
        bench.train_step(model, optimizers, x, y)
    return bench.state_entries(optimizers), sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list_optimizers())
def test_each_printed_optimizer_keeps_its_state_bounded_on_a_sparse_table(name: str) -> None:
    """Issue 17's benchmark, counted instead of timed: the state never outgrows the
    registry's ``state_tensors`` per parameter (no uncoalesced growth)."""
    code = next(c.torch for c in recommend(PROFILES["real-text"]).candidates if c.optimizer == name)
    # L-BFGS: up to 20 inner steps each, its 100 history pairs are full after 5 steps
    info = get_optimizer_info(name)
    entries, params = _entries_after(code, 5 if info.full_batch else 30)
    # Muon's code gives the parameters it does not take to its aux optimizer (AdamW)
    per_param = max(
        info.state_tensors, get_optimizer_info(info.aux).state_tensors if info.aux else 0
    )
    assert entries <= per_param * params, (entries, params)


def test_the_state_count_catches_momentum_on_sparse_tensors() -> None:
    entries, params = _entries_after(bench.TRAP, 30)
    assert entries > 10 * params  # 30 steps x 480 ids x 8 values, uncoalesced
    model = bench.sparse_model(**SMALL, classes=4)
    optimizers = bench.optimizers_from_code(bench.TRAP, model)
    x, y = _small_batches(1)[0]
    bench.train_step(model, optimizers, x, y)
    assert _momentum_on_sparse_tensors(optimizers)


# ---------------------------------------------------------------- momentum first


def test_a_sparse_profile_never_ranks_momentum_or_nesterov_first_with_a_sparse_tensor_line(
    tmp_path: Path,
) -> None:
    """Even when a team's rule puts them first, their code makes the embeddings dense."""
    (tmp_path / "team.toml").write_text(
        '[[rule]]\nid = "team-prior-sgd"\nscores = { nesterov = 9.0, momentum = 8.0 }\n'
        'reason = "Our pipeline is tuned for SGD with momentum."\nsource = "test"\n'
        "examples.match = [{}]\n"
    )
    firsts = set()
    for rules in ((), (tmp_path,)):
        for profile in PROFILES.values():
            rec = recommend(profile, rules_dirs=rules)
            first = rec.candidates[0]
            firsts.add(first.optimizer)
            for c in rec.candidates:
                model = _embedding_model()
                optimizers = bench.optimizers_from_code(c.torch, model)
                bench.train_step(model, optimizers, torch.tensor([[1, 2]]), torch.tensor([0]))
                assert not _momentum_on_sparse_tensors(optimizers), (c.optimizer, c.torch)
                if c.optimizer in ("momentum", "nesterov"):
                    assert model.embedding.weight.grad is not None
                    assert not model.embedding.weight.grad.is_sparse
    assert "nesterov" in firsts  # the case the test is about did occur


def test_sparse_gradients_give_no_score_to_momentum_or_nesterov() -> None:
    for profile in PROFILES.values():
        for c in recommend(profile).candidates:
            if c.optimizer in ("momentum", "nesterov"):
                assert all(r.rule != "sparse-adagrad" for r in c.reasons), c.optimizer


def test_the_split_code_trains() -> None:
    """The split code trains: SparseAdam + Adam lower the loss on a fixed batch."""
    model = bench.sparse_model(**SMALL, classes=4)
    optimizers = bench.optimizers_from_code(sparse_setup("adam", {"lr": 0.05}).code, model)
    x, y = _small_batches(1)[0]
    first = F.cross_entropy(model(x), y).item()
    for _ in range(20):
        bench.train_step(model, optimizers, x, y)
    assert F.cross_entropy(model(x), y).item() < first
