"""Learning-rate schedules, as a factor applied to the base learning rate at every step.

Step ``t`` counts optimizer steps from 0 over the whole run (``total`` steps, all epochs):

- ``constant``: 1.
- ``cosine``: ``0.5 * (1 + cos(pi * t / total))``, from 1 at the first step down towards 0
  (it would reach 0 at step ``total``, one past the last).
- ``warmup_cosine``: a linear warmup over the first ``W = ceil(5% of total)`` steps
  (factor ``(t + 1) / W``, reaching 1 at step ``W - 1``), then the cosine decay over the
  remaining ``total - W`` steps. 5% of the steps rather than "one epoch" so that the
  warmup is the same share of the run whatever the number of epochs (Goyal et al. 2017
  warm up for 5 of 90 epochs).
- ``warmup_constant``: the same linear warmup, then 1: for schedule-free methods, whose
  averaging replaces the decay (schedulefree's ``warmup_steps=W`` gives the same steps).

Both trainers use :func:`lr_factor`: the population trainer multiplies each member's base
learning rate by it, the reference trainer passes :func:`lr_lambda` to
``torch.optim.lr_scheduler.LambdaLR`` and steps the scheduler after every optimizer step.

>>> [round(lr_factor("cosine", t, 4), 3) for t in range(4)]
[1.0, 0.854, 0.5, 0.146]
>>> [round(lr_factor("warmup_cosine", t, 40), 3) for t in range(4)]
[0.5, 1.0, 1.0, 0.998]
>>> [lr_factor("warmup_constant", t, 40) for t in (0, 1, 39)]
[0.5, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable

from advisor.core.checks import positive_int
from advisor.core.errors import InvalidValueError, unknown_name

SCHEDULES = ("constant", "cosine", "warmup_cosine", "warmup_constant")
#: Share of the steps spent warming up in ``warmup_cosine``.
WARMUP_FRACTION = 0.05


def check_schedule(schedule: str) -> str:
    """Return ``schedule`` if it is known, else raise an error listing the choices."""
    if schedule not in SCHEDULES:
        raise unknown_name("schedule", str(schedule), SCHEDULES)
    return schedule


def warmup_steps(total_steps: int) -> int:
    """Warmup length of ``warmup_cosine`` and ``warmup_constant`` for ``total_steps`` steps (>= 1)."""
    return max(1, math.ceil(WARMUP_FRACTION * total_steps))


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """The factor on the base learning rate at optimizer step ``step`` (0-based) of ``total_steps``.

    Steps past the end keep the last value of the curve's formula clamped at ``total_steps``.
    """
    check_schedule(schedule)
    positive_int("total_steps", total_steps)
    if step < 0:
        raise InvalidValueError(f"step must be >= 0, got {step}.")
    step = min(step, total_steps)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    warm = warmup_steps(total_steps)
    if step < warm:
        return (step + 1) / warm
    if schedule == "warmup_constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))


def lr_factors(schedule: str, total_steps: int) -> list[float]:
    """:func:`lr_factor` for every step ``0 .. total_steps - 1``."""
    return [lr_factor(schedule, t, total_steps) for t in range(total_steps)]


def lr_lambda(schedule: str, total_steps: int) -> Callable[[int], float]:
    """A function for ``torch.optim.lr_scheduler.LambdaLR`` (stepped once per optimizer step)."""
    check_schedule(schedule)
    table = lr_factors(schedule, total_steps)

    def factor(step: int) -> float:
        return table[step] if step < total_steps else lr_factor(schedule, step, total_steps)

    return factor
