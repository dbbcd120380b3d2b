"""The seed model: the Keras MNIST example's MLP (784-128-128-10, ReLU) and its FLOP count.

>>> mnist_mlp_parameters()
118282
>>> mlp_flops_per_sample()
507392
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advisor.core.checks import positive_int

if TYPE_CHECKING:
    from torch import nn


def _layer_sizes(hidden: int, n_features: int, n_classes: int) -> list[tuple[int, int]]:
    for name, value in (("hidden", hidden), ("n_features", n_features), ("n_classes", n_classes)):
        positive_int(name, value)
    return [(n_features, hidden), (hidden, hidden), (hidden, n_classes)]


def mnist_mlp(hidden: int = 128, n_features: int = 784, n_classes: int = 10) -> nn.Module:
    """The seed MLP: ``Sequential(Linear, ReLU, Linear, ReLU, Linear)``, logits out.

    Initialised by torch's default ``nn.Linear`` init, so ``torch.manual_seed(s)`` before the
    call fixes the weights. Input: float ``[N, n_features]``; output: ``[N, n_classes]``.

    >>> sum(p.numel() for p in mnist_mlp().parameters())
    118282
    """
    from torch import nn

    (d, h1), (_, h2), (_, c) = _layer_sizes(hidden, n_features, n_classes)
    return nn.Sequential(
        nn.Linear(d, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, c)
    )


def mnist_mlp_parameters(hidden: int = 128, n_features: int = 784, n_classes: int = 10) -> int:
    """Number of parameters of :func:`mnist_mlp` (weights and biases), without torch."""
    return sum(i * o + o for i, o in _layer_sizes(hidden, n_features, n_classes))


def mlp_flops_per_sample(
    hidden: int = 128, n_features: int = 784, n_classes: int = 10, *, backward: bool = True
) -> int:
    """GEMM FLOPs of one training sample through :func:`mnist_mlp` (a multiply-add is 2 FLOP).

    ``backward=True`` counts the forward pass, the weight gradients of every layer and the
    input gradients of every layer but the first (nothing needs the gradient of the input
    images); ``backward=False`` counts the forward pass only (evaluation). Bias additions,
    activations and the loss are elementwise and not counted: this is the work a GEMM
    roofline measures.

    >>> mlp_flops_per_sample(backward=False)
    236032
    """
    layers = _layer_sizes(hidden, n_features, n_classes)
    forward = sum(2 * i * o for i, o in layers)
    if not backward:
        return forward
    input_grads = sum(2 * i * o for i, o in layers[1:])
    return 2 * forward + input_grads
