"""Human-friendly sizes: counts (``118k``, ``1.5M``, ``1e9``), durations (``90s``, ``10m``, ``2h``)
and memory (``512MB``, ``8GB``, ``16GiB``).

>>> parse_count("118k"), parse_duration("10m"), parse_bytes("8GB")
(118000, 600.0, 8000000000)
"""

from __future__ import annotations

import math
import re

from advisor.core.errors import InvalidValueError

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_COUNT_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_DURATION_SUFFIX = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_BYTES_SUFFIX = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def _split(text: str | float | int, what: str, example: str) -> tuple[float, str]:
    if isinstance(text, bool):
        raise InvalidValueError(f"{what} must be a number, got {text!r}. Example: {example}.")
    if isinstance(text, (int, float)):
        return float(text), ""
    m = re.fullmatch(_NUMBER + r"\s*([a-zA-Z]*)", str(text).strip().replace("_", ""))
    if not m:
        raise InvalidValueError(f"cannot read {what} {text!r}. Example: {example}.")
    return float(m.group(1)), m.group(2).lower()


def _check_positive(value: float, text: object, what: str, example: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise InvalidValueError(
            f"{what} must be positive and finite, got {text!r}. Example: {example}."
        )


def parse_count(text: str | float | int, what: str = "count") -> int:
    """Parse a count: ``118k`` → 118000, ``1.5M`` → 1500000, ``1e9``; must be positive."""
    example = "118k, 1.5M or 1e9"
    value, suffix = _split(text, what, example)
    if suffix not in _COUNT_SUFFIX:
        raise InvalidValueError(
            f"unknown suffix {suffix!r} in {what} {text!r}. Use k, M or B, e.g. {example}."
        )
    value *= _COUNT_SUFFIX[suffix]
    _check_positive(value, text, what, example)
    return int(round(value))


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """Parse a wall-clock duration in seconds: ``90s``, ``10m``, ``2h``, ``1.5h``; a bare number is seconds."""
    example = "90s, 10m or 2h"
    value, suffix = _split(text, what, example)
    if suffix not in _DURATION_SUFFIX:
        raise InvalidValueError(
            f"unknown unit {suffix!r} in {what} {text!r}. Use s, m or h, e.g. {example}."
        )
    value *= _DURATION_SUFFIX[suffix]
    _check_positive(value, text, what, example)
    return value


def parse_bytes(text: str | float | int, what: str = "memory") -> int:
    """Parse a memory size in bytes: ``8GB`` (10^9), ``16GiB`` (2^30), ``512MB``; a bare number is bytes."""
    example = "8GB, 512MB or 16GiB"
    value, suffix = _split(text, what, example)
    if suffix not in _BYTES_SUFFIX:
        raise InvalidValueError(
            f"unknown unit {suffix!r} in {what} {text!r}. Use MB, GB or GiB, e.g. {example}."
        )
    value *= _BYTES_SUFFIX[suffix]
    _check_positive(value, text, what, example)
    return int(round(value))


def format_count(n: float) -> str:
    """``118282`` → ``'118k'``; ``1e9`` → ``'1B'``."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:g}"


def format_duration(seconds: float) -> str:
    """``75`` → ``'1m15s'``; ``3.2`` → ``'3.2s'``."""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_bytes(n: float) -> str:
    """``8e9`` → ``'8GB'``."""
    for div, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:g}B"
