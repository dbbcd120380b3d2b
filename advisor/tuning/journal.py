"""The local study file: an Optuna journal, locked with ``flock``, repaired after a torn write.

A journal holds one JSON record per line, appended under a lock. A crash or a power loss in
the middle of an append can leave the last line torn (half a record, no newline) or garbled
(zeros; or, with Optuna's own backend, half a record with the next worker's record glued to
it). Optuna then fails on the next read (``JSONDecodeError``) or on the next new trial
(``AttributeError: ... _last_created_trial_id_by_this_process``).

Here, the tail of the file is checked under the lock when the file is opened and before
every append, so that a torn record is never followed by another one:

- a record that lacks only its newline gets it;
- a garbled line that ends with a complete record keeps that record;
- anything else at the end is cut (and appended to ``<file>.damaged``, for the curious).

Each repair prints one warning line on stderr. A write that fails (a full disk) raises
:class:`~advisor.core.errors.StorageUnavailableError` (exit code 3); what it tore is repaired
on the next open. Only the damaged tail is touched: every record
before it, and so every finished trial, stays as it was. A damaged record *before* the last
one (which this backend never writes) is salvaged the same way when it ends with a complete
record, and otherwise stops the open with a :class:`~advisor.core.errors.StorageError`
(cutting it would shift every trial after it).

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "studies.journal"
>>> _ = path.write_bytes(b'{"op_code":0,"study_name":"s"}\\n{"op_code":4,"stu')
>>> repair_tail(path, warn=print)  # doctest: +ELLIPSIS
advisor: warning: the study file .../studies.journal ended in a torn record (17 bytes, as after a crash or power loss), cut (the damaged bytes are kept in ...); every record before it is intact.
True
>>> path.read_bytes()
b'{"op_code":0,"study_name":"s"}\\n'
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from advisor.core.errors import StorageError, StorageUnavailableError

#: How every record of Optuna's journal begins (``json.dumps(..., separators=(",", ":"))``).
RECORD_START = b'{"op_code":'
#: Suffix of the file that keeps what a repair cut.
DAMAGED_SUFFIX = ".damaged"
#: Garbled lines cut from the end at most, in one repair (a longer run is not a torn write).
MAX_TAIL_LINES = 100

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class FlockLock:
    """A journal-file lock held with ``flock``: the kernel releases it when its process dies.

    Optuna's default symlink lock survives a SIGKILL and then blocks every other worker
    for its 30 s grace period (and may be broken while a slow writer still holds it).
    It duck-types Optuna's ``BaseJournalFileLock``.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = str(path) + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def journal_lock(path: str | Path) -> Any:
    """The flock lock where the OS has ``flock``, else Optuna's default (symlink) lock."""
    try:
        import fcntl  # noqa: F401  (POSIX only)
    except ImportError:
        from optuna.storages.journal import JournalFileSymlinkLock

        return JournalFileSymlinkLock(str(path))
    return FlockLock(path)


