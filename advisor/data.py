"""Datasets as tensors: ``mnist``, ``mnist-5k`` (embedded, offline), ``fashion-mnist``, ``idx:DIR``.

(Stub: the loaders are being written; the ``Dataset`` value below is the contract.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Dataset:
    """A classification dataset split three ways, as tensors.

    ``x_*``: float32 ``[N, 784]`` with pixels in [0, 1]; ``y_*``: int64 ``[N]``. The test
    split is only for final reports; model selection uses the validation split, which is
    taken from the training set.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 10
    source: str = ""

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset with every tensor on ``device``."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_val=self.x_val.to(device),
            y_val=self.y_val.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )
