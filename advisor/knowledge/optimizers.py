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
- ``weight_decay`` — L2 penalty (decoupled for ``adamw`` and the newer methods);
- ``d_coef`` — Prodigy's one knob: a factor on the step size it estimates itself.

Most classes are ``torch.optim``'s; ``schedulefree``, ``prodigyopt`` and ``lion_pytorch``
(default dependencies) provide the others. Muon takes only hidden 2-D weights: its entry
names an ``aux`` optimizer (AdamW) for the rest, and :func:`create_optimizers` builds both
from a :class:`~advisor.knowledge.layout.ParamLayout`.

>>> get_optimizer_info("nesterov").torch_class
'SGD'
>>> torch_line("adam", {"lr": 0.003, "beta1": 0.9})
'torch.optim.Adam(params, lr=0.003, betas=(0.9, 0.999))'
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from advisor.core.errors import InvalidValueError, TrainingError, unknown_name
from advisor.knowledge.layout import ParamLayout
from advisor.knowledge.snippets import call_text, muon_snippet, package_snippet

if TYPE_CHECKING:
    import torch

#: Hyperparameter names the registry understands (canonical, torch-independent).
HYPERPARAMETERS = ("lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "d_coef")
#: Bytes per fp32 number.
FLOAT_BYTES = 4
#: Bytes per number in each training precision: weights, gradients and optimizer state
#: all fp32, or all bf16 (pure bf16 training, as with bf16 weights and Adafactor).
PRECISION_BYTES = MappingProxyType({"fp32": 4, "bf16": 2})


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
    (SGD 0, momentum 1, Adam 2, L-BFGS ``2 * history_size`` flat vectors plus a few); for
    a ``factored`` optimizer (Adafactor) it holds for vectors only, matrices keeping one
    row and one column per matrix; an optimizer with ``param_shapes="2d"`` (Muon) keeps it
    for hidden matrices and leaves every other tensor to ``aux`` (see :meth:`state_numbers`).
    ``module`` is where ``torch_class`` lives; ``schedules`` (when not empty) are the only
    learning-rate schedules it is trained with.
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
    module: str = "torch.optim"
    factored: bool = False  # second moment factored over the last two dimensions
    aux: str | None = None  # the optimizer for the tensors ``param_shapes`` excludes
    schedules: tuple[str, ...] = ()

    @property
    def has_momentum(self) -> bool:
        return self.momentum_name is not None

    @property
    def knob(self) -> str:
        """The hyperparameter tuned first: ``lr``, or ``d_coef`` for a learning-rate-free one."""
        return "d_coef" if self.lr_free else "lr"

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """The canonical hyperparameters this optimizer takes, in display order."""
        names = ["lr"]
        if self.momentum_name:
            names.append(self.momentum_name)
        names += [n for n in ("beta2", "eps", "d_coef") if n in self.defaults]
        if not self.full_batch:  # torch's L-BFGS takes no weight decay
            names.append("weight_decay")
        return tuple(names)

    def state_numbers(self, shape: tuple[int, ...], hidden: bool = False) -> int:
        """Numbers of optimizer state kept for one parameter tensor of ``shape``.

        >>> get_optimizer_info("adafactor").state_numbers((1024, 1024))  # one row, one column
        2048
        >>> get_optimizer_info("muon").state_numbers((10, 128)), get_optimizer_info("muon").state_numbers((128, 128), hidden=True)
        (2560, 16384)
        """
        size = 1
        for n in shape:
            size *= n
        if self.param_shapes == "2d" and not (hidden and len(shape) == 2):
            return get_optimizer_info(self.aux or "adamw").state_numbers(shape)
        if self.factored and len(shape) >= 2:
            return size // shape[-1] + size // shape[-2]
        return int(self.state_tensors * size)

    def state_bytes(self, layout: ParamLayout, bytes_per_number: int = FLOAT_BYTES) -> int:
        """Bytes of optimizer state for every tensor of ``layout``."""
        numbers = sum(self.state_numbers(p.shape, p.hidden) * p.copies for p in layout.params)
        return int(numbers * bytes_per_number)

    def memory_bytes(
        self,
        params: int,
        layout: ParamLayout | None = None,
        bytes_per_number: int = FLOAT_BYTES,
    ) -> int:
        """Training memory for weights, gradients and optimizer state, in bytes.

        Without a ``layout`` the ``params`` sit in the assumed layout
        (:meth:`ParamLayout.assumed`: 1024-square matrices, none of them hidden).
        """
        layout = layout if layout is not None else ParamLayout.assumed(params)
        return int(2 * params * bytes_per_number) + self.state_bytes(layout, bytes_per_number)

    def torch_kwargs(self, hyperparameters: Mapping[str, float]) -> dict[str, Any]:
        """Map canonical hyperparameters to the keyword arguments of the torch class."""
        hp = self.resolve(hyperparameters)
        kwargs: dict[str, Any] = {"lr": hp["lr"]}
        if self.momentum_name == "momentum":
            kwargs["momentum"] = hp["momentum"]
        elif self.momentum_name == "beta1":
            kwargs["betas"] = (hp["beta1"], hp["beta2"])
        for name in ("eps", "d_coef"):  # the class's default: keep the line short
            if name in hp and hp[name] != self.defaults[name]:
                kwargs[name] = hp[name]
        if "weight_decay" in hp and (hp["weight_decay"] or "weight_decay" in self.defaults):
            kwargs["weight_decay"] = hp["weight_decay"]
        kwargs.update(self.fixed)
        return kwargs

    def aux_kwargs(self, hyperparameters: Mapping[str, float]) -> dict[str, Any]:
        """Keyword arguments of the ``aux`` optimizer: the same ``lr`` and weight decay."""
        hp = self.resolve(hyperparameters)
        shared = {"lr": hp["lr"], "weight_decay": hp.get("weight_decay", 0.0)}
        return get_optimizer_info(self.aux or "adamw").torch_kwargs(shared)

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
        OptimizerInfo(
            name="muon",
            torch_class="Muon",
            description="Momentum orthogonalized by Newton-Schulz iterations, for hidden 2-D weights; AdamW (same lr and weight decay) for the rest.",
            paper="Jordan et al. 2024, Muon: An optimizer for hidden layers in neural networks",
            defaults={"lr": 1e-3, "momentum": 0.95, "weight_decay": 0.1},
            search_space={"lr": _LR_ADAM, "momentum": Range(0.8, 0.99)},
            state_tensors=1,  # momentum_buffer (hidden matrices; AdamW's 2 for the rest)
            # Moonshot's scaling: Muon reuses AdamW's learning rate and weight decay, so one
            # lr serves both optimizers (torch/optim/_muon.py, _adjust_lr)
            fixed={"adjust_lr_fn": "match_rms_adamw"},
            momentum_name="momentum",
            decoupled_weight_decay=True,
            family="orthogonal",
            param_shapes="2d",
            aux="adamw",
        ),
        OptimizerInfo(
            name="adafactor",
            torch_class="Adafactor",
            description="Adaptive steps from a second moment factored into row and column averages (sublinear memory); lr is a relative step size.",
            paper="Shazeer & Stern 2018, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
            defaults={"lr": 1e-2},
            search_space={"lr": Range(1e-4, 1e-1, log=True)},
            state_tensors=1,  # vectors; matrices keep a row and a column factor
            decoupled_weight_decay=True,
            family="factored",
            factored=True,
        ),
        OptimizerInfo(
            name="lion",
            torch_class="Lion",
            description="The sign of an interpolation of momentum and gradient: one state tensor; lr 3-10x smaller and weight decay 3-10x larger than AdamW's.",
            paper="Chen et al. 2023, Symbolic Discovery of Optimization Algorithms",
            defaults={"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1},
            search_space={"lr": Range(1e-6, 3e-3, log=True), "beta1": _BETA1},
            state_tensors=1,  # exp_avg
            momentum_name="beta1",
            decoupled_weight_decay=True,
            family="sign",
            module="lion_pytorch",
            # dense ops with a sparse operand (lion_pytorch/lion_pytorch.py, update_fn)
            sparse_gradients=True,
        ),
        OptimizerInfo(
            name="schedulefree",
            torch_class="AdamWScheduleFree",
            description="Schedule-Free AdamW: no learning-rate schedule; gradients at an interpolation of a fast iterate and its average; needs optimizer.train()/eval().",
            paper="Defazio et al. 2024, The Road Less Scheduled",
            defaults={"lr": 2.5e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            search_space={"lr": _LR_ADAM, "beta1": _BETA1},
            state_tensors=2,  # z, exp_avg_sq
            momentum_name="beta1",
            decoupled_weight_decay=True,
            family="adam",
            module="schedulefree",
            train_eval=True,
            schedules=("warmup_constant",),
        ),
        OptimizerInfo(
            name="prodigy",
            torch_class="Prodigy",
            description="Adam whose step size is estimated on the fly (learning-rate-free): keep lr=1, tune d_coef if anything.",
            paper="Mishchenko & Defazio 2023, Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
            defaults={"lr": 1.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "d_coef": 1.0},
            search_space={
                "lr": Range(1.0, 1.0),
                "beta1": _BETA1,
                "d_coef": Range(0.5, 2.0, log=True),
            },
            state_tensors=4,  # s, p0, exp_avg, exp_avg_sq
            momentum_name="beta1",
            decoupled_weight_decay=True,
            family="lr-free",
            module="prodigyopt",
            lr_free=True,
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


def optimizer_class(info: OptimizerInfo) -> type[torch.optim.Optimizer]:
    """The class of ``info`` (``torch.optim`` or a third-party package, imported on demand)."""
    try:
        module = importlib.import_module(info.module)
    except ImportError as exc:
        raise TrainingError(
            f"optimizer {info.name!r} needs the package {info.module!r}, which is not "
            f"installed: pip install {info.module.replace('_', '-')}"
        ) from exc
    cls: type[torch.optim.Optimizer] = getattr(module, info.torch_class)
    return cls


def construct(
    info: OptimizerInfo, params: Iterable[Any], kwargs: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """``info``'s class on ``params``; what its constructor prints is dropped (Prodigy prints
    "Using decoupled weight decay" every time, which would break the progress line)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return optimizer_class(info)(params, **kwargs)


def create_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    hyperparameters: Mapping[str, float] | None = None,
) -> torch.optim.Optimizer:
    """Build the torch optimizer for ``name`` with canonical ``hyperparameters``.

    Muon, which takes hidden 2-D weights only, is two optimizers: use :func:`create_optimizers`.

    >>> import torch
    >>> opt = create_optimizer("nesterov", torch.nn.Linear(2, 1).parameters(), {"lr": 0.1})
    >>> opt.defaults["nesterov"], opt.defaults["momentum"]
    (True, 0.9)
    """
    info = get_optimizer_info(name)
    if info.param_shapes == "2d":
        raise InvalidValueError(
            f"optimizer {info.name!r} takes hidden 2-D weights only and needs {info.aux!r} for "
            "the other parameters: build both with create_optimizers(name, model, "
            "hyperparameters, layout=advisor.train.model_layout(model, x))."
        )
    return construct(info, params, info.torch_kwargs(hyperparameters or {}))


def create_optimizers(
    name: str,
    model: torch.nn.Module,
    hyperparameters: Mapping[str, float] | None = None,
    *,
    layout: ParamLayout | None = None,
) -> list[torch.optim.Optimizer]:
    """The optimizers that train ``model`` with ``name``: one, or Muon plus its ``aux``.

    For Muon, ``layout`` (:func:`advisor.train.model_layout`) says which parameters are
    hidden 2-D weights; a model without any is an error (Muon does not apply to it).
    Without a layout, the split is the one the code printed without a model makes: the
    weights of the ``nn.Linear`` layers between the first and the last are hidden, and a
    model with fewer than three gets the ``aux`` optimizer alone.
    """
    info = get_optimizer_info(name)
    hp = hyperparameters or {}
    params = [p for p in model.parameters() if p.requires_grad]
    if info.param_shapes != "2d":
        return [create_optimizer(name, params, hp)]
    aux = get_optimizer_info(info.aux or "adamw")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if layout is None:
        import torch

        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        generic = {id(m.weight) for m in linears[1:-1]}
        hidden = {n for n, p in named if id(p) in generic}
        if not hidden:
            return [construct(aux, params, info.aux_kwargs(hp))]
    else:
        hidden = set(layout.names("hidden"))
    mine = [p for n, p in named if n in hidden]
    if not mine:
        raise TrainingError(
            f"optimizer {info.name!r} does not apply to this model: it has no hidden 2-D "
            "weight (a linear layer between the input layer and the output head). Use "
            f"{info.aux!r} instead."
        )
    rest = [p for n, p in named if n not in hidden]
    out = [construct(info, mine, info.torch_kwargs(hp))]
    if rest:
        out.append(construct(aux, rest, info.aux_kwargs(hp)))
    return out


def torch_line(
    name: str,
    hyperparameters: Mapping[str, float] | None = None,
    *,
    layout: ParamLayout | None = None,
) -> str:
    """A paste-ready ``torch.optim...`` constructor line for ``name`` with ``hyperparameters``.

    Classes outside ``torch.optim`` come with their import; schedule-free methods with
    their ``train()`` call; Muon is a few lines that split the model (``layout``: the
    measured split; without it, a generic rule). See :mod:`advisor.knowledge.snippets`.
    """
    info = get_optimizer_info(name)
    kwargs = info.torch_kwargs(hyperparameters or {})
    if info.param_shapes == "2d":
        return muon_snippet(kwargs, info.aux_kwargs(hyperparameters or {}), layout)
    if info.module != "torch.optim" or info.train_eval:
        return package_snippet(info.module, info.torch_class, kwargs, info.train_eval)
    return call_text(f"torch.optim.{info.torch_class}", kwargs)
