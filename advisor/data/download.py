"""Fetch published files from mirrors: retries with backoff, MD5 check, atomic rename, progress.

A file is streamed into a temporary file beside its final name, checked, then moved into
place with :func:`os.replace`, so an interrupted or corrupt download never leaves a file at
the final name. Mirrors are tried in turn; a mirror that answers 4xx or serves a file with
the wrong checksum is left at once, a dropped connection or a 5xx is retried with
exponential backoff first.

>>> RemoteFile("t10k-labels-idx1-ubyte.gz", md5="ec29112dd5afa0611ce80d1b7f02629c").url(
...     "https://ossci-datasets.s3.amazonaws.com/mnist")
'https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz'
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click

from advisor.core.errors import DataError

_CHUNK = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name on the mirrors and on disk, and the checksums that identify it.

    ``md5`` is the MD5 of the file as published (``None``: not checked). ``raw_md5`` is the MD5
    of its gunzipped content; a copy stored unpacked or recompressed (as Debian does) is
    accepted when its content matches it.
    """

    name: str
    md5: str | None = None
    raw_md5: str | None = None

    def url(self, mirror: str) -> str:
        return mirror.rstrip("/") + "/" + self.name


def unpack(data: bytes, source: str | os.PathLike[str]) -> bytes:
    """``data`` gunzipped when it starts with the gzip magic number, else unchanged.

    A truncated or corrupt gzip stream is a DataError naming ``source``.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except EOFError as exc:
        raise DataError(
            f"{source}: truncated gzip stream ({len(data)} bytes; {exc}). "
            "The file is incomplete: delete it and fetch it again."
        ) from exc
    except (OSError, zlib.error) as exc:
        raise DataError(
            f"{source}: corrupt gzip stream ({exc}). Delete the file and fetch it again."
        ) from exc


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_file(path: str | os.PathLike[str]) -> str:
    """MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_problem(remote: RemoteFile, data: bytes, *, got: str | None = None) -> str | None:
    """``None`` when ``data`` is ``remote`` (see :class:`RemoteFile`), else what is wrong.

    ``got`` is the MD5 of ``data`` when the caller already has it.
    """
    if remote.md5 is None:
        return None
    got = got or md5_hex(data)
    if got == remote.md5:
        return None
    if remote.raw_md5 is not None:
        with contextlib.suppress(DataError):
            if md5_hex(unpack(data, remote.name)) == remote.raw_md5:
                return None
    unpacked = f" (or {remote.raw_md5} for its unpacked content)" if remote.raw_md5 else ""
    return f"checksum mismatch for {remote.name}: MD5 {got}, expected {remote.md5}{unpacked}"


def read_verified(path: str | os.PathLike[str], remote: RemoteFile) -> bytes:
    """The unpacked content of ``path``, after checking it is ``remote`` (DataError otherwise)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc}).") from exc
    problem = checksum_problem(remote, data)
    if problem is not None:
        raise DataError(f"{path}: {problem}.")
    return unpack(data, path)


class _Transient(Exception):
    """Worth retrying on the same mirror (dropped connection, timeout, 5xx)."""


class _NextMirror(Exception):
    """This mirror cannot serve the file (4xx, wrong checksum, bad URL)."""


class _Unreachable(_NextMirror):
    """This mirror cannot serve any file (unknown host, connection refused)."""


def download_file(
    remote: RemoteFile,
    mirrors: Sequence[str],
    dest_dir: str | os.PathLike[str],
    *,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    progress: bool | None = None,
    unreachable: set[str] | None = None,
) -> Path:
    """Download ``remote`` from the first mirror that serves it intact; return its final path.

    Each mirror gets up to ``retries`` attempts for transient faults, waiting ``backoff``,
    ``2 * backoff``, ... seconds between them. ``progress``: a bar on stderr (default: when
    stderr is a terminal). ``unreachable``: mirrors to skip (unknown host, connection
    refused), updated by this call so that the next file does not try them again. Raises
    DataError listing every URL tried and why it failed.
    """
    dest = Path(dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the folder {dest} for {remote.name} ({exc.strerror or exc})."
        ) from exc
    show = sys.stderr.isatty() if progress is None else progress
    retries = max(1, retries)
    skip = unreachable if unreachable is not None else set()
    failures: list[str] = []
    for mirror in mirrors:
        if mirror in skip:
            continue
        url = remote.url(mirror)
        for attempt in range(1, retries + 1):
            if attempt > 1:
                time.sleep(backoff * 2 ** (attempt - 2))
            try:
                return _fetch(url, remote, dest, timeout=timeout, show=show)
            except _Unreachable as exc:
                skip.add(mirror)
                failures.append(f"{url}: {exc}")
                break
            except _NextMirror as exc:
                failures.append(f"{url}: {exc}")
                break
            except _Transient as exc:
                failures.append(f"{url}: {exc} (attempt {attempt}/{retries})")
    if not failures:
        failures.append("no reachable mirror left" if mirrors else "no mirror given")
    raise DataError(f"could not download {remote.name}: {'; '.join(failures)}.")


def _fetch(url: str, remote: RemoteFile, dest: Path, *, timeout: float, show: bool) -> Path:
    final = dest / remote.name
    fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{remote.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got = _stream(url, out, remote.name, timeout=timeout, show=show)
        if remote.md5 is not None and got != remote.md5:
            problem = checksum_problem(remote, tmp.read_bytes(), got=got)
            if problem is not None:
                raise _NextMirror(problem)
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def _stream(url: str, out: IO[bytes], name: str, *, timeout: float, show: bool) -> str:
    """Copy ``url`` into ``out``; return the MD5 of what was received."""
    request = urllib.request.Request(url, headers={"User-Agent": "advisor (dataset download)"})
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    total: int | None = None
    try:
        response: http.client.HTTPResponse
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress(name, url, total, show) as advance:
                while chunk := response.read(_CHUNK):
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise DataError(f"cannot write {name} ({exc.strerror or exc}).") from exc
                    digest.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
    except urllib.error.HTTPError as exc:
        transient = exc.code >= 500 or exc.code in (408, 429)
        raise (_Transient if transient else _NextMirror)(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
            raise _Unreachable(f"unreachable ({reason})") from exc
        raise _Transient(f"network error ({reason})") from exc
    except ValueError as exc:  # not a URL urllib can open
        raise _NextMirror(f"bad URL ({exc})") from exc
    except (OSError, http.client.HTTPException) as exc:  # resets, timeouts, incomplete reads
        raise _Transient(f"network error ({type(exc).__name__}: {exc})") from exc
    if total is not None and received != total:
        raise _Transient(f"connection dropped after {received} of {total} bytes")
    return digest.hexdigest()


@contextlib.contextmanager
def _progress(
    name: str, url: str, total: int | None, show: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (click's on a terminal, one line per file otherwise)."""
    if not show:
        yield lambda n: None
        return

    start = time.perf_counter()
    if total is not None and sys.stderr.isatty():
        with click.progressbar(length=total, label=f"downloading {name}", file=sys.stderr) as bar:
            yield bar.update
        return
    done = [0]

    def advance(n: int) -> None:
        done[0] += n

    click.echo(f"downloading {name} from {url} ...", err=True)
    yield advance
    seconds = time.perf_counter() - start
    click.echo(f"  {name}: {done[0] / 1e6:.1f} MB in {seconds:.1f} s", err=True)


