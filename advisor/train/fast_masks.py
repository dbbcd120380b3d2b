"""Dropout masks from 16-bit draws: the generic population's dropout on a CPU.

Dropout draws one Bernoulli number per activation. On a CPU torch draws each from its
Mersenne Twister as a float (``bernoulli_``: 13 ns an element here), and in the small
transformer encoder of docs/BENCHMARKS.md those draws were 29 % of a training step. The
generic population instead cuts each 64-bit draw of the same generator into four 16-bit
numbers and keeps an element when its number is at least ``round(p * 65536)`` levels up
(2 ns an element): the probability is ``p`` to within 1/131072, the draws are
independent, and they still come from torch's generator, so
:class:`~advisor.train.FuncPopulation`'s seed makes them reproducible.

Two ways in, both for the population's forward pass on a CPU:

- :func:`use_fast_dropout` gives the model's ``nn.Dropout`` modules :func:`fast_dropout`
  (and :mod:`advisor.train.vmap_attention` uses it for the attention weights). It runs
  under ``vmap(randomness="different")``, so each member draws its own masks.
- :class:`FastMasks`, a ``TorchDispatchMode``, catches the draws of every other dropout
  (a functional ``F.dropout`` in a forward, ``nn.Dropout2d``): below ``vmap`` a
  member-batched dropout is one ``bernoulli`` over all K members' activations, and it
  answers the two float Bernoulli ops (``bernoulli.p``, ``bernoulli_.float``) on CPU
  tensors; every other op goes through unchanged. Autograd is above it and records the
  ops as usual (a mask has no gradient). Its Python hop costs a few microseconds on every
  op (9 % of the transformer's step), so the population keeps it on only while a step
  still draws through it.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
_LOW, _HIGH = -(2**63), 2**63 - 1  # randint over (almost) every 64-bit value
_LEVELS = 1 << 16


def _levels(p: float) -> int:
    """``p`` in 16-bit levels (0..65536)."""
    return round(min(max(p, 0.0), 1.0) * _LEVELS)


def _draws16(shape: torch.Size, device: torch.device) -> Tensor:
    """Uniform 16-bit integers in ``shape``: four from each 64-bit draw of torch's generator."""
    n = shape.numel()
    words = torch.randint(_LOW, _HIGH, ((n + 3) // 4,), dtype=torch.int64, device=device)
    return words.view(torch.int16)[:n].view(shape)


def bernoulli_into(out: Tensor, p: float) -> Tensor:
    """Fill ``out`` with 1 (probability ``p``) or 0, from 16-bit draws; returns ``out``.

    >>> _ = torch.manual_seed(0)
    >>> m = bernoulli_into(torch.empty(200_000), 0.9)
    >>> round(float(m.mean()), 2), sorted(set(m.unique().tolist()))
    (0.9, [0.0, 1.0])
    """
    levels = _levels(p)
    if levels in (0, _LEVELS):  # a sure outcome (and a bound int16 cannot hold)
        return out.fill_(levels // _LEVELS)
    return out.copy_(_draws16(out.shape, out.device) < levels - _LEVELS // 2)


def fast_dropout(x: Tensor, p: float) -> Tensor:
    """``F.dropout(x, p)`` in training, with masks from 16-bit draws (works under vmap).

    >>> _ = torch.manual_seed(0)
    >>> out = fast_dropout(torch.ones(100_000), 0.2)
    >>> round(float((out == 0).double().mean()), 2), sorted(set(out.unique().tolist()))
    (0.2, [0.0, 1.25])
    """
    levels = _levels(p)
    if levels == 0:
        return x
    if levels == _LEVELS:
        return x * 0.0
    keep = _draws16(x.shape, x.device) >= levels - _LEVELS // 2
    return x * keep * (1.0 / (1.0 - p))


def _dropout_forward(self: nn.Dropout, x: Tensor) -> Tensor:
    return fast_dropout(x, self.p) if self.training else x


def use_fast_dropout(model: nn.Module) -> int:
    """Give every ``nn.Dropout`` in ``model`` :func:`fast_dropout`; how many it changed."""
    changed = 0
    for module in model.modules():
        if type(module) is nn.Dropout:
            forward: Any = types.MethodType(_dropout_forward, module)
            module.forward = forward  # type: ignore[method-assign]
            changed += 1
    return changed


class FastMasks(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Answer float Bernoulli draws on CPU tensors with :func:`bernoulli_into`.

    ``draws`` counts the ops it answered (0 after a step: the model draws no masks).
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.draws = 0

    def __torch_dispatch__(
        self,
        func: Callable[..., Any],
        _types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if (func is _aten.bernoulli.p or func is _aten.bernoulli_.float) and kwargs.get(
            "generator"
        ) is None:
            target = args[0]
            if target.is_floating_point() and target.device.type == "cpu":
                p = float(args[1]) if len(args) > 1 else float(kwargs.get("p", 0.5))
                out = target if func is _aten.bernoulli_.float else torch.empty_like(target)
                self.draws += 1
                return bernoulli_into(out, p)
        return func(*args, **kwargs)
