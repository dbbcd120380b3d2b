"""Self-attention written for ``vmap``: the generic population's ``nn.MultiheadAttention``.

``nn.MultiheadAttention`` packs the query, key and value projections in one matrix and
splits the result with ``unflatten(...).transpose(...).contiguous()`` and three indexings:
a copy of the whole projection in the forward pass and, in the backward pass, three
zero-filled tensors of its full size, one per indexing, summed. For one model those are
cache-sized; under ``vmap`` they are K times larger (12 MB each for the transformer
encoder of docs/BENCHMARKS.md at K = 16) and cost a tenth of a step.

:func:`self_attention_forward` computes the same attention in the batch-first layout with
one view and one ``unbind`` (whose backward is a single ``stack``), and the same dropout on
the attention weights (given a ``dropout`` function, such as
:func:`advisor.train.fast_masks.fast_dropout`, it writes the attention out and drops
the weights with that function). It replaces the forward of the population's ``nn.MultiheadAttention``
modules (:func:`use_vmap_attention`). It covers a key padding mask (padded text: boolean,
True where a key is padding, or additive float, as ``nn.TransformerEncoder`` passes it),
and hands every other call back to ``nn.MultiheadAttention.forward``: cross-attention, an
``attn_mask``, the causal hint, ``bias_k``, ``add_zero_attn``, separate projection weights
and attention weights asked for.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Dropout = Callable[[Tensor, float], Tensor]


def self_attention_forward(
    self: nn.MultiheadAttention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
    *,
    dropout: Dropout | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``nn.MultiheadAttention.forward``, for batch-first self-attention without an
    ``attn_mask`` (a ``key_padding_mask`` is fine).

    ``dropout(weights, p)`` drops the attention weights in training (default: the
    dropout of ``scaled_dot_product_attention``).
    """
    covered = (
        query is key
        and key is value
        and self.batch_first
        and query.dim() == 3
        and self._qkv_same_embed_dim
        and self.bias_k is None
        and not self.add_zero_attn
        and not need_weights
        and (key_padding_mask is None or key_padding_mask.shape == query.shape[:2])
        and attn_mask is None
        and not is_causal
    )
    if not covered:
        return nn.MultiheadAttention.forward(  # type: ignore[no-any-return]
            self, query, key, value, key_padding_mask, need_weights, attn_mask,
            average_attn_weights, is_causal,
        )  # fmt: skip
    batch, tokens, width = query.shape
    heads = self.num_heads
    qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
    q, k, v = qkv.view(batch, tokens, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
    p = self.dropout if self.training else 0.0
    mask = None if key_padding_mask is None else _additive(key_padding_mask, q.dtype)
    if dropout is not None and p > 0:
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        if mask is not None:
            scores = scores + mask
        attended = torch.matmul(dropout(torch.softmax(scores, dim=-1), p), v)
    else:
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    merged = attended.transpose(1, 2).reshape(batch, tokens, width)
    return F.linear(merged, self.out_proj.weight, self.out_proj.bias), None


def _additive(key_padding_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """``[N, T]`` key padding (True or -inf: a key to ignore) as ``[N, 1, 1, T]`` scores to add."""
    if key_padding_mask.dtype == torch.bool:
        zeros = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
        key_padding_mask = zeros.masked_fill(key_padding_mask, float("-inf"))
    return key_padding_mask.to(dtype)[:, None, None, :]


def use_vmap_attention(model: nn.Module, dropout: Dropout | None = None) -> int:
    """Give every ``nn.MultiheadAttention`` in ``model`` :func:`self_attention_forward`
    (with ``dropout`` for the attention weights); how many modules it changed."""
    changed = 0
    method = functools.partial(self_attention_forward, dropout=dropout)
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            forward: Any = types.MethodType(method, module)
            module.forward = forward  # type: ignore[method-assign]
            changed += 1
    return changed
