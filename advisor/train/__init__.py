"""Training: the population trainers (K stacked seed MLPs; K copies of any vmappable model)
and the reference trainer.

One entry point, :func:`train_members`, trains a list of :class:`MemberConfig` and returns
one :class:`MemberResult` each; ``on_epoch`` receives an :class:`EpochReport` after every
epoch and may stop members. This package imports torch: import it only to train.
"""

from __future__ import annotations

from advisor.train.func_fit import memory_population, user_population, vmap_problem
from advisor.train.func_population import FuncPopulation
from advisor.train.members import (
    CHECK_EVERY,
    DIVERGENCE_FACTOR,
    EpochReport,
    MemberConfig,
    MemberResult,
)
from advisor.train.population import Population, default_population
from advisor.train.population_loop import (
    FuncPopulationRun,
    PopulationRun,
    train_func_population,
    train_population,
)
from advisor.train.reference import train_reference
from advisor.train.routing import train_members
from advisor.train.schedules import SCHEDULES, lr_factor

__all__ = [
    "CHECK_EVERY",
    "DIVERGENCE_FACTOR",
    "SCHEDULES",
    "EpochReport",
    "FuncPopulation",
    "FuncPopulationRun",
    "MemberConfig",
    "MemberResult",
    "Population",
    "PopulationRun",
    "default_population",
    "lr_factor",
    "memory_population",
    "train_func_population",
    "train_members",
    "train_population",
    "train_reference",
    "user_population",
    "vmap_problem",
]
