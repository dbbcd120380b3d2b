"""Test helpers over real datasets."""

from __future__ import annotations

from dataclasses import replace

import torch

from advisor.data.dataset import Dataset


def subset(data: Dataset, n_train: int, n_val: int) -> Dataset:
    """A seeded random subset of the training and validation splits."""
    g = torch.Generator().manual_seed(0)
    tr = torch.randperm(data.x_train.shape[0], generator=g)[:n_train]
    va = torch.randperm(data.x_val.shape[0], generator=g)[:n_val]
    return replace(
        data,
        x_train=data.x_train[tr],
        y_train=data.y_train[tr],
        x_val=data.x_val[va],
        y_val=data.y_val[va],
    )
