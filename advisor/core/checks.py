"""Argument checks shared by every layer, each with one message form.

>>> positive_int("epochs", 5)
5
>>> positive_int("epochs", 0)
Traceback (most recent call last):
...
advisor.core.errors.InvalidValueError: epochs must be a positive whole number (1, 2, 3, ...), got 0.
"""

from __future__ import annotations

from typing import overload

from advisor.core.errors import InvalidValueError


@overload
def positive_int(name: str, value: int) -> int: ...
@overload
def positive_int(name: str, value: int | None, *, optional: bool) -> int | None: ...


def positive_int(name: str, value: int | None, *, optional: bool = False) -> int | None:
    """``value`` if it is a whole number >= 1 (``None`` too when ``optional``), else
    :class:`~advisor.core.errors.InvalidValueError` naming ``name`` and the value."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(
            f"{name} must be a positive whole number (1, 2, 3, ...), got {value!r}."
        )
    return value
