"""Is the training loss convex in the weights? A verdict from the model's graph (``torch.fx``).

``convex`` when the outputs are affine in the weights (one layer of ``Linear``/``Conv``, with
only ``Flatten``, ``Identity``, ``Dropout``, reshapes and sums around it, possibly a final
softmax or log-softmax): cross-entropy and the squared error are convex in the outputs.
``nonconvex`` when a non-linearity (ReLU, Tanh, a normalization, max-pooling, ...) sits
between parametrized layers, parametrized layers are stacked (products of weight matrices
are not convex, even without a non-linearity), or a recurrent or attention module
(``LSTM``, ``GRU``, ``MultiheadAttention``, ``TransformerEncoder``, ...) has trainable
weights. ``unknown`` when an operation it does not recognise touches the weights' path
(or has trainable weights of its own), or the forward pass cannot be traced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


# Operations by name (torch.nn class names; function and method names). Anything else on
# the weights' path makes the verdict "unknown".
_LAYERS = {
    "Linear",
    "Bilinear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Embedding",
    "EmbeddingBag",
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "embedding",
}
_PASS = {
    "Flatten",
    "Unflatten",
    "Identity",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "AlphaDropout",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
    "flatten",
    "reshape",
    "view",
    "squeeze",
    "unsqueeze",
    "permute",
    "transpose",
    "contiguous",
    "t",
    "dropout",
    "dropout1d",
    "dropout2d",
    "getitem",
    "float",
    "to",
    "expand",
    "expand_as",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "pad",
    "sum",
    "mean",
    "narrow",
    "select",
    "clone",
}
_CONST = {"getattr", "size", "dim", "numel"}
_SUM = {"add", "sub", "neg", "pos", "cat", "stack", "iadd", "isub"}
_PRODUCT = {"mul", "imul", "matmul", "mm", "bmm"}
_DIV = {"truediv", "div", "itruediv"}
_NONLINEAR = {
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "PReLU",
    "RReLU",
    "ELU",
    "SELU",
    "CELU",
    "GELU",
    "SiLU",
    "Mish",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Softsign",
    "Hardtanh",
    "Hardsigmoid",
    "Hardswish",
    "LogSigmoid",
    "Tanhshrink",
    "Softshrink",
    "Hardshrink",
    "Threshold",
    "GLU",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "LPPool1d",
    "LPPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LocalResponseNorm",
    "RMSNorm",
    "relu",
    "relu_",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "hardtanh",
    "hardsigmoid",
    "hardswish",
    "logsigmoid",
    "exp",
    "log",
    "abs",
    "sqrt",
    "rsqrt",
    "pow",
    "clamp",
    "clip",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "normalize",
    "max",
    "min",
    "maximum",
    "minimum",
    "sin",
    "cos",
}
_OUTPUT = {"LogSoftmax", "log_softmax", "Softmax", "softmax"}
#: Modules whose own weights enter non-linearly: a recurrent cell applies its non-linearity
#: to products of its weights with a state that itself depends on them; attention multiplies
#: queries by keys, both functions of the weights.
_NONCONVEX_MODULES = {
    "RNN",
    "LSTM",
    "GRU",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "MultiheadAttention",
    "Transformer",
    "TransformerEncoder",
    "TransformerDecoder",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
}


@dataclass(frozen=True)
class _Term:
    """How a value of the forward graph depends on the weights.

    ``degree``: 0 not at all, 1 affinely, 2 otherwise; ``None``: cannot tell. ``hidden``
    (degree 2): weights enter through a product or a non-linearity *followed by* weights,
    which makes the loss non-convex in them. ``final``: passed through an output
    (log-)softmax. ``layer``: the last parametrized layer on the path.
    """

    degree: int | None
    hidden: bool = False
    final: str = ""
    layer: str = ""
    cause: str = ""


def _op_name(node: Any, modules: Mapping[str, nn.Module]) -> tuple[str, str, bool]:
    """``(kind, label, own_weights)`` of an fx node; ``own_weights``: a module with trainable
    parameters (functions get their weights as inputs)."""
    if node.op == "call_module":
        module = modules[node.target]
        builtin = type(module).__module__.startswith("torch.nn")
        kind = type(module).__name__ if builtin else f"custom {type(module).__name__}"
        trainable = any(p.requires_grad for p in module.parameters())
        return kind, f"{kind} '{node.target}'", trainable
    name = getattr(node.target, "__name__", str(node.target)).strip("_")
    return name, f"{name} ('{node.name}')", False


def _inputs(args: Any, terms: Mapping[Any, _Term]) -> list[_Term]:
    out: list[_Term] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out += _inputs(a, terms)
        elif isinstance(a, slice):  # x[:, -1]: a slice is unhashable, its bounds may be nodes
            out += _inputs((a.start, a.stop, a.step), terms)
        elif a in terms:
            out.append(terms[a])
    return out


def _unfinal(t: _Term) -> _Term:
    """A term used by anything but a reshape after the output softmax: the softmax counts
    as a non-linearity."""
    if not t.final or t.degree is None:
        return t
    return _Term(2, False, "", t.layer, t.final)


def _through(x: _Term, layer: str) -> _Term:
    """``x`` multiplied by the weights of ``layer``."""
    if x.degree == 0:
        return _Term(1, layer=layer)
    if x.degree == 2 and x.hidden:
        return x
    if x.degree == 2:
        cause = f"{x.cause} sits between the parametrized layers {x.layer} and {layer} (a hidden non-linearity)"
    else:
        cause = (
            f"the parametrized layers {x.layer} and {layer} are stacked, so their weights multiply"
        )
    return _Term(2, True, "", layer, cause)


def _combine(kind: str, label: str, own: bool, ins: list[_Term]) -> _Term:
    """The term of one operation from the terms of its inputs (see :class:`_Term`)."""
    if kind in _CONST or not ins:
        return _Term(0)
    if kind in _PASS:
        return ins[0]
    ins = [_unfinal(t) for t in ins]
    unknown = next((t for t in ins if t.degree is None), None)
    if unknown is not None:
        return unknown
    top = max(ins, key=lambda t: (t.degree or 0, t.hidden))
    d = top.degree or 0
    if kind in _NONCONVEX_MODULES and own:
        return _Term(
            2,
            True,
            "",
            label,
            f"{label} applies non-linearities between its own weights (recurrent or attention)",
        )
    if kind in _LAYERS and kind[:1].isupper():  # a module: its own weights times the input
        return _through(ins[0], label) if own else ins[0]
    if kind in _LAYERS:  # F.linear(x, w, b): x times w, plus b
        x, w = ins[0], ins[1] if len(ins) > 1 else _Term(0)
        out = x if not w.degree else _through(x, w.layer)
        return max([out, *ins[2:]], key=lambda t: (t.degree or 0, t.hidden))
    if kind in _OUTPUT:
        return _Term(1, False, label, top.layer) if d == 1 else top
    if kind in _SUM:
        return top
    if kind in _PRODUCT or kind in _DIV:
        weighted = [t for t in ins if t.degree]
        if len(weighted) <= 1 and (kind in _PRODUCT or not ins[-1].degree):
            return top
        return _Term(
            2, True, "", top.layer, f"{label} multiplies or divides weight-dependent values"
        )
    if kind in _NONLINEAR:
        if d == 0:
            return _Term(1, layer=label) if own else _Term(0)
        if not own:
            return top if d == 2 else _Term(2, False, "", top.layer, label)
        if d == 2:
            return _through(top, label)
        return _Term(
            2,
            True,
            "",
            label,
            f"{label} acts non-linearly on the output of {top.layer} and has weights of its own",
        )
    if d == 0 and not own:
        return _Term(0)  # any function of the input alone: a fixed feature map
    if d == 0:  # a module it does not know, with trainable weights of its own
        return _Term(None, cause=f"it does not recognise {label}, which has trainable weights")
    return _Term(None, cause=f"it does not recognise {label} on the weights' path")


def convexity_of(model: nn.Module) -> tuple[str, str]:
    """``(verdict, reason)``: is the cross-entropy loss of ``model``'s logits convex in its
    weights? ``convex``, ``nonconvex`` or ``unknown`` (see the module docstring).

    >>> from torch import nn
    >>> convexity_of(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))[0]
    'convex'
    >>> convexity_of(nn.Sequential(nn.Linear(784, 64), nn.Tanh(), nn.Linear(64, 10)))[0]
    'nonconvex'
    """
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many kinds (TraceError, TypeError, NotImplementedError)
        return "unknown", f"torch.fx cannot trace the forward pass ({type(exc).__name__}: {exc})."
    modules = dict(graph.named_modules())
    terms: dict[Any, _Term] = {}
    result = _Term(None, cause="the forward pass returns no tensor")
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            terms[node] = _Term(0)
        elif node.op == "get_attr":
            value = graph
            for part in str(node.target).split("."):
                value = getattr(value, part)
            trainable = bool(getattr(value, "requires_grad", False))
            terms[node] = _Term(1, layer=f"parameter '{node.target}'") if trainable else _Term(0)
        elif node.op == "output":
            out = node.args[0]
            if out in terms:
                result = terms[out]
            else:
                result = _Term(None, cause="the forward pass returns several values")
        else:
            kind, label, own = _op_name(node, modules)
            terms[node] = _combine(
                kind, label, own, _inputs((*node.args, *node.kwargs.values()), terms)
            )
    return _verdict(result)


def _verdict(t: _Term) -> tuple[str, str]:
    loss = "cross-entropy and the squared error, advisor's losses, are convex in the outputs"
    if t.degree is None:
        return "unknown", f"{t.cause}."
    if t.degree == 0:
        return "unknown", "the output does not depend on any trainable parameter."
    if t.degree == 1 and t.final.lower().startswith("softmax"):
        return "unknown", (
            f"{t.final} ends the model, and cross-entropy applies its own log-softmax: the loss "
            "of probabilities is not convex in general. Return logits (or log-probabilities)."
        )
    if t.degree == 1:
        after = f" (then {t.final})" if t.final else ""
        return "convex", f"the outputs are affine in the weights of {t.layer}{after}; {loss}."
    if t.hidden:
        return "nonconvex", f"{t.cause}: the loss is not convex in the weights."
    return "unknown", (
        f"{t.cause} follows the last parametrized layer {t.layer}: whether the loss is convex "
        "in the weights cannot be told."
    )
