"""A regression model through ``model=`` and ``task="regression"``: MSE loss, judged by the
negative mean squared error on the validation split, reported on the held-out test set.

    python examples/regression.py
    PYTHONPATH=. advisor tune --model examples.regression:mlp --data examples.regression:data \\
        --task regression --trials 6 --epochs 3

Here: scikit-learn's diabetes data (442 patients, 10 features, a disease-progression score),
standardized. ``data()`` gives ``(X, y)`` only: advisor splits off the test set (20 %,
seeded) and the validation set.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from torch import nn

import advisor


def data() -> tuple[np.ndarray, np.ndarray]:
    """Features and target, both standardized (float32)."""
    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    return x.astype(np.float32), y.astype(np.float32)


def mlp() -> nn.Module:
    """10 features -> 1 value (the ``[N, 1]`` output fits ``[N]`` targets)."""
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))


def main() -> None:
    torch.set_num_threads(1)
    result = advisor.tune(
        model=mlp,
        data=data(),
        task="regression",
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
        f"test metric (negative MSE) {result.recommendation.test_accuracy.mean:.4f} "
        f"(default Adam {result.baseline.test_accuracy.mean:.4f})"
    )


if __name__ == "__main__":
    main()