@contextmanager
def locked(lock: Any) -> Iterator[None]:
    """Hold ``lock`` (``acquire``/``release``) for the block."""
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def is_record(line: bytes) -> bool:
    """True when ``line`` (without its newline) is one complete journal record."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return False
    return isinstance(record, dict) and "op_code" in record


def salvage(line: bytes) -> bytes | None:
    """The complete record that ends a garbled line (a torn record with the next one glued
    to it), or None.

    >>> salvage(b'{"op_code":8,"wor{"op_code":4,"study_id":0}')
    b'{"op_code":4,"study_id":0}'
    >>> salvage(b'\\x00\\x00\\x00') is None
    True
    """
    start = line.find(RECORD_START, 1)
    while start != -1:
        if is_record(line[start:]):
            return line[start:]
        start = line.find(RECORD_START, start + 1)
    return None


def _last_line_start(f: BinaryIO, end: int) -> int:
    """Offset where the line that ends at ``end`` (exclusive of its newline) begins."""
    chunk = 1 << 16
    pos = end
    while pos > 0:
        step = min(chunk, pos)
        f.seek(pos - step)
        found = f.read(step).rfind(b"\n")
        if found != -1:
            return pos - step + found + 1
        pos -= step
    return 0


def _keep(path: Path, data: bytes) -> None:
    """Keep cut bytes beside the journal; best effort (the disk may be what failed)."""
    try:
        with open(str(path) + DAMAGED_SUFFIX, "ab") as out:
            out.write(data + b"\n")
    except OSError:
        pass


def _repair_tail_of(f: BinaryIO, path: Path) -> list[str]:
    """Repair the end of the open journal ``f`` (``r+b``, lock held); say what was done."""
    done: list[str] = []
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return done
    f.seek(size - 1)
    if f.read(1) != b"\n":  # a torn record: no newline
        start = _last_line_start(f, size)
        f.seek(start)
        torn = f.read(size - start)
        if is_record(torn):
            f.seek(size)
            f.write(b"\n")
            done.append("a record without its newline (added)")
            size += 1
        else:
            rescued = salvage(torn)
            _keep(path, torn)
            f.seek(start)
            f.truncate()
            size = start
            if rescued is not None:
                f.write(rescued + b"\n")
                size = start + len(rescued) + 1
                done.append(f"a torn record ({len(torn)} bytes) with a whole one glued on (kept)")
            else:
                done.append(
                    f"a torn record ({len(torn)} bytes, as after a crash or power loss), cut"
                )
    for _ in range(MAX_TAIL_LINES):  # garbled complete lines at the end
        if size == 0:
            break
        start = _last_line_start(f, size - 1)
        f.seek(start)
        line = f.read(size - 1 - start)
        if is_record(line):
            break
        rescued = salvage(line)
        _keep(path, line)
        f.seek(start)
        f.truncate()
        if rescued is not None:
            f.write(rescued + b"\n")
            done.append(f"a garbled record ({len(line)} bytes) ending in a whole one (kept)")
            break
        size = start
        done.append(f"a garbled record ({len(line)} bytes), cut")
    if done:
        f.flush()
        os.fsync(f.fileno())
    return done


def _warning(path: Path, done: list[str]) -> str:
    kept = (
        ""
        if done == ["a record without its newline (added)"]
        else (f" (the damaged bytes are kept in {path}{DAMAGED_SUFFIX})")
    )
    return (
        f"advisor: warning: the study file {path} ended in {' and '.join(done)}{kept}; "
        "every record before it is intact."
    )


def repair_tail(path: str | Path, *, lock: Any = None, warn: Warn = _stderr) -> bool:
    """Repair a torn or garbled end of the journal at ``path`` under ``lock`` (default: its
    flock); warn in one line and return True when something was repaired."""
    path = Path(path)
    with locked(lock or journal_lock(path)), open(path, "r+b") as f:
        done = _repair_tail_of(f, path)
    if done:
        warn(_warning(path, done))
    return bool(done)


def repair_all(path: str | Path, *, lock: Any = None, warn: Warn = _stderr) -> bool:
    """Salvage every garbled record of the journal (a torn record with the next one glued to
    it), then repair its tail; True when something changed.

    A garbled record that holds no whole one, before the last record, raises
    :class:`StorageError`: cutting it would renumber every trial after it.
    """
    path = Path(path)
    with locked(lock or journal_lock(path)):
        data = path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" or a torn record, left to repair_tail
        fixed, changed = [], 0
        for i, line in enumerate(lines):
            if is_record(line):
                fixed.append(line)
                continue
            rescued = salvage(line)
            if rescued is None:
                if all(not is_record(rest) for rest in lines[i:]):
                    break  # a garbled end: repair_tail cuts it
                raise StorageError(
                    f"the study file {path} is damaged at line {i + 1} of {len(lines)}, before "
                    "its last record, so it cannot be cut without losing what follows. Restore "
                    "it from a backup, or move it aside and start a new study."
                )
            _keep(path, line)
            fixed.append(rescued)
            changed += 1
        if changed:
            rest = lines[len(fixed) :]
            body = b"".join(line + b"\n" for line in fixed + rest) + tail
            tmp = path.with_name(path.name + ".repair")
            with open(tmp, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            warn(
                f"advisor: warning: the study file {path} held {changed} torn record(s) with "
                f"the next record glued on; kept the whole records (the torn parts are in "
                f"{path}{DAMAGED_SUFFIX})."
            )
    return repair_tail(path, lock=lock, warn=warn) or bool(changed)


def journal_backend(path: str | Path) -> Any:
    """Optuna's ``JournalFileBackend`` on ``path`` with the flock lock, whose appends first
    repair a torn tail (so a torn record is never followed by another)."""
    from optuna.storages.journal import JournalFileBackend

    lock = journal_lock(path)
    file_path = Path(path)

    class RepairingJournalFileBackend(JournalFileBackend):  # type: ignore[misc]
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            try:
                with locked(lock), open(file_path, "r+b") as f:
                    done = _repair_tail_of(f, file_path)
                    f.seek(0, os.SEEK_END)
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:  # a full disk, a read-only or vanished mount
                raise StorageUnavailableError(
                    f"cannot write the study file {file_path}: {exc.strerror or exc}. Finished "
                    "trials are saved in it: free some space (or fix the mount) and rerun the "
                    "same command."
                ) from exc
            if done:
                _stderr(_warning(file_path, done))

    return RepairingJournalFileBackend(str(path), lock_obj=lock)
