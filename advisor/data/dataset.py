"""The dataset value every trainer takes: train / validation / test tensors, and its splits.

Validation is always taken from the training set (stratified, seeded); the test set is for
final reports only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.core.errors import DataError, InvalidValueError
from advisor.data.idx import check_images_labels, check_same_features

if TYPE_CHECKING:
    import torch

#: Anything :func:`numpy.asarray` accepts, or a torch tensor.
ArrayLike = Any


@dataclass(frozen=True)
class Dataset:
    """A dataset split three ways, as tensors.

    ``x_*``: float32 ``[N, ...]`` (the named datasets: ``[N, 784]`` pixels in [0, 1]; your own
    data keeps its feature shape for your model, ``[N, C, H, W]`` images or ``[N, T, F]``
    sequences). ``y_*``: int64 ``[N]`` class labels, or float32 targets ``[N, ...]`` for a
    regression (``n_classes`` is then the number of target values per sample). The test
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
        """Values per sample (the product of the feature shape)."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. ``(784,)`` or ``(1, 28, 28)``."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def regression(self) -> bool:
        """True when the targets are real values (float), not class labels."""
        return bool(self.y_train.is_floating_point())

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

    @classmethod
    def from_arrays(
        cls,
        x_train: ArrayLike,
        y_train: ArrayLike,
        x_test: ArrayLike,
        y_test: ArrayLike,
        *,
        validation: int | float = 0.1,
        seed: int = 0,
        name: str = "custom",
        flatten: bool = True,
        regression: bool = False,
    ) -> Dataset:
        """A dataset from your own arrays or tensors (images ``[N, ...]``, integer labels ``[N]``).

        Images are flattened to ``[N, features]`` (``flatten=False`` keeps their shape, for a
        model of your own); uint8 pixels are scaled to [0, 1], other dtypes are kept as values
        (as float32). ``validation`` (a fraction, or a count) is taken from the training set,
        stratified and seeded by ``seed``. ``regression=True``: the targets are real values
        ``[N, ...]`` (float32), split at random rather than by class.

        >>> import numpy as np
        >>> x = np.zeros((50, 28, 28), np.uint8); y = np.arange(50) % 5
        >>> ds = Dataset.from_arrays(x, y, x[:10], y[:10], validation=0.2)
        >>> tuple(ds.x_train.shape), tuple(ds.x_val.shape), ds.n_classes
        ((40, 784), (10, 784), 5)
        """
        arrays = [_to_numpy(a) for a in (x_train, y_train, x_test, y_test)]
        labels = ("x_train", "y_train", "x_test", "y_test")
        check = check_targets if regression else check_images_labels
        check(arrays[0], arrays[1], labels[0], labels[1])
        check(arrays[2], arrays[3], labels[2], labels[3])
        check_same_features(arrays[0], arrays[2], labels[0], labels[2])
        if regression:
            check_same_targets(arrays[1], arrays[3], labels[1], labels[3])
        return assemble(
            name,
            *arrays,
            validation=validation,
            seed=seed,
            source="arrays",
            n_classes=None,
            flatten=flatten,
            regression=regression,
        )


def stratified_split(
    labels: np.ndarray, n_holdout: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, holdout)`` indices, ``n_holdout`` items drawn class by class.

    Both come in a seeded random order, so any prefix is a fair sample (the source may be
    sorted by class, as ``mnist-5k`` is).

    Each class gives its share of ``n_holdout`` (largest remainders get the odd items), so
    class proportions match as closely as integers allow. Same ``seed``, same split.

    >>> keep, held = stratified_split(np.array([0, 0, 0, 0, 1, 1]), 3, seed=0)
    >>> len(keep), len(held), sorted(np.array([0, 0, 0, 0, 1, 1])[held].tolist())
    (3, 3, [0, 0, 1])
    """
    n = len(labels)
    if not 0 <= n_holdout <= n:
        raise InvalidValueError(f"cannot hold out {n_holdout} of {n} samples.")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * n_holdout // n
    remainder = counts * n_holdout % n
    extra = n_holdout - int(quota.sum())
    quota[np.argsort(-remainder, kind="stable")[:extra]] += 1
    order = np.random.default_rng(seed).permutation(n)
    by_class = order[np.argsort(inverse[order], kind="stable")]  # permuted, grouped by class
    klass = inverse[by_class]
    rank = np.arange(n) - np.searchsorted(klass, klass)  # position within its class
    held = np.zeros(n, dtype=bool)
    held[by_class[rank < quota[klass]]] = True
    shuffle = np.random.default_rng(seed).permutation
    return shuffle(np.flatnonzero(~held)), shuffle(np.flatnonzero(held))


