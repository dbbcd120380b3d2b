"""Your own data, in any of the forms :func:`advisor.tune` accepts, as a :class:`Dataset`.

``data`` may be:

- ``(X_train, y_train, X_test, y_test)``: tensors or numpy arrays (anything
  :func:`numpy.asarray` takes);
- ``(X_train, y_train)``: a test set is split off first (:data:`TEST_FRACTION`, seeded,
  stratified for classification), then the validation set;
- a torch ``Dataset`` (``ds[i]`` gives ``(x, y)``), or a pair ``(train, test)`` of them;
- a ``DataLoader`` (its batches are the training set), or a factory of them: a callable
  ``loader(split)``, ``split`` in ``"train"``, ``"test"``, returning an iterable of
  ``(x, y)`` batches (``None``, or a factory without arguments: no test set). Each loader
  is read once.

Everything is *materialized*: read once into tensors held in memory (and moved to the
training device), because the trainers index rows of tensors instead of running a
DataLoader per step. Data that does not fit in memory needs the objective API
(``tune(objective=fn)``), where your own loop reads it.

The validation split always comes from the training set (seeded; stratified by class for a
classification, at random for a regression); the test set is only read by the final report.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(100, 3, 8, 8)).astype(np.float32)
>>> ds = load_user_data((x, np.arange(100) % 4), kind="classification", flatten=False)
>>> tuple(ds.x_train.shape), tuple(ds.x_val.shape), tuple(ds.x_test.shape), ds.n_classes
((72, 3, 8, 8), (8, 3, 8, 8), (20, 3, 8, 8), 4)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from advisor.core.errors import DataError
from advisor.data.dataset import Dataset, random_split, stratified_split

#: The share of ``(X_train, y_train)`` held out as the test set when none is given.
TEST_FRACTION = 0.2


def load_user_data(
    data: Any,
    *,
    kind: str = "classification",
    validation: int | float | None = None,
    seed: int = 0,
    flatten: bool = True,
    name: str = "custom",
) -> Dataset:
    """A :class:`Dataset` from ``data`` in any form of the module doc.

    ``kind``: ``"classification"`` (integer labels ``[N]``) or ``"regression"`` (real
    targets ``[N, ...]``). ``flatten``: samples become ``[N, features]`` (the seed MLP);
    False keeps their shape for your own model. ``validation``: a count or a fraction of
    the training set (default ``min(5000, N/10)``).
    """
    regression = kind == "regression"
    x_train, y_train, x_test, y_test = _four_arrays(data)
    if not regression:
        for x, y, name in ((x_train, y_train, "train"), (x_test, y_test, "test")):
            if x is not None and y is not None:
                _check_classes(x, y, name)
    if x_test is None or y_test is None:
        _check_pair(x_train, y_train, "X_train", "y_train")
        n_test = round(TEST_FRACTION * len(y_train))
        if regression:
            keep, held = random_split(len(y_train), n_test, seed)
        else:
            keep, held = stratified_split(y_train.astype(np.int64), n_test, seed)
        x_train, y_train, x_test, y_test = (
            x_train[keep],
            y_train[keep],
            x_train[held],
            y_train[held],
        )
    return Dataset.from_arrays(
        x_train,
        y_train,
        x_test,
        y_test,
        validation=validation if validation is not None else _default(len(y_train)),
        seed=seed,
        name=name,
        flatten=flatten,
        regression=regression,
    )


def _check_classes(x: np.ndarray, y: np.ndarray, split: str) -> None:
    """Real-valued or multi-column targets are a regression's, not class labels: say so."""
    fractional = np.issubdtype(y.dtype, np.floating) and not bool(np.all(np.mod(y, 1) == 0))
    if fractional or y.ndim != 1:
        raise DataError(
            f"classification needs integer class labels [N], got y_{split} {y.shape} {y.dtype} "
            f"for X_{split} {x.shape}; for real-valued targets pass task='regression' "
            "(CLI: --task regression)."
        )


def describe(data: Any) -> str:
    """What kind of data ``data`` is, for error messages."""
    return type(data).__name__


def _default(n: int) -> int:
    return min(5_000, round(n / 10))


def _check_pair(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    if x.ndim < 1 or y.ndim < 1 or len(x) != len(y):
        raise DataError(
            f"{x_name} has shape {x.shape} but {y_name} has shape {y.shape}: one target per sample."
        )
    if len(y) < 3:
        raise DataError(
            f"{y_name} holds {len(y)} samples: too few to split off test and validation."
        )


def _four_arrays(
    data: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if _is_loader(data):  # a DataLoader itself: the training batches
        return (*_read_batches(data, "the DataLoader"), None, None)
    if callable(data) and not _is_torch_dataset(data):
        train = _read_batches(_call_loader(data, "train"), "the 'train' loader")
        test_loader = _call_loader(data, "test", optional=True)
        test = _read_batches(test_loader, "the 'test' loader") if test_loader is not None else None
        return (*train, *(test or (None, None)))
    if _is_torch_dataset(data):
        return (*_read_dataset(data, "the dataset"), None, None)
    if isinstance(data, (tuple, list)):
        if len(data) == 2 and all(_is_torch_dataset(d) for d in data):
            return (
                *_read_dataset(data[0], "the train dataset"),
                *_read_dataset(data[1], "the test dataset"),
            )
        if len(data) == 2:
            return _array(data[0]), _array(data[1]), None, None
        if len(data) == 4:
            x_tr, y_tr, x_te, y_te = (_array(a) for a in data)
            return x_tr, y_tr, x_te, y_te
        raise DataError(
            f"data must be (X_train, y_train, X_test, y_test) or (X_train, y_train), got "
            f"{len(data)} items."
        )
    raise DataError(
        f"data of type {describe(data)} is not supported: pass (X_train, y_train, X_test, y_test), "
        "(X_train, y_train), a torch Dataset, or a DataLoader factory loader(split)."
    )


def _is_loader(obj: Any) -> bool:
    return hasattr(obj, "__iter__") and hasattr(obj, "batch_size") and hasattr(obj, "dataset")


def _is_torch_dataset(obj: Any) -> bool:
    return (
        hasattr(obj, "__getitem__")
        and hasattr(obj, "__len__")
        and not isinstance(obj, (tuple, list, np.ndarray))
        and not hasattr(obj, "shape")
    )


def _call_loader(factory: Callable[..., Any], split: str, optional: bool = False) -> Any:
    try:
        return factory(split)
    except TypeError:
        if split == "train":  # a factory without arguments: the training loader
            try:
                return factory()
            except Exception as exc:
                raise DataError(
                    f"the DataLoader factory failed: {type(exc).__name__}: {exc}"
                ) from exc
        if optional:
            return None
        raise
    except Exception as exc:
        raise DataError(
            f"the DataLoader factory failed for split {split!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _read_batches(batches: Iterable[Any], what: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise DataError(f"{what} must give (x, y) batches, got a {type(batch).__name__}.")
        xs.append(_array(batch[0]))
        ys.append(_array(batch[1]))
    if not xs:
        raise DataError(f"{what} gave no batches.")
    return np.concatenate(xs), np.concatenate(ys)


def _read_dataset(ds: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i in range(len(ds)):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(f"{what} must give (x, y) items, got a {type(item).__name__}.")
        xs.append(_array(item[0]))
        ys.append(_array(item[1]))
    if not xs:
        raise DataError(f"{what} is empty.")
    return np.stack(xs), np.stack(ys)


def _array(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        return np.asarray(a.detach().cpu().numpy())
    return np.asarray(a)
