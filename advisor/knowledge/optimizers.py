"""The one registry of optimizers: every fact about an optimizer is written here once.

Each entry maps a canonical lowercase name to its ``torch.optim`` class, the keyword
arguments that define the variant (``nesterov=True``), recommended defaults, the default
search space, the optimizer-state memory and the paper. Hyperparameters use canonical
names across the project:

- ``lr`` — learning rate (every optimizer);
- ``momentum`` — heavy-ball / Nesterov momentum (``momentum``, ``nesterov``);
- ``beta1`` — first-moment decay of the Adam family (``betas=(beta1, beta2)`` in torch);
- ``beta2``, ``eps`` — second-moment decay and epsilon of the Adam family (torch's defaults
  unless given; tuned only with large trial budgets, as the Tuning Playbook advises);
- ``weight_decay`` — L2 penalty (decoupled for ``adamw``).

>>> get_optimizer_info("nesterov").torch_class
'SGD'
>>> torch_line("adam", {"lr": 0.003, "beta1": 0.9})
'torch.optim.Adam(params, lr=0.003, betas=(0.9, 0.999))'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from advisor.core.errors import InvalidValueError, unknown_name

if TYPE_CHECKING:
    import torch

#: Hyperparameter names the registry understands (canonical, torch-independent).
HYPERPARAMETERS = ("lr", "momentum", "beta1", "beta2", "eps", "weight_decay")
#: Bytes per fp32 number.
FLOAT_BYTES = 4


@dataclass(frozen=True)
class Range:
    """A search range for one hyperparameter. ``log`` samples log-uniformly.

    ``source`` says where the range came from (``registry``, a rule id, ``lr_range_test``).
    """

    low: float
    high: float
    log: bool = False
    source: str = "registry"

    def __post_init__(self) -> None:
        if not (self.low <= self.high):
            raise InvalidValueError(
                f"a range needs low <= high, got low={self.low}, high={self.high}."
            )
        if self.log and self.low <= 0:
            raise InvalidValueError(f"a log range needs low > 0, got low={self.low}.")

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log, "source": self.source}


@dataclass(frozen=True)
class OptimizerInfo:
    """Everything the project knows about one optimizer.

    ``state_tensors`` counts the extra tensors the optimizer keeps per parameter tensor
    (SGD 0, momentum 1, Adam 2, L-BFGS ``2 * history_size`` flat vectors plus a few).
    """

    name: str
    torch_class: str
    description: str
    paper: str
    defaults: Mapping[str, float]
    search_space: Mapping[str, Range]
    state_tensors: float
    fixed: Mapping[str, Any] = field(default_factory=dict)
    momentum_name: str | None = None  # "momentum", "beta1" or None
    decoupled_weight_decay: bool = False
    population: bool = True  # supported by the vectorized population trainer
    full_batch: bool = False  # needs a closure (L-BFGS)
    family: str = "sgd"  # sgd | adaptive | adam | quasi-newton
    # capability flags: what a caller must know before handing it a model
    param_shapes: str = "any"  # "any", or "2d": matrices only (the rest needs another optimizer)
    sparse_gradients: bool = False  # its torch line runs on sparse gradients, state bounded
    # its update is Adam's: sparse tables can take torch.optim.SparseAdam with its lr, betas, eps
    sparse_adam_tables: bool = False
    train_eval: bool = False  # needs optimizer.train() / optimizer.eval() (schedule-free)
    lr_free: bool = False  # learning-rate-free: ``lr`` is a multiplier, 1.0 by default

    @property
    def has_momentum(self) -> bool:
        return self.momentum_name is not None

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """The canonical hyperparameters this optimizer takes, in display order."""
        names = ["lr"]
        if self.momentum_name:
            names.append(self.momentum_name)
        if self.momentum_name == "beta1":
            names += ["beta2", "eps"]
        if not self.full_batch:  # torch's L-BFGS takes no weight decay
            names.append("weight_decay")
        return tuple(names)

    def memory_bytes(self, params: int) -> int:
        """Training memory for weights, gradients and optimizer state, in bytes (fp32)."""
        return int(params * FLOAT_BYTES * (2 + self.state_tensors))

    def torch_kwargs(self, hyperparameters: Mapping[str, float]) -> dict[str, Any]:
        """Map canonical hyperparameters to the keyword arguments of the torch class."""
        hp = self.resolve(hyperparameters)
        kwargs: dict[str, Any] = {"lr": hp["lr"]}
        if self.momentum_name == "momentum":
            kwargs["momentum"] = hp["momentum"]
        elif self.momentum_name == "beta1":
            kwargs["betas"] = (hp["beta1"], hp["beta2"])
            if hp["eps"] != self.defaults["eps"]:  # torch's default: keep the line short
                kwargs["eps"] = hp["eps"]
        if "weight_decay" in hp and (hp["weight_decay"] or "weight_decay" in self.defaults):
            kwargs["weight_decay"] = hp["weight_decay"]
        kwargs.update(self.fixed)
        return kwargs

    def resolve(self, hyperparameters: Mapping[str, float]) -> dict[str, float]:
        """Defaults overlaid with ``hyperparameters``; unknown names are an error."""
        allowed = set(self.hyperparameters)
        for key in hyperparameters:
            if key not in allowed:
                raise InvalidValueError(
                    f"optimizer {self.name!r} does not take hyperparameter {key!r}; "
                    f"it takes {', '.join(sorted(allowed))}."
                )
        out = {k: float(v) for k, v in self.defaults.items()}
        out.update({k: float(v) for k, v in hyperparameters.items()})
        if "weight_decay" in allowed:
            out.setdefault("weight_decay", 0.0)
        return out


_LR_SGD = Range(1e-3, 1.0, log=True)
_LR_ADAPTIVE = Range(1e-4, 3e-1, log=True)
_LR_ADAM = Range(1e-5, 3e-2, log=True)
_MOMENTUM = Range(0.5, 0.99)
_BETA1 = Range(0.8, 0.99)

#: Default search range for weight decay when tuning adds it.
WEIGHT_DECAY_RANGE = Range(1e-6, 1e-2, log=True)

_REGISTRY: dict[str, OptimizerInfo] = {
    info.name: info
    for info in (
        OptimizerInfo(
            name="sgd",
            torch_class="SGD",
            description="Plain (stochastic) gradient descent: theta -= lr * g.",
            paper="Robbins & Monro 1951, A Stochastic Approximation Method",
            defaults={"lr": 0.05},
            search_space={"lr": _LR_SGD},
            state_tensors=0,
            sparse_gradients=True,  # without weight decay (torch raises with it)
        ),
        OptimizerInfo(
            name="momentum",
            torch_class="SGD",
            description="SGD with heavy-ball momentum: a velocity accumulates past gradients.",
            paper="Polyak 1964, Some methods of speeding up the convergence of iteration methods",
            defaults={"lr": 0.01, "momentum": 0.9},
            search_space={"lr": _LR_SGD, "momentum": _MOMENTUM},
            state_tensors=1,
            momentum_name="momentum",
        ),
        OptimizerInfo(
            name="nesterov",
            torch_class="SGD",
            description="SGD with Nesterov momentum: the step uses the velocity's look-ahead (PyTorch's reformulation).",
            paper="Nesterov 1983, A method for solving the convex programming problem with convergence rate O(1/k^2); Sutskever et al. 2013, On the importance of initialization and momentum in deep learning",
            defaults={"lr": 0.01, "momentum": 0.9},
            search_space={"lr": _LR_SGD, "momentum": _MOMENTUM},
            state_tensors=1,
            fixed={"nesterov": True},
            momentum_name="momentum",
        ),
        OptimizerInfo(
            name="adagrad",
            torch_class="Adagrad",
            description="Per-coordinate step sizes from the sum of squared gradients; suits sparse features.",
            paper="Duchi, Hazan & Singer 2011, Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
            defaults={"lr": 0.01},
            search_space={"lr": _LR_ADAPTIVE},
            state_tensors=1,
            family="adaptive",
            sparse_gradients=True,  # without weight decay (torch raises with it)
        ),
        OptimizerInfo(
            name="rmsprop",
            torch_class="RMSprop",
            description="Per-coordinate step sizes from a moving average of squared gradients.",
            paper="Tieleman & Hinton 2012, Lecture 6e of Neural Networks for Machine Learning (Coursera)",
            defaults={"lr": 1e-3},
            search_space={"lr": Range(1e-5, 1e-2, log=True)},
            state_tensors=1,
            family="adaptive",
        ),
        OptimizerInfo(
            name="adam",
            torch_class="Adam",
            description="Momentum plus RMSprop-style scaling with bias correction; the common default.",
            paper="Kingma & Ba 2015, Adam: A Method for Stochastic Optimization",
            defaults={"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            search_space={"lr": _LR_ADAM, "beta1": _BETA1},
            state_tensors=2,
            momentum_name="beta1",
            family="adam",
            sparse_adam_tables=True,
        ),
        OptimizerInfo(
            name="adamw",
            torch_class="AdamW",
            description="Adam with decoupled weight decay (better regularization than L2 in Adam).",
            paper="Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization",
            defaults={"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
            search_space={"lr": _LR_ADAM, "beta1": _BETA1},
            state_tensors=2,
            momentum_name="beta1",
            decoupled_weight_decay=True,
            family="adam",
            sparse_adam_tables=True,
        ),
        OptimizerInfo(
            name="nadam",
            torch_class="NAdam",
            description="Adam with Nesterov momentum (look-ahead first moment).",
            paper="Dozat 2016, Incorporating Nesterov Momentum into Adam",
            defaults={"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            search_space={"lr": _LR_ADAM, "beta1": _BETA1},
            state_tensors=2,
            momentum_name="beta1",
            family="adam",
            sparse_adam_tables=True,
        ),
        OptimizerInfo(
            name="radam",
            torch_class="RAdam",
            description="Adam with the variance of the adaptive step rectified early on (warmup-free).",
            paper="Liu et al. 2020, On the Variance of the Adaptive Learning Rate and Beyond",
            defaults={"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            search_space={"lr": _LR_ADAM, "beta1": _BETA1},
            state_tensors=2,
            momentum_name="beta1",
            family="adam",
            sparse_adam_tables=True,
        ),
        OptimizerInfo(
            name="lbfgs",
            torch_class="LBFGS",
            description="Limited-memory quasi-Newton with a strong-Wolfe line search; full batch.",
            paper="Liu & Nocedal 1989, On the limited memory BFGS method for large scale optimization",
            defaults={"lr": 1.0},
            search_space={"lr": Range(0.05, 1.0, log=True)},
            state_tensors=2 * 100 + 3,  # history_size=100 pairs (s, y) + direction, old grad, ...
            fixed={"history_size": 100, "line_search_fn": "strong_wolfe"},
            population=False,
            full_batch=True,
            family="quasi-newton",
        ),
    )
}

OPTIMIZERS: Mapping[str, OptimizerInfo] = MappingProxyType(_REGISTRY)


def list_optimizers(
    pattern: str | Iterable[str] = "*", *, population: bool | None = None
) -> list[str]:
    """Canonical names matching ``pattern`` (fnmatch; several patterns allowed), in registry order.

    >>> list_optimizers("*adam")
    ['adam', 'nadam', 'radam']
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return [
        name
        for name, info in _REGISTRY.items()
        if any(fnmatch.fnmatch(name, p) for p in patterns)
        and (population is None or info.population == population)
    ]


