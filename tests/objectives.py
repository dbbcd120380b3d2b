"""Objectives for the tests (importable as ``objectives:NAME`` by the CLI and by workers)."""

from __future__ import annotations

import math
from typing import Any


def quadratic(trial: Any) -> float:
    """A smooth score of the learning rate, best near 3e-3, reported every epoch."""
    value = 0.0
    for epoch in range(1, trial.epochs + 1):
        value = 1.0 - abs(math.log10(trial.hyperparameters["lr"]) + 2.5) / 5 + 0.01 * epoch
        trial.report(epoch, value)
    return value


def silent(trial: Any) -> float:
    """Never calls ``report``."""
    return 1.0 - abs(math.log10(trial.hyperparameters["lr"]) + 2.5) / 5


def broken(trial: Any) -> float:
    raise RuntimeError("my loop is broken")
