"""Code that runs on models whose embeddings have sparse gradients (``nn.Embedding(sparse=True)``).

Few torch optimizers take sparse gradient tensors, and of those SGD with momentum keeps an
uncoalesced momentum buffer that grows every step. What a candidate's printed code does
about it is decided by two registry flags, so that a new entry only sets them:

- ``sparse_gradients``: its torch line runs on sparse gradient tensors with bounded state
  (plain SGD, Adagrad). Mode ``sparse``: the line as printed for dense models. Torch
  refuses weight decay on sparse gradients, so a non-zero one falls to ``dense``.
- ``sparse_adam_tables``: its update is Adam's. Mode ``split``: the sparse tables take
  ``torch.optim.SparseAdam`` (Adam's update on the rows each batch touches) with the
  candidate's ``lr``, ``betas`` and ``eps``; the other parameters take the candidate.
- neither: mode ``dense``. The code first switches the embeddings to dense gradients
  (``m.sparse = False``: the same values, stored densely), then the candidate's own line.

The code expects the user's ``model`` (and ``params``, its parameters, in the ``sparse`` and
``dense`` modes, like every torch line advisor prints). :func:`build_optimizers` builds what
the code builds, for the probes that train a sparse model themselves.

>>> sparse_setup("adagrad", {"lr": 0.1}).code
'torch.optim.Adagrad(params, lr=0.1)'
>>> print(sparse_setup("nesterov", {"lr": 0.1}).code)
for m in model.modules():  # dense gradients: the same values, stored densely
    if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
        m.sparse = False
torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advisor.knowledge.layout import ParamLayout
from advisor.knowledge.optimizers import (
    create_optimizer,
    create_optimizers,
    get_optimizer_info,
    torch_line,
)
from advisor.knowledge.snippets import call_text

if TYPE_CHECKING:
    import torch
    from torch import nn

#: How a candidate meets sparse gradient tensors (see the module docstring).
SPARSE_MODES = ("sparse", "split", "dense")
#: The keyword arguments of ``torch.optim.SparseAdam`` a candidate passes on to it.
SPARSE_ADAM_ARGS = ("lr", "betas", "eps")
_EMBEDDINGS = "(torch.nn.Embedding, torch.nn.EmbeddingBag)"


@dataclass(frozen=True)
class SparseSetup:
    """What one candidate's code does with sparse gradient tensors.

    ``mode`` is one of :data:`SPARSE_MODES`; ``advice`` is the line shown above ``code``
    (in the ``dense`` mode it says to make the embeddings dense); ``code`` is paste-ready.
    """

    optimizer: str
    mode: str
    advice: str
    code: str

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "advice": self.advice}


def _refuses_decay(name: str) -> bool:
    """torch.optim refuses weight decay on sparse gradient tensors; Lion (lion-pytorch)
    applies it to the dense weights, whatever the gradient's layout."""
    return get_optimizer_info(name).module == "torch.optim"


def _mode(name: str, hp: Mapping[str, float]) -> str:
    info = get_optimizer_info(name)
    if info.sparse_gradients and not (_refuses_decay(name) and hp.get("weight_decay")):
        return "sparse"
    return "split" if info.sparse_adam_tables else "dense"


def sparse_setup(name: str, hyperparameters: Mapping[str, float] | None = None) -> SparseSetup:
    """The code for optimizer ``name`` (canonical ``hyperparameters``) on sparse embeddings."""
    info = get_optimizer_info(name)
    hp = info.resolve(hyperparameters or {})
    line = torch_line(name, hp)
    cls = f"torch.optim.{info.torch_class}"
    mode = _mode(name, hp)
    if mode == "sparse":
        decay = (
            "; keep its weight decay at 0 (torch refuses weight decay on sparse gradients)"
            if _refuses_decay(name)
            else ""
        )
        advice = (
            f"{name} ({cls}) runs on sparse gradient tensors as printed, with bounded state{decay}."
        )
        return SparseSetup(name, mode, advice, line)
    if mode == "split":
        kwargs = {k: v for k, v in info.torch_kwargs(hp).items() if k in SPARSE_ADAM_ARGS}
        decay = " (no weight decay on them: it takes none)" if hp.get("weight_decay") else ""
        advice = (
            "sparse=True embeddings -> torch.optim.SparseAdam, Adam's update on the rows each "
            f"batch touches{decay}; the other parameters -> {name} ({cls}). "
            "Call zero_grad() and step() on each optimizer."
        )
        code = [
            "sparse = {id(m.weight) for m in model.modules()"
            f" if isinstance(m, {_EMBEDDINGS}) and m.sparse}}",
            "tables = [p for p in model.parameters() if id(p) in sparse]",
            "params = [p for p in model.parameters() if id(p) not in sparse]",
            "optimizers = []  # zero_grad() and step() each one",
            "if tables:",
            f"    optimizers.append({call_text('torch.optim.SparseAdam', kwargs, params='tables')})",
            "if params:",
            f"    optimizers.append({line})",
        ]
        return SparseSetup(name, mode, advice, "\n".join(code))
    why = (
        f"{cls} refuses weight decay on sparse gradient tensors, and this line has some"
        if info.sparse_gradients
        else f"the line for {name} ({cls}) is for dense gradients only"
    )
    advice = (
        f"Make the embeddings dense (sparse=False; the code below does it): {why}. "
        "To keep them sparse, give the tables their own optimizer "
        "(torch.optim.SparseAdam or Adagrad)."
    )
    code = [
        "for m in model.modules():  # dense gradients: the same values, stored densely",
        f"    if isinstance(m, {_EMBEDDINGS}):",
        "        m.sparse = False",
        line,
    ]
    return SparseSetup(name, mode, advice, "\n".join(code))


def sparse_embeddings(model: nn.Module) -> list[nn.Embedding | nn.EmbeddingBag]:
    """The model's ``nn.Embedding`` / ``nn.EmbeddingBag`` modules with ``sparse=True``."""
    from torch import nn

    return [
        m for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse
    ]


def build_optimizers(
    model: nn.Module,
    name: str,
    hyperparameters: Mapping[str, float] | None = None,
    *,
    layout: ParamLayout | None = None,
) -> list[torch.optim.Optimizer]:
    """The optimizers :func:`sparse_setup`'s code builds for ``model`` (as many as
    :func:`~advisor.knowledge.optimizers.create_optimizers` builds when the model has no
    sparse embeddings), in train mode. The ``dense`` mode switches the embeddings to dense
    gradients, in ``model`` itself, as the printed code does."""
    import torch

    info = get_optimizer_info(name)
    hp = info.resolve(hyperparameters or {})
    embeddings = sparse_embeddings(model)
    mode = _mode(name, hp)
    if embeddings and mode == "dense":
        for m in embeddings:
            m.sparse = False
    if not embeddings or mode != "split":
        built = create_optimizers(name, model, hp, layout=layout)
        if info.train_eval:  # the printed code calls optimizer.train() too
            for o in built:
                o.train()  # type: ignore[attr-defined]
        return built
    sparse = {id(m.weight) for m in embeddings}
    tables = [p for p in model.parameters() if id(p) in sparse]
    params = [p for p in model.parameters() if id(p) not in sparse]
    kwargs = {k: v for k, v in info.torch_kwargs(hp).items() if k in SPARSE_ADAM_ARGS}
    optimizers: list[torch.optim.Optimizer] = [torch.optim.SparseAdam(tables, **kwargs)]
    if params:
        optimizers.append(create_optimizer(name, params, hp))
    return optimizers