def name_variants(name: str) -> tuple[str, ...]:
    """Names a published file may have on disk: as published, unpacked, MNIST-mirror dotted.

    >>> name_variants("t10k-labels-idx1-ubyte.gz")
    ('t10k-labels-idx1-ubyte.gz', 't10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte.gz', 't10k-labels.idx1-ubyte')
    """
    base = name.removesuffix(".gz")
    dotted = base.replace("-idx", ".idx", 1)
    variants = (base + ".gz", base, dotted + ".gz", dotted)
    return tuple(dict.fromkeys((name,) + variants))


def find_file(remote: RemoteFile, dirs: Sequence[Path]) -> Path | None:
    """The first existing copy of ``remote`` in ``dirs`` (not checked)."""
    for directory in dirs:
        for variant in name_variants(remote.name):
            path = directory / variant
            if path.is_file():
                return path
    return None


def fetch_files(
    files: Sequence[RemoteFile],
    dirs: Sequence[Path],
    *,
    label: str,
    target: Path | None,
    mirrors: Sequence[str],
    download: bool,
    hint: str,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    progress: bool | None = None,
) -> list[tuple[Path, bytes]]:
    """``(path, unpacked content)`` of each of ``files``, found in ``dirs`` or downloaded.

    Each file is taken from the first copy in ``dirs`` that passes its checksum; copies that
    fail are skipped. Missing files are downloaded into ``target`` when ``download``
    (replacing a corrupt copy there). Failure is one DataError naming ``label``, the missing
    files, where they were looked for, the URLs tried, and ``hint`` (how to place them by hand).
    """
    found: dict[str, tuple[Path, bytes]] = {}
    rejected: dict[str, list[str]] = {remote.name: [] for remote in files}
    for remote in files:
        for directory in dirs:
            path = find_file(remote, [directory])
            if path is None:
                continue
            try:
                found[remote.name] = (path, read_verified(path, remote))
                break
            except DataError as exc:
                rejected[remote.name].append(str(exc).rstrip("."))
    missing = [remote for remote in files if remote.name not in found]
    failures: list[str] = []
    if missing and download and mirrors and target is not None:
        unreachable: set[str] = set()
        for remote in missing:
            try:
                path = download_file(
                    remote,
                    mirrors,
                    target,
                    retries=retries,
                    backoff=backoff,
                    timeout=timeout,
                    progress=progress,
                    unreachable=unreachable,
                )
                found[remote.name] = (path, read_verified(path, remote))
            except DataError as exc:
                failures.append(str(exc).rstrip("."))
        missing = [remote for remote in files if remote.name not in found]
    if missing:
        names = ", ".join(remote.name for remote in missing)
        where = ", ".join(str(d) for d in dirs) or "nowhere"
        bad = [problem for remote in missing for problem in rejected[remote.name]]
        parts = [
            f"{label}: {len(missing)} of {len(files)} files missing ({names}); looked in {where}"
        ]
        if bad:
            parts.append("Rejected: " + "; ".join(bad))
        if not download:
            parts.append("Downloading is off (download=False)")
        elif not mirrors:
            parts.append("No mirror to download from")
        else:
            parts.append("Download failed: " + "; ".join(failures))
        raise DataError(". ".join(parts) + ". " + hint)
    return [found[remote.name] for remote in files]
