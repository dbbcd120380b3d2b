"""A model's parameter layout and kind, measured: which tensors are hidden 2-D weights.

:func:`model_layout` gives every trainable tensor a role
(:data:`advisor.knowledge.layout.ROLES`). The 2-D weights of ``nn.Linear`` layers are
``hidden`` except the *input layer* (the first parametrized module the forward pass runs,
when it is a linear layer: it reads the raw input) and the *output head* (the last linear
layer the forward pass runs). With an example input the order is the forward pass's (hooks
record it); without one it is the order of registration. Embedding tables are
``embedding``, tensors of fewer than two dimensions ``vector``, everything else (convolution
kernels, custom matrices) ``other``: Muon takes only the hidden weights.

:func:`model_kind` names the kind of model from its modules and layout.

>>> import torch
>>> from advisor.train.models import mnist_mlp
>>> layout = model_layout(mnist_mlp(), torch.zeros(2, 784))
>>> [(p.name, p.role) for p in layout.params if p.role != "vector"]
[('0.weight', 'input'), ('2.weight', 'hidden'), ('4.weight', 'head')]
>>> model_kind(mnist_mlp(), layout)
'mlp'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from advisor.knowledge.layout import ParamInfo, ParamLayout

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_RNNS = (nn.RNNBase, nn.RNNCellBase)
_CONVS = (nn.modules.conv._ConvNd,)
_ATTENTION = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
#: An embedding share from which a model counts as embedding-heavy.
EMBEDDING_HEAVY = 0.5


@contextlib.contextmanager
def no_transformer_fastpath() -> Iterator[None]:
    """``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention`` without their fast path
    (restored after): in eval mode without gradients it runs a layer as one fused kernel,
    which skips the layer's submodules (and their hooks), which vmap cannot batch and which
    a FLOP counter does not see."""
    mha = torch.backends.mha
    fast = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(fast)


@contextlib.contextmanager
def probing(model: nn.Module) -> Iterator[None]:
    """For a forward pass that only looks: it leaves ``model`` as it was.

    No gradients, a forked CPU RNG, and every module in eval mode (no BatchNorm statistics
    move; dropout draws nothing), each module's own mode restored after. The Transformer
    fast path stays off, as in training (:func:`no_transformer_fastpath`).
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]), no_transformer_fastpath():
            yield
    finally:
        for m, training in modes:
            m.training = training


def _parametrized(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in model.named_modules()
        if any(p.requires_grad for p in m.parameters(recurse=False))
    ]


def _forward_order(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the parametrized modules in the order the forward pass first runs them."""
    order: list[str] = []
    hooks = [
        m.register_forward_pre_hook(lambda *_, n=n: order.append(n))
        for n, m in _parametrized(model)
    ]
    try:
        with probing(model):
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def model_layout(model: nn.Module, example: torch.Tensor | None = None) -> ParamLayout:
    """Every trainable tensor of ``model`` with its role (see the module docstring)."""
    modules = dict(_parametrized(model))
    order = _forward_order(model, example) if example is not None else list(modules)
    order += [n for n in modules if n not in order]  # modules the forward pass skipped
    ran = [n for n in order if isinstance(modules[n], nn.Linear)]
    first = order[0] if order and isinstance(modules[order[0]], nn.Linear) else None
    head = ran[-1] if ran else None
    owner = {}
    for name, module in modules.items():
        for pname, p in module.named_parameters(recurse=False):
            owner[id(p)] = (name, module, pname)
    params = []
    for full, p in model.named_parameters():
        if not p.requires_grad:
            continue
        name, module, pname = owner[id(p)]
        if isinstance(module, _EMBEDDINGS):
            role = "embedding"
        elif p.ndim < 2:
            role = "vector"
        elif isinstance(module, nn.Linear) and pname == "weight":
            role = "head" if name == head else "input" if name == first else "hidden"
        elif isinstance(module, nn.MultiheadAttention):  # in_proj_weight: q, k, v stacked
            role = "hidden"
        else:
            role = "other"
        params.append(ParamInfo(full, tuple(p.shape), role))
    return ParamLayout(tuple(params))


def model_kind(model: nn.Module, layout: ParamLayout) -> str:
    """``embedding-heavy``, ``transformer``, ``rnn``, ``cnn`` or ``mlp`` (else ``unknown``).

    Embedding-heavy when embeddings hold at least :data:`EMBEDDING_HEAVY` of the
    parameters; then the first module type found decides: attention → transformer,
    recurrent → rnn, convolution → cnn, only linear layers (and parameter-free or vector
    modules) → mlp.
    """
    if (layout.embedding_share or 0.0) >= EMBEDDING_HEAVY:
        return "embedding-heavy"
    modules = list(model.modules())
    names = " ".join(type(m).__name__.lower() for m in modules)
    if any(isinstance(m, _ATTENTION) for m in modules) or "attention" in names:
        return "transformer"
    if any(isinstance(m, _RNNS) for m in modules):
        return "rnn"
    if any(isinstance(m, _CONVS) for m in modules):
        return "cnn"
    if any(isinstance(m, nn.Linear) for m in modules) and not layout.count("other"):
        return "mlp"
    return "unknown"
