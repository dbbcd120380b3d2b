"""Optuna storages: a local journal file by default, any Optuna URL (``postgresql://...``) to share.

Also the bookkeeping that ask-and-tell needs and Optuna's heartbeats do not give it
(heartbeats only run inside ``study.optimize``): every running trial records its worker
and a heartbeat timestamp, and a starting worker fails the trials of dead workers.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.errors import StorageError
from advisor.tuning import journal, reconnect, schema

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

#: A running trial whose heartbeat is older than this is stale (seconds).
DEFAULT_GRACE_S = 300.0
#: A running trial that names no worker this long after it started was orphaned at birth.
NO_OWNER_GRACE_S = 30.0

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@]*:)(?P<pw>[^@/]*)(?P<at>@)")


def mask_url(url: str | None) -> str | None:
    """Hide the password of a storage URL: ``postgresql://u:***@host/db``.

    >>> mask_url("postgresql://alice:s3cret@db.example:5432/optuna")
    'postgresql://alice:***@db.example:5432/optuna'
    """
    if url is None:
        return None
    return _PASSWORD.sub(r"\g<head>***\g<at>", url)


def _password(url: str) -> str | None:
    m = _PASSWORD.search(url)
    return m.group("pw") if m and m.group("pw") else None


def _mask_text(text: str, *, password: str | None) -> str:
    """``text`` with any URL password masked, and the password itself wherever it appears."""
    text = mask_url(text) or ""
    return text.replace(password, "***") if password else text


def worker_id() -> str:
    """``host:pid:random`` — unique per process, and tells whether the process is still alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def open_storage(url: str | None, default_path: Path) -> tuple[Any, str]:
    """Open an Optuna storage; return ``(storage, display_name)`` (the name has no password).

    ``url`` None → a journal file at ``default_path`` (safe for several local processes);
    ``journal:PATH`` or a path ending in ``.journal`` → a journal file there; anything else is
    handed to Optuna's RDB storage (``sqlite:///f.db``, ``postgresql://user:pw@host/db``),
    whose calls outlive a database restart (:mod:`advisor.tuning.reconnect`).
    """
    import optuna

    if url is None or url.startswith("journal:") or url.endswith(".journal"):
        path = default_path if url is None else Path(url.removeprefix("journal:"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a"):
                pass
        except OSError as exc:
            raise StorageError(
                f"cannot write the study file {str(path)!r}: {exc.strerror or exc}. "
                "Choose a writable folder with --out, or pass --storage."
            ) from exc
        return _journal_storage(path), f"journal:{path}"
    display = mask_url(url) or ""
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(("postgresql", "postgres")):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
    retry_s = reconnect.retry_seconds()
    reconnect.quiet_lost_connections()
    try:
        storage = _rdb_storage(url, engine_kwargs)
    except ImportError as exc:
        raise StorageError(
            f"the storage {display} needs a database driver that is not installed ({exc}). "
            "For PostgreSQL: pip install 'advisor[postgres]'."
        ) from exc
    except Exception as exc:  # sqlalchemy raises many kinds; the first line says what happened
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(
            f"cannot open the storage {display}: {mask_url(reason)}. "
            "Check the host, port, user, password and database name in --storage."
        ) from exc
    cached = optuna.storages.get_storage(storage)  # Optuna's cache of finished trials
    masked = functools.partial(_mask_text, password=_password(url))
    return reconnect.RetryingStorage(cached, display, retry_s=retry_s, mask=masked), display


def _journal_storage(path: Path) -> Any:
    """The journal at ``path``, its torn or garbled tail repaired first (:mod:`.journal`)."""
    import optuna

    try:
        journal.repair_tail(path)
        return optuna.storages.JournalStorage(journal.journal_backend(path))
    except OSError as exc:
        raise StorageError(
            f"cannot read the study file {str(path)!r}: {exc.strerror or exc}. "
            "Check its permissions, or pass another --out or --storage."
        ) from exc
    except ValueError:  # a damaged record before the last one: Optuna cannot replay past it
        if not journal.repair_all(path):
            raise
    return optuna.storages.JournalStorage(journal.journal_backend(path))


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> Any:
    """Optuna's RDB storage; retried when workers starting together race to create the tables."""
    import optuna

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception as exc:  # an IntegrityError from CREATE TABLE run by two workers at once
            text = str(exc)
            if attempt == 4 or ("duplicate key" not in text and "already exists" not in text):
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def touch_heartbeat(study: optuna.Study, trial_id: int) -> None:
    """Record that the trial's worker is alive now."""
    study._storage.set_trial_user_attr(trial_id, schema.HEARTBEAT, time.time())


def _pid_alive(worker: str) -> bool | None:
    """True/False when ``worker`` ran on this host (its pid can be checked), else None."""
    try:
        host, pid, _ = worker.split(":")
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def fail_and_requeue(
    study: optuna.Study, trial: FrozenTrial, reason: str, *, retry: bool = True
) -> bool:
    """Fail a running trial as interrupted, with ``reason``; with ``retry``, queue its work again.

    The retry keeps the parameters and what identifies the work (:data:`schema.RETRY_ATTRS`, e.g.
    the seed of a finalist run). False when another worker finished the trial first.
    """
    import optuna
    from optuna.trial import TrialState

    try:
        study._storage.set_trial_user_attr(trial._trial_id, schema.STATUS, schema.INTERRUPTED)
        study._storage.set_trial_user_attr(trial._trial_id, schema.REASON, reason)
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if retry:
        attrs = {k: v for k, v in trial.user_attrs.items() if k in schema.RETRY_ATTRS}
        study.enqueue_trial(trial.params, user_attrs={**attrs, schema.RETRY_OF: trial.number})
    return True


def fail_stale_trials(
    study: optuna.Study, *, grace_s: float = DEFAULT_GRACE_S, retry: bool = True
) -> list[int]:
    """Fail RUNNING trials whose worker is gone; return their numbers.

    A trial is stale when its worker ran on this host and the process no longer exists, or
    when its heartbeat is older than ``grace_s``. With ``retry``, their parameters are queued
    again (once), so an interrupted trial is retried rather than lost; without, the caller
    queues what is still needed itself (the finalist stage does).
    """
    from optuna.trial import TrialState

    now = time.time()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(schema.WORKER)
        started = t.datetime_start.timestamp() if t.datetime_start else now
        beat = float(t.user_attrs.get(schema.HEARTBEAT, started))
        alive = _pid_alive(worker) if isinstance(worker, str) else None
        orphan = worker is None and now - started > min(NO_OWNER_GRACE_S, grace_s)
        stale = alive is False or orphan or (alive is None and now - beat > grace_s)
        # a retry that dies again is not retried
        again = retry and schema.RETRY_OF not in t.user_attrs
        if stale and fail_and_requeue(study, t, "its worker stopped", retry=again):
            failed.append(t.number)
    return failed
