"""A CNN on clothing images, digits with noisy labels, and an L2-penalized logistic regression."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from advisor.data.dataset import Dataset

#: the L2 penalty (lambda / 2) * ||W||^2 of the regularized logistic regression
L2 = 1e-3


class SmallCNN(nn.Module):
    """Two 3x3 conv layers (8 and 16 channels, ReLU, 2x2 max-pool), then a linear layer.
    Input: flat 28x28 images ``[N, 784]``."""

    def __init__(self, n_classes: int, side: int = 28) -> None:
        super().__init__()
        self.side = side
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.out = nn.Linear(16 * (side // 4) ** 2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.view(-1, 1, self.side, self.side))  # [N, 16, 7, 7]
        return self.out(h.flatten(1))


def small_cnn(data: Dataset) -> Callable[[], nn.Module]:
    return lambda: SmallCNN(data.n_classes)


def noisy_digits(noise: float = 0.3, seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 digits (80/20, as :func:`mlp.digits`) with ``noise`` of the
    training and validation labels replaced by a uniformly drawn other class; the test
    labels stay clean (what a model learnt despite the noise)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        (x / 16.0).astype(np.float32), y, test_size=0.2, stratify=y, random_state=0
    )
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y_tr)) < noise
    y_tr = y_tr.copy()
    y_tr[flip] = (y_tr[flip] + rng.integers(1, 10, flip.sum())) % 10
    return Dataset.from_arrays(x_tr, y_tr, x_te, y_te, validation=0.2, name="noisy-digits")


class L2Logistic(nn.Module):
    """A linear layer whose weight gradient carries the penalty's: every backward adds
    ``L2 * W`` (a hook), so every optimizer minimizes cross-entropy + (L2 / 2) ||W||^2, a
    strongly convex objective. (L-BFGS's closure runs one backward per 8,192 rows: the
    digits' 1,150 training rows are one.) The loss *value* the trainers report leaves the
    penalty out."""

    def __init__(self, n_features: int, n_classes: int, l2: float = L2) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)
        weight = self.linear.weight
        weight.register_hook(lambda g: g + l2 * weight.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def l2_logistic(data: Dataset) -> Callable[[], nn.Module]:
    return lambda: L2Logistic(data.n_features, data.n_classes)
