"""IDX files (the format of MNIST and Fashion-MNIST) and the four-file sets built from them.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type, ``DD`` the
number of dimensions), ``DD`` big-endian uint32 sizes, then the elements, big-endian and
row-major. Every fault (bad magic number, sizes that disagree with the data, a truncated
gzip stream) is a :class:`~advisor.core.errors.DataError` that names the file and the fault.

>>> import tempfile, numpy as np
>>> path = write_idx(tempfile.mkdtemp() + "/x-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
>>> read_idx(path).shape
(2, 28, 28)

An :class:`IdxSource` names the four files of a dataset (train/test images/labels), their
checksums and mirrors; :func:`read_idx_set` finds them (``DATA_DIR/<name>/``,
``$ADVISOR_DATA/<name>/``, the user cache ``$XDG_CACHE_HOME/advisor/<name>/``, then system
folders), downloads what is missing or corrupt into the first of those roots, parses them,
and caches the parsed arrays in the user cache so the next load skips gunzip and checksums.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from advisor.core.errors import DataError
from advisor.data.download import GZIP_MAGIC, RemoteFile, fetch_files, find_file, unpack

# IDX type code -> big-endian numpy dtype
_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_CODES: dict[str, int] = {np.dtype(v).str[1:]: k for k, v in _DTYPES.items()}


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of an IDX file, gunzipped if needed (DataError when unreadable)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc}).") from exc
    return unpack(data, path)


def _describe(shape: tuple[int, ...], dtype: np.dtype[np.generic]) -> str:
    return " x ".join(str(d) for d in shape) + f" {dtype.name}"


def parse_header(
    data: bytes, source: str | os.PathLike[str]
) -> tuple[np.dtype[np.generic], tuple[int, ...], int]:
    """``(dtype, shape, header_bytes)`` of unpacked IDX content; DataError when malformed."""
    if len(data) < 4:
        raise DataError(
            f"{source}: {len(data)} bytes, too short for an IDX header (4 bytes at least)."
        )
    if data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        magic = int.from_bytes(data[:4], "big")
        raise DataError(
            f"{source}: bad magic number 0x{magic:08x}, not an IDX file "
            f"(expected 0x0000TTDD with type TT in "
            f"{', '.join(f'{c:02x}' for c in _DTYPES)}; starts with {data[:8]!r})."
        )
    ndim = data[3]
    if ndim == 0:
        raise DataError(f"{source}: the IDX header declares 0 dimensions.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{source}: truncated IDX header ({len(data)} bytes, {header} needed for {ndim} dimensions)."
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype: np.dtype[np.generic] = np.dtype(_DTYPES[data[2]])
    return dtype, shape, header


def parse_idx(data: bytes, source: str | os.PathLike[str]) -> np.ndarray:
    """The array held by unpacked IDX content (native byte order, read-only for uint8).

    ``source`` names the file in error messages.
    """
    dtype, shape, header = parse_header(data, source)
    expected = prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "wrong sizes"
        raise DataError(
            f"{source}: {what}: the header says {_describe(shape, dtype)} = {expected} bytes "
            f"of data, the file holds {found}."
        )
    array = np.frombuffer(data, dtype, count=prod(shape), offset=header).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (``.gz`` or not; detected by content, not by name)."""
    return parse_idx(read_bytes(path), path)


