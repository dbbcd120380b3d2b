"""Multinomial logistic regression on flattened images: a convex problem.

``advisor`` finds that out by itself (the logits are affine in the weights, and
cross-entropy is convex in the logits), and recommends accordingly::

    PYTHONPATH=. advisor recommend --model examples.logistic_regression:logistic_regression
"""

from __future__ import annotations

from torch import nn


def logistic_regression(n_features: int = 784, n_classes: int = 10) -> nn.Module:
    """``Flatten`` then one ``Linear`` layer: logits for ``n_classes`` (7,850 parameters)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(n_features, n_classes))
