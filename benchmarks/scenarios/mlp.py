"""The first scenarios' data and models: the digit and clothing images, scikit-learn's
digits, synthetic bag-of-words documents, logistic regression and MLPs."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import advisor
from advisor.data.dataset import Dataset

VALIDATION = 0.1


# ---------------------------------------------------------------------------- data


def mnist_5k() -> Dataset:
    return advisor.load_dataset("mnist-5k")


def fashion() -> Dataset:
    return advisor.load_dataset("fashion-mnist")


def digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits (pixels 0..16 scaled to 0..1): 80/20 train/test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        (x / 16.0).astype(np.float32), y, test_size=0.2, stratify=y, random_state=0
    )
    return Dataset.from_arrays(x_tr, y_tr, x_te, y_te, validation=0.2, name="digits")


def tiny_mnist(n: int = 500) -> Dataset:
    """``n`` training digits of mnist-5k (stratified), its full validation and test sets."""
    return train_subset(mnist_5k(), n, f"mnist-5k-{n}")


def fashion_subset(n: int = 20_000) -> Dataset:
    """``n`` of fashion-mnist's 55,000 training images (stratified), its full validation
    (5,000) and test (10,000) sets: a grid of ~190 CNN runs costs a third of the full set's."""
    return train_subset(fashion(), n, f"fashion-mnist-{n // 1000}k")


def train_subset(full: Dataset, n: int, name: str) -> Dataset:
    """``n // classes`` training rows of each class (seeded), the validation and test sets whole."""
    g = torch.Generator().manual_seed(0)
    keep = torch.cat(
        [
            idx[torch.randperm(len(idx), generator=g)[: n // full.n_classes]]
            for idx in (torch.nonzero(full.y_train == c).flatten() for c in range(full.n_classes))
        ]
    )
    return Dataset(
        name=name,
        x_train=full.x_train[keep],
        y_train=full.y_train[keep],
        x_val=full.x_val,
        y_val=full.y_val,
        x_test=full.x_test,
        y_test=full.y_test,
        n_classes=full.n_classes,
    )


def bag_of_words(vocabulary: int = 5000, n: int = 8000) -> Dataset:
    """Word counts of synthetic documents, not real text: scikit-learn's
    ``make_multilabel_classification``.

    It draws each document's length and words from its classes' word distributions
    (multinomials over ``vocabulary`` word ids); documents with exactly one label are kept
    (single-label classification), 80/20 train/test. Real text has a Zipfian word
    distribution and word order; figures measured here say how optimizers compare on this
    generator, not on text.
    """
    from sklearn.datasets import make_multilabel_classification
    from sklearn.model_selection import train_test_split

    x, y = make_multilabel_classification(
        n_samples=n,
        n_features=vocabulary,
        n_classes=10,
        n_labels=1,
        length=30,
        allow_unlabeled=False,
        random_state=0,
    )
    single = y.sum(axis=1) == 1
    x, labels = x[single].astype(np.float32), y[single].argmax(axis=1)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, labels, test_size=0.2, stratify=labels, random_state=0
    )
    return Dataset.from_arrays(x_tr, y_tr, x_te, y_te, validation=VALIDATION, name="bag-of-words")


# ---------------------------------------------------------------------------- models


def logistic_regression(data: Dataset) -> Callable[[], nn.Module]:
    return lambda: nn.Linear(data.n_features, data.n_classes)


class BagOfWordsClassifier(nn.Module):
    """Word embeddings summed over a document (weighted by counts), then a linear layer.

    The embedding gradient is sparse: a minibatch touches only the rows of the words it
    contains. (``sparse=False`` so that every optimizer can train it; ``sparse=True`` changes
    the storage of that gradient, not its values.)
    """

    def __init__(self, vocabulary: int, n_classes: int, dim: int = 32) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocabulary, dim, mode="sum")
        self.out = nn.Linear(dim, n_classes)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        rows, words = torch.nonzero(counts, as_tuple=True)
        offsets = torch.zeros(counts.shape[0], dtype=torch.long, device=counts.device)
        offsets[1:] = torch.cumsum(torch.bincount(rows, minlength=counts.shape[0]), 0)[:-1]
        bags = self.embedding(words, offsets, per_sample_weights=counts[rows, words])
        return self.out(bags)


def bag_of_words_model(data: Dataset) -> Callable[[], nn.Module]:
    return lambda: BagOfWordsClassifier(data.n_features, data.n_classes)


def deep_plain_mlp(
    depth: int = 16, width: int = 128, gain: float = 2.4
) -> Callable[[Dataset], Callable[[], nn.Module]]:
    """``depth`` ReLU layers without normalization or skips, weights N(0, gain^2 / fan_in).

    He initialization has gain sqrt(2) ~ 1.41; 2.4 makes every layer amplify the signal,
    and ``advisor.profile_model`` measures the gradients as exploding (a layer's norm > 1e3).
    """

    def for_data(data: Dataset) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            layers: list[nn.Module] = []
            fan_in = data.n_features
            for _ in range(depth):
                linear = nn.Linear(fan_in, width)
                nn.init.normal_(linear.weight, 0.0, gain / math.sqrt(fan_in))
                nn.init.zeros_(linear.bias)
                layers += [linear, nn.ReLU()]
                fan_in = width
            out = nn.Linear(fan_in, data.n_classes)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
            layers.append(out)
            return nn.Sequential(*layers)

        return build

    return for_data
