"""A CNN on Fashion-MNIST through ``model=``: images keep their ``[N, 1, 28, 28]`` shape.

    python examples/fashion_cnn.py

The images come as arrays (here read from the ``fashion-mnist`` IDX files, a 3,000-image
subset to keep the run short); a model of your own sees them in their own shape.
``population=4`` trains four CNNs at once in the generic ``torch.func`` population. Left
out, advisor picks: on a GPU as many as fit in memory; on a CPU a convolutional model trains
one at a time, because vmap's grouped convolutions are slower there than separate ones
(docs/BENCHMARKS.md, "Generic population").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import advisor


def cnn(n_classes: int = 10, channels: int = 8) -> nn.Module:
    """Two 3x3 convolutions with ReLU and 2x2 max-pooling on ``[N, 1, 28, 28]`` images."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [N, channels, 14, 14]
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [N, 2 * channels, 7, 7]
        nn.Flatten(),
        nn.Linear(2 * channels * 7 * 7, n_classes),
    )


def images(n_train: int = 3000, n_test: int = 1000) -> tuple[np.ndarray, ...]:
    """``(X_train, y_train, X_test, y_test)``: uint8 images ``[N, 1, 28, 28]`` (scaled to
    [0, 1] by advisor) and their labels, a seeded subset of Fashion-MNIST."""
    ds = advisor.load_dataset("fashion-mnist", download=False)
    rng = np.random.default_rng(0)
    train = rng.permutation(len(ds.y_train))[:n_train]
    test = rng.permutation(len(ds.y_test))[:n_test]

    def as_images(x: torch.Tensor) -> np.ndarray:
        return (x.reshape(-1, 1, 28, 28).numpy() * 255).round().astype(np.uint8)

    return (
        as_images(ds.x_train[train]),
        ds.y_train[train].numpy(),
        as_images(ds.x_test[test]),
        ds.y_test[test].numpy(),
    )


def main(budget: str = "45s") -> None:
    result = advisor.tune(
        model=cnn,
        data=images(),
        optimizers=["adam", "nesterov"],
        trials=4,
        population=4,
        epochs=2,
        seeds=2,
        finalists=1,
        budget=budget,
        device="cpu",
    )
    print(f"{result.settings.population} CNNs trained at once")
    print(result.recommendation.torch, result.recommendation.schedule)
    print(
        f"test accuracy {result.recommendation.test_accuracy.mean:.2%} "
        f"(default Adam {result.baseline.test_accuracy.mean:.2%})"
    )


if __name__ == "__main__":
    main()
