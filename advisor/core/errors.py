"""One family of errors. Messages say what was wrong, the value received, and how to fix it.

The CLI turns any :class:`AdvisorError` into one line on stderr and exit code 2, except
:class:`StorageUnavailableError` (the database went away mid-run): exit code 3, "rerun later".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AdvisorError(Exception):
    """Base class of every error advisor raises on purpose (bad input, missing data, ...)."""


class InvalidValueError(AdvisorError, ValueError):
    """A parameter has a value outside what is allowed."""


class UnknownNameError(AdvisorError, KeyError):
    """A name (optimizer, dataset, rule id, ...) that is not known."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class RuleError(AdvisorError):
    """A rule file is malformed: the message names the file, the rule id and the field."""


class DataError(AdvisorError):
    """A dataset is missing, corrupt or fails its checksum."""


class StorageError(AdvisorError):
    """An Optuna storage cannot be reached or refuses the study."""


class StorageUnavailableError(StorageError):
    """The storage went away mid-run and did not come back in time (the CLI exits 3)."""


class TrainingError(AdvisorError):
    """Training could not run (e.g. the model factory cannot be imported)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    """Build the uniform error for an unknown name, listing the choices."""
    choices = sorted(choices)
    return UnknownNameError(
        f"unknown {kind} {name!r}.{did_you_mean(name, choices)} Choose one of: {', '.join(choices)}."
    )