def read_idx_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """The shape an IDX file declares, reading only its header (cheap even for 60k images)."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(2)
            raw.seek(0)
            if head == GZIP_MAGIC:
                with gzip.open(raw) as stream:
                    data = stream.read(4 + 4 * 255)
            else:
                data = raw.read(4 + 4 * 255)
    except EOFError as exc:
        raise DataError(f"{path}: truncated gzip stream ({exc}).") from exc
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the IDX header ({exc}).") from exc
    return parse_header(data, path)[1]


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None
) -> Path:
    """Write ``array`` as an IDX file; gzipped when ``compress`` (default: the name ends in ``.gz``).

    Supported dtypes: uint8, int8, int16, int32, float32, float64. The gzip header carries no
    timestamp, so the same array always gives the same bytes (and the same MD5).
    """
    path = Path(path)
    arr = np.asarray(array)
    code = _CODES.get(arr.dtype.str[1:])
    if code is None:
        raise DataError(
            f"{path}: IDX cannot store dtype {arr.dtype}; use one of uint8, int8, int16, int32, float32, float64."
        )
    if arr.ndim == 0 or arr.ndim > 255:
        raise DataError(f"{path}: IDX needs 1 to 255 dimensions, got {arr.ndim}.")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


# --- four-file sets ---------------------------------------------------------------------


@dataclass(frozen=True)
class IdxSource:
    """Four IDX files that make a dataset: which files, where to look, where to fetch them.

    ``files``: train images, train labels, test images, test labels. ``mirrors`` (base URLs)
    give way to the comma-separated ``$<mirrors_env>``, and both to a ``mirrors`` argument.
    ``use_roots``: look in ``<root>/<name>/`` for each data root (``data_dir``,
    ``$ADVISOR_DATA``, the user cache) before ``system_dirs``. Tests build their own source
    (generated files, their MD5s, a mirror on 127.0.0.1) and pass it to ``load_idx``.
    """

    name: str
    files: tuple[RemoteFile, RemoteFile, RemoteFile, RemoteFile]
    description: str = ""
    mirrors: tuple[str, ...] = ()
    mirrors_env: str | None = None
    system_dirs: tuple[str, ...] = ()
    use_roots: bool = True
    sizes: tuple[int, int] | None = None  # (train, test) as published
    n_classes: int | None = 10  # None: 1 + the largest label

    def resolved_mirrors(self, mirrors: Sequence[str] | None = None) -> tuple[str, ...]:
        if mirrors is not None:
            return tuple(mirrors)
        env = os.environ.get(self.mirrors_env, "") if self.mirrors_env else ""
        if env.strip():
            return tuple(m.strip() for m in env.split(",") if m.strip())
        return self.mirrors


@dataclass(frozen=True)
class IdxArrays:
    """The parsed arrays of an IDX set (``x_*`` as stored, e.g. uint8 ``[N, 28, 28]``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    location: str  # the folder(s) the files came from


def idx_files(
    *spec: tuple[str, str | None, str | None],
) -> tuple[RemoteFile, RemoteFile, RemoteFile, RemoteFile]:
    """Four RemoteFiles from ``(name, md5, raw_md5)`` triples."""
    a, b, c, d = (RemoteFile(name, md5, raw) for name, md5, raw in spec)
    return a, b, c, d


# MD5s of the .gz files as published (torchvision's) and of their unpacked content.
MNIST = IdxSource(
    name="mnist",
    files=idx_files(
        (
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "6bbc9ace898e44ae57da46a324031adb",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "a25bea736e30d166cdddb491f175f624",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
            "2646ac647ad5339dbf082846283269ea",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    ),
    description="MNIST handwritten digits, 60k train / 10k test (downloaded once, then cached)",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    mirrors_env="ADVISOR_MNIST_MIRRORS",
    sizes=(60_000, 10_000),
)
# Debian recompresses the .gz files (other bytes, same content): its copies pass by raw_md5.
FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    files=idx_files(
        (
            "train-images-idx3-ubyte.gz",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "25c81989df183df01b3e8a0aad5dffbe",
            "9018921c3c673c538a1fc5bad174d6f9",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "bef4ecab320f06d8554ea6380940ec79",
            "8181f5470baa50b63fa0f6fddb340f0a",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "bb300cfdad3c16e7a12a480ee83cd310",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ),
    ),
    description="Zalando Fashion-MNIST clothing images, 60k train / 10k test (MNIST shapes)",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    mirrors_env="ADVISOR_FASHION_MNIST_MIRRORS",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    sizes=(60_000, 10_000),
)
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CACHE_FILE = "parsed-v1.npz"
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_Four = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def idx_dir_source(directory: str | os.PathLike[str]) -> IdxSource:
    """The source ``idx:DIR``: the four standard IDX files in ``directory``, no checksum."""
    folder = Path(directory).expanduser()
    return IdxSource(
        name=f"idx:{directory}",
        files=idx_files(*((f"{stem}.gz", None, None) for stem in IDX_STEMS)),
        description=f"the IDX files in {folder}",
        system_dirs=(str(folder),),
        use_roots=False,
        n_classes=None,
    )


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/advisor`` (default ``~/.cache/advisor``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "advisor"


def data_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Roots searched in order: ``data_dir``, ``$ADVISOR_DATA``, the user cache."""
    roots = [Path(data_dir).expanduser()] if data_dir else []
    if os.environ.get("ADVISOR_DATA"):
        roots.append(Path(os.environ["ADVISOR_DATA"]).expanduser())
    roots.append(cache_root())
    return list(dict.fromkeys(roots))


def search_dirs(source: IdxSource, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for ``source``'s files, in order."""
    roots = [root / source.name for root in data_roots(data_dir)] if source.use_roots else []
    return roots + [Path(d) for d in source.system_dirs]


def first_copies(source: IdxSource, dirs: Sequence[Path]) -> list[Path | None]:
    """The first copy of each file in ``dirs`` (present, not checked), or None."""
    return [find_file(remote, dirs) for remote in source.files]


def read_idx_set(
    source: IdxSource,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    progress: bool | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
) -> IdxArrays:
    """Find (or download), check and parse the four files of ``source``."""
    dirs = search_dirs(source, data_dir)
    cache = cache_root() / source.name / _CACHE_FILE if _cacheable(source) else None
    copies = first_copies(source, dirs)
    if cache is not None:
        cached = _read_cache(cache, _cache_key(source, copies))
        if cached is not None:
            return IdxArrays(*cached, _folders(copies))
    urls = source.resolved_mirrors(mirrors)
    target = dirs[0] if source.use_roots else None
    found = fetch_files(
        source.files,
        dirs,
        label=source.name,
        target=target,
        mirrors=urls,
        download=download,
        hint=_hint(source, target, urls),
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        progress=progress,
    )
    x_train, y_train, x_test, y_test = (parse_idx(content, path) for path, content in found)
    names = [str(path) for path, _ in found]
    check_images_labels(x_train, y_train, names[0], names[1])
    check_images_labels(x_test, y_test, names[2], names[3])
    check_same_features(x_train, x_test, names[0], names[2])
    arrays: _Four = (x_train, y_train, x_test, y_test)
    paths: list[Path | None] = [path for path, _ in found]
    if cache is not None:
        _write_cache(cache, _cache_key(source, paths), arrays)
    return IdxArrays(*arrays, _folders(paths))


def check_images_labels(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    """DataError unless ``x`` is ``[N, ...]`` images and ``y`` is ``[N]`` integer labels >= 0."""
    if x.ndim < 2:
        raise DataError(
            f"{x_name}: images need shape [N, ...] with 2 or more dimensions, got {x.shape}."
        )
    if y.ndim != 1:
        raise DataError(f"{y_name}: labels need shape [N], got {y.shape}.")
    if len(x) != len(y):
        raise DataError(f"{x_name} holds {len(x)} images but {y_name} holds {len(y)} labels.")
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
    )
    if not integral:
        raise DataError(f"{y_name}: labels must be integers, got dtype {y.dtype}.")
    if len(y) and y.min() < 0:
        raise DataError(f"{y_name}: labels must be >= 0, found {y.min()}.")


def check_same_features(
    train: np.ndarray, test: np.ndarray, train_name: str, test_name: str
) -> None:
    """DataError unless train and test images have the same shape."""
    if train.shape[1:] != test.shape[1:]:
        raise DataError(
            f"{train_name} has images of shape {train.shape[1:]} but {test_name} has {test.shape[1:]}."
        )


def _folders(paths: Sequence[Path | None]) -> str:
    return ", ".join(dict.fromkeys(str(p.parent) for p in paths if p is not None))


def _hint(source: IdxSource, target: Path | None, mirrors: Sequence[str]) -> str:
    names = ", ".join(f.name for f in source.files)
    if target is None:
        return f"The folder must hold {names} (each gzipped or not)."
    origin = f" from {mirrors[0]} (or another mirror)" if mirrors else ""
    return (
        f"To place them by hand, download {names}{origin} into {target} "
        f"(or into a folder '{source.name}' under --data-dir or $ADVISOR_DATA); gzipped or not."
    )


# The parsed-array cache: valid while the files it was built from keep path, size and mtime.


def _cacheable(source: IdxSource) -> bool:
    return source.use_roots and all(f.md5 is not None for f in source.files)


def _cache_key(source: IdxSource, paths: Sequence[Path | None]) -> str | None:
    entries: list[list[Any]] = []
    for remote, path in zip(source.files, paths, strict=True):
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        entries.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns, remote.md5])
    return json.dumps(entries)


def _read_cache(cache: Path, key: str | None) -> _Four | None:
    if key is None or not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                return None
            x_train, y_train, x_test, y_test = (saved[name] for name in _ARRAYS)
            return x_train, y_train, x_test, y_test
    except (OSError, ValueError, KeyError, EOFError):
        return None  # an unreadable cache: parse the files again


def _write_cache(cache: Path, key: str | None, arrays: _Four) -> None:
    if key is None:
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".parsed.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as out:
                x_train, y_train, x_test, y_test = arrays
                np.savez(
                    out,
                    key=np.array(key),
                    x_train=x_train,
                    y_train=y_train,
                    x_test=x_test,
                    y_test=y_test,
                )
            os.replace(tmp, cache)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass  # the cache only saves time; a read-only home must not break loading
