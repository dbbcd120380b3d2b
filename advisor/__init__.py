"""advisor — which optimizer, with which learning rate and momentum, for your PyTorch model?

>>> import advisor
>>> rec = advisor.recommend(advisor.Profile(params="118k", samples="55k", convexity="nonconvex"))
>>> rec.candidates[0].optimizer in advisor.list_optimizers()
True

Names are imported lazily so that ``import advisor`` (and the CLI) start fast: torch and
optuna load only when training or tuning starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    from advisor.bench.speed import run_bench as run_bench
    from advisor.core.errors import AdvisorError as AdvisorError
    from advisor.data.dataset import Dataset as Dataset
    from advisor.data.datasets import list_datasets as list_datasets
    from advisor.data.datasets import load_dataset as load_dataset
    from advisor.data.sources import load_user_data as load_user_data
    from advisor.data.task import Task as Task
    from advisor.knowledge.optimizers import (
        OptimizerInfo as OptimizerInfo,
    )
    from advisor.knowledge.optimizers import (
        Range as Range,
    )
    from advisor.knowledge.optimizers import (
        create_optimizer as create_optimizer,
    )
    from advisor.knowledge.optimizers import (
        get_optimizer_info as get_optimizer_info,
    )
    from advisor.knowledge.optimizers import (
        list_optimizers as list_optimizers,
    )
    from advisor.knowledge.optimizers import (
        torch_line as torch_line,
    )
    from advisor.knowledge.profile import Profile as Profile
    from advisor.knowledge.recommender import (
        Candidate as Candidate,
    )
    from advisor.knowledge.recommender import (
        Recommendation as Recommendation,
    )
    from advisor.knowledge.recommender import (
        recommend as recommend,
    )
    from advisor.knowledge.rules import Rule as Rule
    from advisor.knowledge.rules import load_rules as load_rules
    from advisor.probe.lr_range import lr_range_test as lr_range_test
    from advisor.probe.measure import profile_model as profile_model
    from advisor.probe.model_advice import (
        ModelAdvice as ModelAdvice,
    )
    from advisor.probe.model_advice import (
        recommend_model as recommend_model,
    )
    from advisor.train.models import mnist_mlp as mnist_mlp
    from advisor.tuning.config import TuneConfig as TuneConfig
    from advisor.tuning.objective import ObjectiveError as ObjectiveError
    from advisor.tuning.objective import Trial as Trial
    from advisor.tuning.outputs import write_report as write_report
    from advisor.tuning.readback import load_result as load_result
    from advisor.tuning.result import TuneResult as TuneResult
    from advisor.tuning.tuner import tune as tune

# public name -> module that defines it (module names never equal a public name, so that
# importing a submodule cannot shadow a function of the same name)
_EXPORTS = {
    "AdvisorError": "advisor.core.errors",
    "Profile": "advisor.knowledge.profile",
    "Rule": "advisor.knowledge.rules",
    "load_rules": "advisor.knowledge.rules",
    "recommend": "advisor.knowledge.recommender",
    "Recommendation": "advisor.knowledge.recommender",
    "Candidate": "advisor.knowledge.recommender",
    "OptimizerInfo": "advisor.knowledge.optimizers",
    "Range": "advisor.knowledge.optimizers",
    "get_optimizer_info": "advisor.knowledge.optimizers",
    "list_optimizers": "advisor.knowledge.optimizers",
    "create_optimizer": "advisor.knowledge.optimizers",
    "torch_line": "advisor.knowledge.optimizers",
    "Dataset": "advisor.data.dataset",
    "load_dataset": "advisor.data.datasets",
    "list_datasets": "advisor.data.datasets",
    "load_user_data": "advisor.data.sources",
    "Task": "advisor.data.task",
    "mnist_mlp": "advisor.train.models",
    "tune": "advisor.tuning.tuner",
    "TuneResult": "advisor.tuning.result",
    "load_result": "advisor.tuning.readback",
    "write_report": "advisor.tuning.outputs",
    "TuneConfig": "advisor.tuning.config",
    "Trial": "advisor.tuning.objective",
    "ObjectiveError": "advisor.tuning.objective",
    "recommend_model": "advisor.probe.model_advice",
    "ModelAdvice": "advisor.probe.model_advice",
    "lr_range_test": "advisor.probe.lr_range",
    "run_bench": "advisor.bench.speed",
    "profile_model": "advisor.probe.measure",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'advisor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
