"""The generic population's CPU fast paths: 16-bit dropout masks, self-attention written for
vmap, and freed host memory kept in the process. Each must change the speed only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from advisor.train.fast_masks import FastMasks, bernoulli_into, fast_dropout, use_fast_dropout
from advisor.train.host_memory import keep_freed_memory
from advisor.train.vmap_attention import self_attention_forward, use_vmap_attention


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_masks_keep_an_element_with_probability_p(p: float) -> None:
    torch.manual_seed(0)
    mask = bernoulli_into(torch.empty(400_000, dtype=torch.float64), p)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # four standard deviations of a binomial mean
    assert abs(float(mask.mean()) - p) <= 4 * (p * (1 - p) / mask.numel()) ** 0.5 + 1e-12


def test_masks_are_independent_across_the_four_parts_of_a_draw() -> None:
    torch.manual_seed(1)
    mask = bernoulli_into(torch.empty(4 * 100_000), 0.5).view(-1, 4)
    # each 64-bit draw feeds four neighbours: their correlation must be noise
    corr = torch.corrcoef(mask.T)
    assert (corr - torch.eye(4)).abs().max() < 0.02


def test_masks_follow_torch_seed() -> None:
    torch.manual_seed(3)
    a = bernoulli_into(torch.empty(1000), 0.3)
    torch.manual_seed(3)
    b = bernoulli_into(torch.empty(1000), 0.3)
    torch.manual_seed(4)
    c = bernoulli_into(torch.empty(1000), 0.3)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_vmapped_dropout_under_fast_masks_drops_p_and_differs_per_member() -> None:
    x = torch.ones(8, 50_000)
    torch.manual_seed(0)
    mode = FastMasks()
    with mode:
        out = vmap(lambda v: F.dropout(v, 0.25), randomness="different")(x)
    assert mode.draws > 0
    kept = out[out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))
    dropped = (out == 0).double().mean(dim=1)
    assert torch.allclose(dropped, torch.full_like(dropped, 0.25), atol=0.01)
    assert not torch.equal(out[0], out[1])


def test_fast_dropout_in_a_vmapped_model_drops_p_per_member() -> None:
    model = nn.Sequential(nn.Identity(), nn.Dropout(0.3))
    assert use_fast_dropout(model) == 1
    x = torch.ones(6, 40_000)
    torch.manual_seed(0)
    out = vmap(model, randomness="different")(x)
    dropped = (out == 0).double().mean(dim=1)
    assert torch.allclose(dropped, torch.full_like(dropped, 0.3), atol=0.01)
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.7))
    assert not torch.equal(out[0], out[1])
    model.eval()
    assert torch.equal(model(x), x)
    edge = torch.randn(5)
    assert torch.equal(fast_dropout(edge, 0.0), edge) and torch.equal(
        fast_dropout(edge, 1.0), 0 * edge
    )


def test_fast_dropout_gradient_is_the_mask_scaled() -> None:
    torch.manual_seed(2)
    x = torch.randn(1000, requires_grad=True)
    out = fast_dropout(x, 0.5)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, (out != 0).float() * 2.0)


def test_fast_masks_leave_other_draws_alone() -> None:
    g = torch.Generator().manual_seed(7)
    expected = torch.empty(100).bernoulli_(0.5, generator=torch.Generator().manual_seed(7))
    mode = FastMasks()
    with mode:
        got = torch.empty(100).bernoulli_(0.5, generator=g)  # its own generator: torch's draw
        ints = torch.zeros(10, dtype=torch.int64).bernoulli_(0.5)  # not a float mask
    assert torch.equal(got, expected) and mode.draws == 0
    assert set(ints.tolist()) <= {0, 1}


def _mha(dropout: float = 0.0) -> nn.MultiheadAttention:
    torch.manual_seed(0)
    return nn.MultiheadAttention(8, 2, dropout=dropout, batch_first=True, dtype=torch.float64)


PAD = torch.tensor(
    [[False] * 5, [False, False, False, True, True], [False, True, True, True, True]]
)


@pytest.mark.parametrize(
    "pad",
    [None, PAD, torch.zeros(PAD.shape, dtype=torch.float64).masked_fill(PAD, float("-inf"))],
    ids=["no mask", "bool padding", "float padding"],
)
def test_vmap_attention_equals_multihead_attention_with_its_gradients(
    pad: torch.Tensor | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = _mha(), _mha()
    use_vmap_attention(ours)
    torch_forward, handed_back = nn.MultiheadAttention.forward, []

    def counted(*args: object, **kwargs: object) -> object:
        handed_back.append(1)
        return torch_forward(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nn.MultiheadAttention, "forward", counted)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    a, none = ours(x, x, x, key_padding_mask=pad, need_weights=False)
    assert not handed_back  # computed by the vmap path, not torch's
    b, _ = theirs(x, x, x, key_padding_mask=pad, need_weights=False)
    assert none is None and torch.allclose(a, b, rtol=0, atol=1e-13)
    ga = torch.autograd.grad(a.square().sum(), [x, *ours.parameters()])
    gb = torch.autograd.grad(b.square().sum(), [x, *theirs.parameters()])
    assert all(torch.allclose(u, v, rtol=0, atol=1e-12) for u, v in zip(ga, gb))


def test_vmap_attention_hands_back_what_it_does_not_cover() -> None:
    ours, theirs = _mha(), _mha()
    use_vmap_attention(ours)
    x, y = torch.randn(2, 4, 8, dtype=torch.float64), torch.randn(2, 6, 8, dtype=torch.float64)
    causal = nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    cases = [
        ((x, x, x), {"need_weights": True}),  # attention weights asked for
        ((x, x, x), {"attn_mask": causal, "need_weights": False}),
        ((x, y, y), {"need_weights": False}),  # cross-attention
    ]
    for args, kwargs in cases:
        (a, wa), (b, wb) = ours(*args, **kwargs), theirs(*args, **kwargs)
        assert torch.equal(a, b)
        assert (wa is None and wb is None) or torch.equal(wa, wb)


def test_vmap_attention_drops_attention_weights_in_training_only() -> None:
    attn = _mha(dropout=0.5)
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    attn.eval()
    quiet = self_attention_forward(attn, x, x, x, need_weights=False)[0]
    assert torch.equal(quiet, self_attention_forward(attn, x, x, x, need_weights=False)[0])
    attn.train()
    torch.manual_seed(0)
    noisy = self_attention_forward(attn, x, x, x, need_weights=False)[0]
    assert not torch.allclose(noisy, quiet)


def test_vmap_attention_drops_weights_with_the_given_dropout() -> None:
    attn = _mha(dropout=0.25)
    calls = []

    def dropout(w: torch.Tensor, p: float) -> torch.Tensor:
        calls.append((tuple(w.shape), p))
        return w  # no drop: must then equal attention without dropout

    use_vmap_attention(attn, dropout)
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    out = attn(x, x, x, need_weights=False)[0]
    assert calls == [((2, 2, 6, 6), 0.25)]  # weights: batch, heads, tokens, tokens
    attn.dropout = 0.0
    plain = self_attention_forward(attn, x, x, x, need_weights=False)[0]
    assert torch.allclose(out, plain, rtol=0, atol=1e-13)


def test_freed_memory_is_kept_on_linux_unless_turned_off() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True
    code = "from advisor.train.host_memory import keep_freed_memory as k; print(k())"
    off = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ADVISOR_KEEP_FREED_MEMORY": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert off.stdout.strip() == "False"
