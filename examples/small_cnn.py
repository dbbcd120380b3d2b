"""A small convolutional network for 28x28 digits (about 9k parameters).

The datasets hold flattened images (``[N, 784]``), so the model unflattens them first::

    PYTHONPATH=. advisor recommend --model examples.small_cnn:small_cnn --probe-lr
"""

from __future__ import annotations

from torch import nn


def small_cnn(n_classes: int = 10, channels: int = 8) -> nn.Module:
    """Two 3x3 convolutions with ReLU and 2x2 max-pooling, then a linear classifier."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [N, channels, 14, 14]
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [N, 2 * channels, 7, 7]
        nn.Flatten(),
        nn.Linear(2 * channels * 7 * 7, n_classes),
    )
