"""Storage calls that outlive a database restart: retried with backoff, then one clear error.

A PostgreSQL server that restarts (or a network that drops) breaks every open connection and
refuses new ones for a while. Each call of a database storage is therefore retried, with
exponential backoff (0.5 s doubling to 10 s), for up to ``ADVISOR_STORAGE_RETRY_S`` seconds
(default :data:`DEFAULT_RETRY_S`); the worker says so in one line when it starts waiting and
when the database is back, and goes on where it was. When the database stays away longer,
the call raises :class:`~advisor.core.errors.StorageUnavailableError` (the CLI exits 3 with
one line); every later call of this process fails at once, and rerunning the same command
continues the study (the trials this worker left running are failed and queued again).

Only connection errors are retried (SQLAlchemy's ``OperationalError``/``InterfaceError``,
or a DBAPI error that invalidated its connection), never a refused statement. A write whose
connection broke after its commit may run twice: every write advisor makes is idempotent
(attributes, intermediate values, parameters) or made so here (a trial told twice is
accepted when its stored state is the one asked for), except the creation of a trial, whose
rare duplicate is a trial without an owner that the stale-trial check fails.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from advisor.core.errors import InvalidValueError, StorageUnavailableError
from advisor.core.units import format_duration

#: Environment variable: seconds a worker keeps retrying an unreachable database.
RETRY_ENV = "ADVISOR_STORAGE_RETRY_S"
DEFAULT_RETRY_S = 120.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0

#: Exception classes (by module and name, so that no driver is imported) that mean "the
#: connection is gone", not "the statement was refused".
_CONNECTION_ERRORS = {
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("sqlalchemy.exc", "DisconnectionError"),
    ("psycopg", "OperationalError"),
    ("psycopg.errors", "OperationalError"),
    ("psycopg2", "OperationalError"),
}


def retry_seconds() -> float:
    """``$ADVISOR_STORAGE_RETRY_S`` (seconds, >= 0), else :data:`DEFAULT_RETRY_S`."""
    raw = os.environ.get(RETRY_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_RETRY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InvalidValueError(
            f"{RETRY_ENV} must be a number of seconds >= 0, got {raw!r}. Unset it for the "
            f"default ({DEFAULT_RETRY_S:.0f} s)."
        )
    return value


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database connection is gone.

    >>> is_connection_error(ValueError("no"))
    False
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for cls in type(current).__mro__:
            if (cls.__module__, cls.__name__) in _CONNECTION_ERRORS:
                return True
        if getattr(current, "connection_invalidated", False):
            return True
        current = current.__cause__ or current.__context__
    return False


def _reason(exc: BaseException) -> str:
    """The first line of the innermost message: what the driver said."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    text = str(inner).strip() or type(inner).__name__
    return text.splitlines()[0]


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class LostConnectionFilter(logging.Filter):
    """Drops Optuna's "Caught an error from sqlalchemy ... Falling back to a slower
    alternative" when the error is a lost connection: Optuna takes any OperationalError of
    its trial query for a too-long ``IN`` list, and the retry here reports the connection
    loss in one line of its own.

    >>> f = LostConnectionFilter()
    >>> def record(msg: str) -> logging.LogRecord:
    ...     return logging.LogRecord("optuna", logging.WARNING, "", 0, msg, None, None)
    >>> f.filter(record("Caught an error from sqlalchemy: terminating connection. Falling back"))
    False
    >>> f.filter(record("Caught an error from sqlalchemy: too many SQL variables. Falling back"))
    True
    """

    _LOST = ("connection", "AdminShutdown", "server closed", "could not connect")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith("Caught an error from sqlalchemy"):
            return True
        return not any(word in text for word in self._LOST)


def quiet_lost_connections() -> None:
    """Install :class:`LostConnectionFilter` on Optuna's RDB storage logger (once)."""
    logger = logging.getLogger("optuna.storages._rdb.storage")
    if not any(isinstance(f, LostConnectionFilter) for f in logger.filters):
        logger.addFilter(LostConnectionFilter())


class RetryingStorage:
    """An Optuna storage whose calls are retried while its database is unreachable.

    It stands in for the storage it wraps (``optuna.load_study(storage=...)`` takes it):
    every method is looked up on ``inner`` and wrapped.
    """

    def __init__(
        self,
        inner: Any,
        display: str,
        *,
        retry_s: float,
        warn: Callable[[str], None] = _stderr,
        sleep: Callable[[float], None] = time.sleep,
        mask: Callable[[str], str] = lambda s: s,
    ) -> None:
        self._inner = inner
        self._display = display
        self._retry_s = retry_s
        self._warn = warn
        self._sleep = sleep
        self._mask = mask
        self._gone: str | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, attr, args, kwargs)

        return call

    def _call(self, name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        import optuna

        if self._gone is not None:
            raise StorageUnavailableError(self._gone)
        start = time.monotonic()
        delay = FIRST_DELAY_S
        attempt = 0
        while True:
            try:
                result = fn(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if attempt and name == "set_trial_state_values" and self._was_told(args, kwargs):
                    return True  # the first attempt committed before its connection broke
                raise
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                waited = time.monotonic() - start
                reason = self._mask(_reason(exc))
                if waited >= self._retry_s:
                    self._gone = (
                        f"lost the storage {self._display} ({reason}); gave up after "
                        f"{format_duration(waited)} of retries. Finished trials are saved in it: "
                        f"rerun the same command when it is back (or wait longer with {RETRY_ENV})."
                    )
                    raise StorageUnavailableError(self._gone) from exc
                if attempt == 0:
                    self._warn(
                        f"advisor: the storage {self._display} is unreachable ({reason}); "
                        f"retrying for up to {format_duration(self._retry_s)}"
                    )
                self._sleep(min(delay, max(self._retry_s - waited, 0.0)))
                delay = min(delay * 2, MAX_DELAY_S)
                attempt += 1
                continue
            if attempt:
                self._warn(
                    f"advisor: the storage {self._display} is back after "
                    f"{time.monotonic() - start:.1f} s; continuing"
                )
            return result

    def _was_told(self, args: Any, kwargs: Any) -> bool:
        """True when the trial of a ``set_trial_state_values`` call already has that state."""
        trial_id = kwargs.get("trial_id", args[0] if args else None)
        state = kwargs.get("state", args[1] if len(args) > 1 else None)
        try:
            return bool(self._inner.get_trial(trial_id).state == state)
        except Exception:
            return False
