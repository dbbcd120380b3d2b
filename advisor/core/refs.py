"""``"module:name"`` references: how the CLI and the API name a user's function or factory."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from advisor.core.errors import AdvisorError, InvalidValueError


def import_callable(
    ref: str, what: str, error: type[AdvisorError] = InvalidValueError
) -> Callable[..., Any]:
    """The callable ``ref`` (``"module:name"``) names, imported; one readable ``error`` saying
    what is missing when the module does not import or holds no such callable.

    >>> import_callable("math:sqrt", "function")(4.0)
    2.0
    >>> import_callable("math:nope", "loss")
    Traceback (most recent call last):
    ...
    advisor.core.errors.InvalidValueError: 'math' has no callable 'nope' for the loss.
    """
    module_name, attr = ref.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise error(
            f"cannot import the {what} module {module_name!r} ({type(exc).__name__}: {exc}). "
            "Check the name and that it is on PYTHONPATH."
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise error(f"{module_name!r} has no callable {attr!r} for the {what}.")
    return fn  # type: ignore[no-any-return]