def get_optimizer_info(name: str) -> OptimizerInfo:
    """Look an optimizer up by canonical name (case-insensitive); unknown → a clear error."""
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise unknown_name("optimizer", name, _REGISTRY)
    return _REGISTRY[key]


def with_search_space(info: OptimizerInfo, **ranges: Range) -> OptimizerInfo:
    """A copy of ``info`` with some search ranges replaced."""
    return replace(info, search_space={**info.search_space, **ranges})


def create_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    hyperparameters: Mapping[str, float] | None = None,
) -> torch.optim.Optimizer:
    """Build the torch optimizer for ``name`` with canonical ``hyperparameters``.

    >>> import torch
    >>> opt = create_optimizer("nesterov", torch.nn.Linear(2, 1).parameters(), {"lr": 0.1})
    >>> opt.defaults["nesterov"], opt.defaults["momentum"]
    (True, 0.9)
    """
    import torch

    info = get_optimizer_info(name)
    cls = getattr(torch.optim, info.torch_class)
    optimizer: torch.optim.Optimizer = cls(params, **info.torch_kwargs(hyperparameters or {}))
    return optimizer


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return repr(value)


def format_call(callee: str, first: str, kwargs: Mapping[str, Any]) -> str:
    """``callee(first, key=value, ...)`` with numbers as :func:`torch_line` writes them.

    >>> format_call("torch.optim.SparseAdam", "tables", {"lr": 0.01, "betas": (0.9, 0.999)})
    'torch.optim.SparseAdam(tables, lr=0.01, betas=(0.9, 0.999))'
    """
    args = ", ".join([first, *(f"{k}={_fmt(v)}" for k, v in kwargs.items())])
    return f"{callee}({args})"


def torch_line(name: str, hyperparameters: Mapping[str, float] | None = None) -> str:
    """A paste-ready ``torch.optim...`` constructor line for ``name`` with ``hyperparameters``."""
    info = get_optimizer_info(name)
    kwargs = info.torch_kwargs(hyperparameters or {})
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())
    return f"torch.optim.{info.torch_class}(params, {args})"