def random_split(n: int, n_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, holdout)`` indices, ``n_holdout`` drawn at random (seeded): for real-valued
    targets, where classes do not exist.

    >>> keep, held = random_split(10, 3, seed=0)
    >>> len(keep), len(held), sorted([*keep, *held]) == list(range(10))
    (7, 3, True)
    """
    if not 0 <= n_holdout <= n:
        raise InvalidValueError(f"cannot hold out {n_holdout} of {n} samples.")
    order = np.random.default_rng(seed).permutation(n)
    return order[n_holdout:], order[:n_holdout]


def default_validation(n_train: int) -> int:
    """The default validation size: ``min(5000, round(n_train / 10))``."""
    return min(5_000, round(n_train / 10))


def _holdout_size(validation: int | float | None, n: int) -> int:
    if validation is None:
        return default_validation(n)
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        count = -1
    elif isinstance(validation, numbers.Integral):
        count = int(validation)
    else:
        count = round(float(validation) * n) if 0 <= validation < 1 else -1
    if not 0 <= count < n:
        raise InvalidValueError(
            "The 'validation' parameter must be a count in [0, n_train) or a fraction in [0, 1) "
            f"of the {n} training samples. Got {validation!r} instead."
        )
    return count


def assemble(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    validation: int | float | None,
    seed: int,
    source: str,
    n_classes: int | None = 10,
    flatten: bool = True,
    regression: bool = False,
) -> Dataset:
    """The :class:`Dataset` of train and test arrays: validation split off the training set
    (stratified by class, or at random for ``regression``), tensors made."""
    n_holdout = _holdout_size(validation, len(y_train))
    if regression:
        keep, held = random_split(len(y_train), n_holdout, seed)
        n_classes = int(np.prod(y_train.shape[1:]))  # target values per sample
        targets = _targets
    else:
        keep, held = stratified_split(y_train, n_holdout, seed)
        if n_classes is None:
            n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
        targets = _labels
    return Dataset(
        name=name,
        x_train=_features(x_train[keep], flatten),
        y_train=targets(y_train[keep]),
        x_val=_features(x_train[held], flatten),
        y_val=targets(y_train[held]),
        x_test=_features(x_test, flatten),
        y_test=targets(y_test),
        n_classes=n_classes,
        source=source,
    )


def check_targets(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    """DataError unless ``x`` is ``[N, ...]`` and ``y`` holds ``N`` finite real targets."""
    if x.ndim < 2:
        raise DataError(f"{x_name}: features need shape [N, ...], got {x.shape}.")
    if y.ndim < 1 or len(x) != len(y):
        raise DataError(
            f"{x_name} holds {len(x)} samples but {y_name} has shape {y.shape}: "
            "one target per sample."
        )
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise DataError(f"{y_name}: regression targets must be numbers, got dtype {y.dtype}.")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{y_name}: regression targets must be finite; found NaN or inf.")


def check_same_targets(
    train: np.ndarray, test: np.ndarray, train_name: str, test_name: str
) -> None:
    if train.shape[1:] != test.shape[1:]:
        raise DataError(
            f"{train_name} has targets of shape {train.shape[1:]} but {test_name} has "
            f"{test.shape[1:]}."
        )


def _features(x: np.ndarray, flatten: bool = True) -> torch.Tensor:
    """Samples ``[N, ...]`` → float32, flattened to ``[N, features]`` unless ``flatten`` is
    False; uint8 scaled to [0, 1]."""
    import torch

    flat = x.reshape(len(x), int(np.prod(x.shape[1:]))) if flatten else x
    if not flat.flags.writeable:  # parsed straight from the file's bytes; torch wants to own it
        flat = flat.copy()
    if flat.dtype == np.uint8:  # torch converts 8x faster than numpy here
        return torch.from_numpy(flat).to(torch.float32).div_(255.0)
    return torch.from_numpy(flat).to(torch.float32, copy=True)  # never share the caller's memory


def _labels(y: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(y.astype(np.int64))


def _targets(y: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.array(y, dtype=np.float32))


def _to_numpy(a: ArrayLike) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        return np.asarray(a.detach().cpu().numpy())
    return np.asarray(a)
