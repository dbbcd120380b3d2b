"""Your own model and your own tensors: tune() trains it with the reference trainer.

    python examples/custom_model.py

Here: a small convolutional network on scikit-learn's 8x8 digits (1,797 images).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import advisor


def small_convnet() -> nn.Module:
    """8x8 grey images as flat 64-vectors -> 10 logits."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )


def main() -> None:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:1400], order[1400:]
    torch.set_num_threads(1)
    result = advisor.tune(
        model=small_convnet,
        data=(x[train], y[train], x[test], y[test]),
        optimizers=["adam", "nesterov"],
        trials=6,
        epochs=3,
        seeds=2,
        finalists=1,
        budget="2m",
        device="cpu",
    )
    print(result.recommendation.torch, result.recommendation.schedule)
    print(
        f"test accuracy {result.recommendation.test_accuracy.mean:.2%} "
        f"(default Adam {result.baseline.test_accuracy.mean:.2%})"
    )


if __name__ == "__main__":
    main()
