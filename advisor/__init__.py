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
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (module names never equal a public name, so that
# importing a submodule cannot shadow a function of the same name)
_EXPORTS = {
    "AdvisorError": "advisor.errors",
    "Profile": "advisor.profile",
    "Rule": "advisor.rules",
    "load_rules": "advisor.rules",
    "recommend": "advisor.recommender",
    "Recommendation": "advisor.recommender",
    "Candidate": "advisor.recommender",
    "OptimizerInfo": "advisor.optimizers",
    "Range": "advisor.optimizers",
    "get_optimizer_info": "advisor.optimizers",
    "list_optimizers": "advisor.optimizers",
    "create_optimizer": "advisor.optimizers",
    "torch_line": "advisor.optimizers",
    "Dataset": "advisor.data",
    "load_dataset": "advisor.data",
    "list_datasets": "advisor.data",
    "mnist_mlp": "advisor.models",
    "tune": "advisor.tuner",
    "TuneResult": "advisor.results",
    "load_result": "advisor.results",
    "run_bench": "advisor.benchmark",
    "profile_model": "advisor.measure",
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
