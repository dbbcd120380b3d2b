"""Test helpers: small IDX sets, files broken on purpose, and a real HTTP mirror on 127.0.0.1.

>>> import tempfile
>>> paths = write_idx_set(tempfile.mkdtemp(), n_train=30, n_test=10)
>>> sorted(paths)
['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte']
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import numpy as np
import pytest

from advisor.data.download import RemoteFile
from advisor.data.idx import IDX_STEMS, IdxSource, idx_files, write_idx

ENV_VARS = ("ADVISOR_DATA", "ADVISOR_MNIST_MIRRORS", "ADVISOR_FASHION_MNIST_MIRRORS")


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the user cache at ``tmp_path/cache``, clear advisor's variables; return the cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return cache / "advisor"


def make_images(n: int, *, seed: int = 0, shape: tuple[int, ...] = (28, 28)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def make_labels(n: int, *, seed: int = 0, n_classes: int = 10) -> np.ndarray:
    """Balanced labels (``n // n_classes`` of each class, the rest spread), shuffled."""
    labels = np.arange(n, dtype=np.uint8) % n_classes
    return np.random.default_rng(seed + 1).permutation(labels)


def write_idx_set(
    folder: str | os.PathLike[str],
    *,
    n_train: int = 100,
    n_test: int = 20,
    compress: bool = True,
    seed: int = 0,
    n_classes: int = 10,
) -> dict[str, Path]:
    """Write the four standard IDX files into ``folder``; return ``{stem: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        IDX_STEMS[0]: make_images(n_train, seed=seed),
        IDX_STEMS[1]: make_labels(n_train, seed=seed, n_classes=n_classes),
        IDX_STEMS[2]: make_images(n_test, seed=seed + 10),
        IDX_STEMS[3]: make_labels(n_test, seed=seed + 10, n_classes=n_classes),
    }
    suffix = ".gz" if compress else ""
    return {stem: write_idx(folder / f"{stem}{suffix}", a) for stem, a in arrays.items()}


def md5_of(path: str | os.PathLike[str]) -> str:
    return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()


def source_for(
    paths: Mapping[str, Path], *, name: str = "tiny", mirrors: tuple[str, ...] = ()
) -> IdxSource:
    """An IdxSource whose checksums are those of ``paths`` (as :func:`write_idx_set` returns)."""
    spec = []
    for stem in IDX_STEMS:
        path = paths[stem]
        raw = hashlib.md5(gzip.decompress(path.read_bytes()), usedforsecurity=False).hexdigest()
        spec.append((path.name, md5_of(path), raw))
    return IdxSource(name=name, files=idx_files(*spec), mirrors=mirrors, n_classes=10)


# --- breaking files on purpose (the content is unpacked, changed, and packed back) ---------


def _rewrite(path: Path, change: bytes) -> None:
    packed = path.read_bytes().startswith(b"\x1f\x8b")
    path.write_bytes(gzip.compress(change, mtime=0) if packed else change)


def _content(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data


def set_magic(path: Path, magic: bytes) -> None:
    """Replace the 4-byte magic number."""
    _rewrite(path, magic + _content(path)[4:])


def set_count(path: Path, count: int) -> None:
    """Change the first size in the header (the number of items)."""
    data = _content(path)
    _rewrite(path, data[:4] + count.to_bytes(4, "big") + data[8:])


def truncate_content(path: Path, keep: int) -> None:
    """Keep only the first ``keep`` bytes of the IDX content (repacked as a valid gzip)."""
    _rewrite(path, _content(path)[:keep])


def append_bytes(path: Path, extra: bytes) -> None:
    _rewrite(path, _content(path) + extra)


def truncate_file(path: Path, keep: int) -> None:
    """Cut the file itself (a ``.gz`` becomes a truncated gzip stream)."""
    path.write_bytes(path.read_bytes()[:keep])


def flip_byte(path: Path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# --- a real HTTP server ----------------------------------------------------------------


class LocalMirror:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``files`` (name -> bytes), with faults.

    ``fail(name, "404" | "500" | "drop", times)`` queues faults for the next requests of a
    file (``times=-1``: always); ``drop`` sends the headers with the full Content-Length,
    half the body, then closes the connection. ``hits`` lists the names requested.
    """

    def __init__(self, files: Mapping[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.hits: list[str] = []
        self._faults: dict[str, list[str]] = {}
        self._always: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def serving(cls, paths: Mapping[str, Path] | list[Path]) -> LocalMirror:
        values = paths.values() if isinstance(paths, Mapping) else paths
        return cls({p.name: p.read_bytes() for p in values})

    def fail(self, name: str, kind: str, times: int = 1) -> None:
        with self._lock:
            if times < 0:
                self._always[name] = kind
            else:
                self._faults.setdefault(name, []).extend([kind] * times)

    def hit_count(self, name: str) -> int:
        return self.hits.count(name)

    @property
    def url(self) -> str:
        assert self._server is not None, "use LocalMirror as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def _next_fault(self, name: str) -> str | None:
        with self._lock:
            self.hits.append(name)
            queued = self._faults.get(name)
            if queued:
                return queued.pop(0)
            return self._always.get(name)

    def __enter__(self) -> LocalMirror:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                fault = mirror._next_fault(name)
                body = mirror.files.get(name)
                if fault in ("404", "500") or body is None:
                    self.send_error(int(fault) if fault in ("404", "500") else 404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    from conftest import free_port

    return f"http://127.0.0.1:{free_port()}/"


def expected_remote(path: Path) -> RemoteFile:
    return RemoteFile(path.name, md5_of(path))
