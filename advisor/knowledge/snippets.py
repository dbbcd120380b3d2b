"""Paste-ready code for an optimizer: one ``torch.optim`` call, or a few lines when needed.

A ``torch.optim`` class is one expression, ``torch.optim.Adam(params, lr=0.001, ...)``.
A class from another package is two lines (its ``import`` and the call). Schedule-free
AdamW adds the ``optimizer.train()`` call it needs before training steps (and says when
``eval()`` goes). Muon is two optimizers: Muon on the hidden 2-D weights, AdamW on the
rest; with a measured layout the split names the model's own tensors, without one it is
computed by a generic rule written out in the code. Every snippet runs as printed with
``params`` (the model's parameters) and, for Muon, ``model`` defined (a test executes them).

>>> call_text("torch.optim.SGD", {"lr": 0.05})
'torch.optim.SGD(params, lr=0.05)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from advisor.knowledge.layout import ParamLayout

_STEP = (
    "# every step: loss.backward(); muon.step(); adamw.step(); muon.zero_grad(); adamw.zero_grad()"
)


def fmt(value: Any) -> str:
    """A value as it reads in code: 4 significant digits for floats, tuples in parentheses."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    return repr(value)


def call_text(call: str, kwargs: Mapping[str, Any], params: str = "params") -> str:
    """``call(params, k=v, ...)``."""
    args = ", ".join([params, *(f"{k}={fmt(v)}" for k, v in kwargs.items())])
    return f"{call}({args})"


def package_snippet(module: str, cls: str, kwargs: Mapping[str, Any], train_eval: bool) -> str:
    """The import and the call of a class outside ``torch.optim`` (and train/eval calls)."""
    lines = [f"import {module}", f"optimizer = {call_text(f'{module}.{cls}', kwargs)}"]
    if train_eval:
        lines.append(
            "optimizer.train()  # with model.train() before training steps; optimizer.eval() "
            "with model.eval() before evaluating or saving (then recompute BatchNorm statistics)"
        )
    return "\n".join(lines)


def muon_snippet(
    kwargs: Mapping[str, Any], aux_kwargs: Mapping[str, Any], layout: ParamLayout | None
) -> str:
    """Muon on the hidden 2-D weights, AdamW on the rest; ``model`` is the user's module."""
    muon = call_text("torch.optim.Muon", kwargs, "muon_params")
    adamw = call_text("torch.optim.AdamW", aux_kwargs, "adamw_params")
    if layout is None or layout.assumed_layout:
        return "\n".join(
            [
                "# Muon for the hidden 2-D weights, AdamW for the rest (input layer, output head, "
                "embeddings, biases, norms); `model` is your nn.Module with 3+ Linear layers",
                "linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]",
                "hidden = {id(m.weight) for m in linears[1:-1]}  # the first reads the input, "
                "the last writes the output",
                "muon_params = [p for p in model.parameters() if id(p) in hidden]",
                "adamw_params = [p for p in model.parameters() if id(p) not in hidden]",
                f"optimizers = [{adamw}]",
                "if muon_params:  # none when the model has fewer than 3 Linear layers",
                f"    optimizers.append({muon})",
                "# every step: loss.backward(); then step() and zero_grad() on each optimizer",
            ]
        )
    hidden = layout.names("hidden")
    rest = [p for p in layout.params if not p.hidden]
    if not hidden:
        return "\n".join(
            [
                "# Muon does not apply: the model has no hidden 2-D weight (Muon takes the "
                "weights between the input layer and the output head); AdamW for everything",
                f"adamw = {call_text('torch.optim.AdamW', aux_kwargs, 'model.parameters()')}",
            ]
        )
    roles = ", ".join(
        f"{role} {', '.join(names)}" if len(names) <= 3 else f"{len(names)} {role} tensors"
        for role in ("input", "head", "embedding", "other", "vector")
        if (names := layout.names(role))
    )
    return "\n".join(
        [
            f"# Muon for {len(hidden)} hidden 2-D weight(s) ({layout.count('hidden'):,} "
            f"parameters); AdamW for the other {len(rest)} tensor(s) "
            f"({layout.total - layout.count('hidden'):,} parameters: {roles}); "
            "`model` is your nn.Module",
            f"hidden = {{{', '.join(repr(n) for n in hidden)}}}",
            "muon_params = [p for n, p in model.named_parameters() if n in hidden]",
            "adamw_params = [p for n, p in model.named_parameters() if n not in hidden]",
            f"muon = {muon}",
            f"adamw = {adamw}",
            _STEP,
        ]
    )
