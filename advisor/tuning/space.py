"""The tuning search space: conditional on the optimizer, sized by the trial budget.

Dimensions grow with the number of trials the budget allows, as the Deep Learning Tuning
Playbook (Google Research, 2023) advises for Adam's hyperparameters: fewer than 10 trials →
the learning rate only (with a cosine schedule: "it's important to have some (non-constant)
schedule"); 10-25 → also momentum / beta1 and the schedule; 25 or more → also weight decay.
A learning-rate-free method (Prodigy) keeps ``lr = 1`` and has its one knob (``d_coef``)
tuned in the learning rate's place; a schedule-free one (``OptimizerInfo.schedules``)
trains with its own schedule (warmup, then constant), not a sampled one.

The first batch is a scrambled Sobol design, stratified over the candidate optimizers and
enqueued into the study (quasi-random search for the first, highly parallel batch); TPE
takes over after it. Optuna's own ``QMCSampler`` cannot do this here: it infers its space
from completed trials and samples conditional parameters at random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from advisor.knowledge.optimizers import WEIGHT_DECAY_RANGE, Range, get_optimizer_info

#: Adam's epsilon and beta2, tuned only with many trials (Tuning Playbook: 25+ trials → epsilon,
#: "substantially more" → beta2). Playbook-style ranges: epsilon spans many decades.
EPS_RANGE = Range(1e-10, 1e-3, log=True)
BETA2_RANGE = Range(0.95, 0.9995)
#: Trial counts from which each extra dimension is tuned.
TRIALS_FOR_MOMENTUM, TRIALS_FOR_WD_EPS, TRIALS_FOR_BETA2 = 10, 25, 100

if TYPE_CHECKING:
    import optuna

#: Schedules searched at each budget level.
_SCHEDULES_SMALL = ("cosine",)
_SCHEDULES = ("constant", "cosine")
_SCHEDULES_LARGE = ("constant", "cosine", "warmup_cosine")


@dataclass(frozen=True)
class SearchSpace:
    """Which optimizers, which hyperparameters and ranges, and why.

    ``ranges[optimizer]`` maps canonical hyperparameter names (``lr``, ``momentum``,
    ``beta1``, ``weight_decay``) to ranges; hyperparameters not listed stay at the
    registry default. Optuna parameter names are ``"<optimizer>.<name>"``.
    """

    optimizers: tuple[str, ...]
    ranges: Mapping[str, Mapping[str, Range]]
    schedules: tuple[str, ...]
    reason: str = ""
    fixed: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Human names of the tuned dimensions, e.g. ``('optimizer', 'lr', 'momentum/beta1')``."""
        dims = ["optimizer"] if len(self.optimizers) > 1 else []
        names = {k for r in self.ranges.values() for k in r}
        dims += [
            n
            for n in ("lr", "d_coef", "momentum", "beta1", "beta2", "eps", "weight_decay")
            if n in names
        ]
        if len(self.schedules) > 1:
            dims.append("schedule")
        return tuple(dims)

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizers": list(self.optimizers),
            "ranges": {
                opt: {name: r.to_dict() for name, r in ranges.items()}
                for opt, ranges in self.ranges.items()
            },
            "fixed": {opt: dict(values) for opt, values in self.fixed.items() if values},
            "schedules": list(self.schedules),
            "dimensions": list(self.dimensions),
            "reason": self.reason,
        }

    def signature(self) -> dict[str, Any]:
        """What must match for a stored study to continue with this space."""
        d = self.to_dict()
        for ranges in d["ranges"].values():
            for r in ranges.values():
                r.pop("source", None)
        d.pop("reason")
        return d

    def schedule_of(self, optimizer: str, params: Mapping[str, Any]) -> str:
        """The schedule a trial with these Optuna ``params`` trains with."""
        own = get_optimizer_info(optimizer).schedules
        if own:
            return own[0]
        return str(params.get("schedule", self.schedules[0]))

    def _sampled_schedules(self, optimizer: str) -> bool:
        return len(self.schedules) > 1 and not get_optimizer_info(optimizer).schedules

    def suggest(self, trial: optuna.Trial) -> tuple[str, dict[str, float], str]:
        """Sample ``(optimizer, hyperparameters, schedule)`` for one trial."""
        optimizer = (
            trial.suggest_categorical("optimizer", list(self.optimizers))
            if len(self.optimizers) > 1
            else self.optimizers[0]
        )
        hp: dict[str, float] = dict(self.fixed.get(str(optimizer), {}))
        for name, r in self.ranges[str(optimizer)].items():
            hp[name] = trial.suggest_float(f"{optimizer}.{name}", r.low, r.high, log=r.log)
        schedule = (
            trial.suggest_categorical("schedule", list(self.schedules))
            if self._sampled_schedules(str(optimizer))
            else self.schedule_of(str(optimizer), {})
        )
        return str(optimizer), hp, str(schedule)

    def initial_design(
        self, n: int, seed: int, counts: Mapping[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """``n`` parameter sets: optimizers in turn, each with its own scrambled Sobol points.

        ``counts`` says how many each optimizer gets (default: as even as ``n`` allows).
        """
        from scipy.stats import qmc

        per_opt = math.ceil(n / len(self.optimizers))
        wanted = dict(counts) if counts is not None else dict.fromkeys(self.optimizers, per_opt)
        points: dict[str, list[dict[str, Any]]] = {}
        for i, opt in enumerate(self.optimizers):
            per_opt = wanted.get(opt, 0)
            names = list(self.ranges[opt])
            sampled = self._sampled_schedules(opt)
            dims = len(names) + (1 if sampled else 0)
            sobol = qmc.Sobol(d=max(dims, 1), scramble=True, seed=seed * 1009 + i)
            # Sobol balance needs a power of two; take the first per_opt of the next one
            u = sobol.random(2 ** math.ceil(math.log2(max(per_opt, 1))))[:per_opt]
            rows = []
            for row in u:
                params: dict[str, Any] = {}
                if len(self.optimizers) > 1:
                    params["optimizer"] = opt
                for j, name in enumerate(names):
                    params[f"{opt}.{name}"] = _from_unit(float(row[j]), self.ranges[opt][name])
                if sampled:
                    k = min(int(row[len(names)] * len(self.schedules)), len(self.schedules) - 1)
                    params["schedule"] = self.schedules[k]
                rows.append(params)
            points[opt] = rows
        design: list[dict[str, Any]] = []
        for j in range(
            max(wanted.values(), default=0)
        ):  # interleaved: a partial batch stays balanced
            for opt in self.optimizers:
                if len(design) < n and j < len(points[opt]):
                    design.append(points[opt][j])
        return design


def _from_unit(u: float, r: Range) -> float:
    if r.log:
        return float(math.exp(math.log(r.low) + u * (math.log(r.high) - math.log(r.low))))
    return float(r.low + u * (r.high - r.low))


def build_space(
    optimizers: Sequence[str],
    lr_ranges: Mapping[str, Range],
    momentum_ranges: Mapping[str, Range],
    expected_trials: int,
    knob_ranges: Mapping[str, Range] | None = None,
) -> SearchSpace:
    """The search space for ``optimizers`` given how many trials the budget allows.

    ``lr_ranges`` / ``momentum_ranges`` / ``knob_ranges`` (``d_coef`` of a
    learning-rate-free method) come from the recommendation (rules may have moved them);
    an optimizer missing from them uses the registry's range.
    """
    n = expected_trials
    tune_momentum = n >= TRIALS_FOR_MOMENTUM
    tune_wd = n >= TRIALS_FOR_WD_EPS
    tune_beta2 = n >= TRIALS_FOR_BETA2
    schedules = (
        _SCHEDULES_LARGE
        if n >= TRIALS_FOR_BETA2
        else _SCHEDULES
        if n >= TRIALS_FOR_MOMENTUM
        else _SCHEDULES_SMALL
    )
    ranges: dict[str, dict[str, Range]] = {}
    fixed: dict[str, dict[str, float]] = {}
    for opt in optimizers:
        info = get_optimizer_info(opt)
        r: dict[str, Range] = {"lr": lr_ranges.get(opt, info.search_space["lr"])}
        if info.knob != "lr":  # learning-rate-free: lr stays 1, its knob takes lr's place
            r[info.knob] = (knob_ranges or {}).get(opt, info.search_space[info.knob])
        if tune_momentum and info.momentum_name:
            r[info.momentum_name] = momentum_ranges.get(opt, info.search_space[info.momentum_name])
        if tune_wd and "weight_decay" in info.hyperparameters:
            r["weight_decay"] = WEIGHT_DECAY_RANGE
        if tune_wd and "eps" in info.hyperparameters:
            r["eps"] = EPS_RANGE
        if tune_beta2 and "beta2" in info.hyperparameters:
            r["beta2"] = BETA2_RANGE
        # a rule may pin a hyperparameter (low == high): a fixed value, not a dimension
        fixed[opt] = {name: rng.low for name, rng in r.items() if rng.low == rng.high}
        ranges[opt] = {name: rng for name, rng in r.items() if rng.low != rng.high}
    if n < 10:
        reason = (
            f"about {n} trials fit the budget: fewer than 10, so only the learning rate is tuned, "
            "with cosine decay (Tuning Playbook)"
        )
    elif n < 25:
        reason = (
            f"about {n} trials fit the budget: 10-25, so the learning rate, momentum/beta1 and "
            "the schedule are tuned (Tuning Playbook)"
        )
    elif n < 100:
        reason = (
            f"about {n} trials fit the budget: 25 or more, so weight decay and Adam's epsilon "
            "are tuned too (Tuning Playbook)"
        )
    else:
        reason = (
            f"about {n} trials fit the budget: substantially more than 25, so Adam's beta2, "
            "epsilon and weight decay are tuned too (Tuning Playbook)"
        )
    return SearchSpace(tuple(optimizers), ranges, schedules, reason, fixed)


def space_from_dict(d: dict[str, Any]) -> SearchSpace:
    """Inverse of :meth:`SearchSpace.to_dict` (for a study resumed from storage)."""
    ranges = {
        opt: {
            name: Range(
                float(r["low"]), float(r["high"]), bool(r["log"]), str(r.get("source", "registry"))
            )
            for name, r in rs.items()
        }
        for opt, rs in d["ranges"].items()
    }
    return SearchSpace(
        optimizers=tuple(d["optimizers"]),
        ranges=ranges,
        schedules=tuple(d["schedules"]),
        reason=str(d.get("reason", "")),
        fixed={
            opt: {k: float(v) for k, v in values.items()}
            for opt, values in d.get("fixed", {}).items()
        },
    )
