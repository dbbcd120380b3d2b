"""One frozen, validated description of a tuning run: what :func:`advisor.tune` was asked.

:func:`advisor.tune` builds a :class:`TuneConfig` from its keyword arguments (the same
names, the same defaults: a test keeps them equal) and hands it on; a session runs one
worker from it, and ``workers`` hands the same config to every process. Everything that
can be checked without torch, data or a storage is checked here, eagerly.

>>> c = TuneConfig(budget="90s", optimizers=["Adam", "nesterov"], study="demo")
>>> c.budget_s, c.optimizers, c.dataset_name
(90.0, ('adam', 'nesterov'), 'mnist-5k')
>>> TuneConfig(epochs=0)
Traceback (most recent call last):
...
advisor.core.errors.InvalidValueError: epochs must be a positive whole number (1, 2, 3, ...), got 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.checks import positive_int
from advisor.core.errors import InvalidValueError
from advisor.core.units import parse_duration
from advisor.data.dataset import Dataset
from advisor.knowledge.optimizers import get_optimizer_info
from advisor.train.model_ref import model_name

if TYPE_CHECKING:
    from torch import nn

#: Where ``tune`` writes its study file and report when ``out`` is not given.
DEFAULT_OUT = Path("advisor-runs")
#: The study file (an Optuna journal) inside ``out``.
JOURNAL_FILE = "studies.journal"
#: Default wall-clock budgets: the embedded digits are small, the 60k sets are not.
DEFAULT_BUDGET_S = {"mnist-5k": 60.0}
DEFAULT_BUDGET_OTHER_S = 300.0


@dataclass(frozen=True)
class TuneConfig:
    """The arguments of :func:`advisor.tune`, checked and normalized (see its docstring).

    Normalized on creation: ``optimizers`` become registry names (a tuple), ``rules_dirs`` a
    tuple, and a missing ``study`` name is made from the dataset and the time, so that every
    worker of the run shares it.
    """

    dataset: str | Dataset = "mnist-5k"
    model: Callable[[], nn.Module] | str | None = None
    data: Sequence[Any] | None = None
    budget: str | float | None = None
    trials: int | None = None
    epochs: int = 5
    batch_size: int = 128
    population: int | None = None
    candidates: int = 4
    optimizers: Sequence[str] | None = None
    finalists: int = 3
    seeds: int = 5
    device: str = "auto"
    seed: int = 0
    study: str | None = None
    storage: str | None = None
    out: str | Path | None = None
    rules_dirs: Sequence[str | Path] = ()
    data_dir: str | None = None
    workers: int = 1
    threads: int | None = None
    sampler_seed: int | None = None
    probe_lr: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "candidates", "finalists", "seeds", "workers"):
            positive_int(name, getattr(self, name))
        for name in ("trials", "population", "threads"):
            positive_int(name, getattr(self, name), optional=True)
        if self.data is not None and len(self.data) != 4:
            raise InvalidValueError(
                f"data must be (X_train, y_train, X_test, y_test), got {len(self.data)} items."
            )
        if self.workers > 1 and self.model is not None and not isinstance(self.model, str):
            raise InvalidValueError(
                "workers > 1 needs the model as 'module:factory' (a string), so that every "
                "worker process can import it."
            )
        if self.budget is not None:  # a bad budget fails now, not after the data loaded
            parse_duration(self.budget, "budget")
        normalized: dict[str, Any] = {"rules_dirs": tuple(self.rules_dirs)}
        if self.optimizers:
            names = (get_optimizer_info(o).name for o in self.optimizers)
            normalized["optimizers"] = tuple(dict.fromkeys(names))
        if self.study is None:
            normalized["study"] = f"{self.dataset_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    @property
    def dataset_name(self) -> str:
        """``custom`` for arrays, else the dataset's name."""
        if self.data is not None:
            return "custom"
        if isinstance(self.dataset, str):
            return self.dataset
        return getattr(self.dataset, "name", "custom")

    @property
    def budget_s(self) -> float:
        """Wall-clock seconds for the whole run (the default depends on the dataset)."""
        if self.budget is not None:
            return parse_duration(self.budget, "budget")
        return DEFAULT_BUDGET_S.get(self.dataset_name, DEFAULT_BUDGET_OTHER_S)

    @property
    def study_name(self) -> str:
        return str(self.study)

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else DEFAULT_OUT

    @property
    def journal_path(self) -> Path:
        """The study file used when no ``storage`` URL is given."""
        return self.out_dir / JOURNAL_FILE

    @property
    def model_name(self) -> str:
        return model_name(self.model)
