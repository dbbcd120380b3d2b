"""Optimizer updates for a population: torch.optim's update rules, one call for many members.

Members are grouped by *update rule*: the torch class plus the settings that change the
code path (Nesterov or not, momentum or not, decoupled weight decay) and the constants that
are not tuned (``eps``, ``alpha``, ``beta2``, ``momentum_decay``, ...). A group holds a
contiguous range of the population, so its parameters are views with a leading member
dimension ``G`` (``[G, out, in]`` weights, ``[G, out, 1]`` biases); the tuned
hyperparameters (learning rate, momentum / beta1, weight decay) are ``[G, 1, 1]`` tensors.

Each member's hyperparameters are read from ``create_optimizer(name, ...).defaults`` — the
registry's mapping plus torch's own defaults — so no optimizer fact is restated here. The
formulas replicate the single-tensor (CPU default) implementations in ``torch/optim/*.py``
of torch 2.x, in the same order of floating-point operations where that is possible.

On the CPU, SGD (all variants), Adagrad, Adam and AdamW use torch's fused CPU kernels
(``torch._fused_adam_`` ...), called once per member with its own scalars: one pass over
memory instead of five to eight, about 3x faster than the vectorized ops. Elsewhere (CUDA,
where K launches per step would cost more than they save) and for RMSprop, NAdam and RAdam
(no fused kernel), the vectorized ``[G, 1, 1]`` code runs. Muon, Adafactor, Lion,
Schedule-Free AdamW and Prodigy have their groups in :mod:`advisor.train.population_modern`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor

from advisor.core.errors import TrainingError
from advisor.knowledge.optimizers import construct, get_optimizer_info

#: Optimizer classes the population trainer implements (torch.optim's and the packages').
SUPPORTED_CLASSES = (
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "NAdam",
    "RAdam",
    "Muon",
    "Adafactor",
    "Lion",
    "AdamWScheduleFree",
    "Prodigy",
)
_FUSED_CLASSES = ("SGD", "Adagrad", "Adam", "AdamW")
# Settings that must keep their default for the population trainer to be exact.
_UNSUPPORTED = {
    "maximize": False,
    "amsgrad": False,
    "centered": False,
    "differentiable": False,
    "use_bias_correction": False,  # Prodigy
    "safeguard_warmup": False,
    "slice_p": 1,
    "decouple": True,
    "fsdp_in_use": False,
}
# Per-member (tuned) settings; every other setting is part of the group key.
_TUNED = ("lr", "momentum", "betas", "weight_decay", "d_coef")
_NOT_UPDATE_RULE = ("foreach", "fused", "capturable")


def torch_settings(optimizer: str, hyperparameters: Mapping[str, float]) -> dict[str, Any]:
    """The settings (``optimizer.defaults``) of a member, via the registry.

    For Muon, ``aux`` holds the fixed settings of its AdamW (the member's ``lr`` and
    ``weight_decay`` are shared) as a tuple of pairs.
    """
    info = get_optimizer_info(optimizer)
    shape = (1, 1) if info.param_shapes == "2d" else (1,)
    probe = construct(
        info, [torch.nn.Parameter(torch.zeros(shape))], info.torch_kwargs(hyperparameters)
    )
    kind = type(probe).__name__
    if kind not in SUPPORTED_CLASSES:
        raise TrainingError(
            f"the population trainer has no update rule for torch.optim.{kind} ({optimizer!r}); "
            "train it with the reference trainer."
        )
    settings = dict(probe.defaults)
    for name, allowed in _UNSUPPORTED.items():
        if settings.get(name, allowed) != allowed:
            raise TrainingError(
                f"the population trainer does not implement {name}={settings[name]!r} "
                f"of torch.optim.{kind}; train {optimizer!r} with the reference trainer."
            )
    settings["class"] = kind
    if info.aux is not None:
        aux = construct(
            get_optimizer_info(info.aux),
            [torch.nn.Parameter(torch.zeros(1))],
            info.aux_kwargs(hyperparameters),
        )
        settings["aux"] = tuple(
            sorted(
                (k, v)
                for k, v in aux.defaults.items()
                if k not in ("lr", "weight_decay", *_NOT_UPDATE_RULE)
            )
        )
    return settings


def group_key(settings: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """Members with equal keys share one update rule (and one call per step)."""
    kind = settings["class"]
    fixed = tuple(
        (name, value)
        for name, value in sorted(settings.items())
        if name not in _TUNED and name not in _NOT_UPDATE_RULE
    )
    flags: tuple[Hashable, ...] = ()
    if kind in ("SGD", "RMSprop"):
        flags = (settings["momentum"] != 0,)
    if "betas" in settings:
        flags = (settings["betas"][1],)
    return (kind, *flags, *fixed)


def keep_rows(t: Tensor, rows: Tensor) -> Tensor:
    """Rows ``rows`` (int64, any device) of ``t``'s leading dimension, in ``t``'s memory layout.

    A parameter, its gradient and its optimizer state must share one layout for the fused
    kernels; ``index_select`` alone would return a contiguous tensor.
    """
    picked = t.index_select(0, rows.to(t.device))
    if picked.stride() == t[: len(rows)].stride():
        return picked
    return torch.empty_like(t[: len(rows)]).copy_(picked)


class UpdateGroup:
    """The optimizer state and update of a contiguous range of ``G`` members.

    Call :meth:`bind` with the group's parameter and gradient views (leading dim ``G``)
    before the first step and after every compaction; :meth:`step` then updates the
    parameters in place from the gradients (which it may overwrite).
    """

    def __init__(self, settings: Sequence[Mapping[str, Any]], *, fused: bool) -> None:
        self.settings = [dict(s) for s in settings]
        first = self.settings[0]
        self.kind: str = first["class"]
        self.fused = fused and self.kind in _FUSED_CLASSES
        self.state: dict[str, list[Tensor]] = {}
        self.params: list[Tensor] = []
        self.grads: list[Tensor] = []
        self.step_t = torch.zeros(())  # the step count the fused kernels read (CPU float32)
        self._member: list[dict[str, list[Tensor]]] = []
        self._temps: list[list[Tensor]] = []
        self._hp: dict[str, Tensor] = {}

    @property
    def size(self) -> int:
        return len(self.settings)

    def _values(self, name: str) -> list[float]:
        if name in ("beta1", "beta2"):
            i = 0 if name == "beta1" else 1
            return [float(s["betas"][i]) if "betas" in s else 0.0 for s in self.settings]
        return [float(s.get(name, 0.0)) for s in self.settings]

    def _column(self, values: Sequence[float]) -> Tensor:
        p = self.params[0]
        return torch.tensor(values, dtype=p.dtype, device=p.device).view(-1, 1, 1)

    def _state_names(self) -> tuple[str, ...]:
        s = self.settings[0]
        if self.kind == "SGD":
            return ("momentum_buffer",) if s["momentum"] != 0 else ()
        if self.kind == "Adagrad":
            return ("sum",)
        if self.kind == "RMSprop":
            return ("square_avg", "momentum_buffer") if s["momentum"] != 0 else ("square_avg",)
        return ("exp_avg", "exp_avg_sq")

    def bind(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        self.params, self.grads = list(params), list(grads)
        if not self.state:
            init = float(self.settings[0].get("initial_accumulator_value", 0.0))
            self.state = {
                name: [torch.full_like(p, init if name == "sum" else 0.0) for p in self.params]
                for name in self._state_names()
            }
            if self.kind == "NAdam":  # torch keeps mu_product as a float32 scalar per param
                self.state["mu_product"] = [torch.ones(self.size, dtype=torch.float32)]
        if self.fused:
            roles = {"p": self.params, "g": self.grads, **self.state}
            self._member = [
                {r: [t[m] for t in ts] for r, ts in roles.items()} for m in range(self.size)
            ]
        else:
            self._temps = [[torch.empty_like(p) for p in self.params] for _ in range(2)]
            self._hp = {
                name: self._column(self._values(name))
                for name in ("momentum", "beta1", "weight_decay")
            }
            self._hp["one_minus_beta1"] = self._column([1.0 - b for b in self._values("beta1")])
            self._hp["one_minus_dampening"] = self._column(
                [1.0 - d for d in self._values("dampening")]
            )

    def set_grad(self, index: int, grad: Tensor) -> None:
        """Point gradient ``index`` at ``grad`` (``[G, ...]``), e.g. a fresh GEMM result."""
        self.grads[index] = grad
        for m, tensors in enumerate(self._member):
            tensors["g"][index] = grad[m]

    def keep(self, local: Tensor) -> None:
        """Keep only the members at positions ``local`` (int64, ascending) of this group."""
        idx = local.tolist()
        self.settings = [self.settings[i] for i in idx]
        for name, tensors in self.state.items():
            self.state[name] = [keep_rows(t, local) for t in tensors]

    def step(self, lrs: Sequence[float], step: int) -> None:
        """One update with the members' current learning rates ``lrs``; ``step`` is 1-based."""
        if self.fused:
            self.step_t.fill_(step)
            getattr(self, f"_fused_{self.kind.lower()}")(lrs, step)
        else:
            getattr(self, f"_step_{self.kind.lower()}")(lrs, step)

    # -- fused CPU kernels, one call per member ------------------------------------------
    def _fused_sgd(self, lrs: Sequence[float], step: int) -> None:
        for m, s in enumerate(self.settings):
            t = self._member[m]
            torch._fused_sgd_(
                t["p"],
                t["g"],
                t.get("momentum_buffer", []),
                weight_decay=float(s["weight_decay"]),
                momentum=float(s["momentum"]),
                lr=lrs[m],
                dampening=float(s["dampening"]),
                nesterov=bool(s["nesterov"]),
                maximize=False,
                is_first_step=step == 1,
            )

    def _fused_adagrad(self, lrs: Sequence[float], step: int) -> None:
        for m, s in enumerate(self.settings):
            t = self._member[m]
            torch._fused_adagrad_(
                t["p"],
                t["g"],
                t["sum"],
                [self.step_t] * len(t["p"]),
                lr=lrs[m],
                lr_decay=float(s["lr_decay"]),
                weight_decay=float(s["weight_decay"]),
                eps=float(s["eps"]),
                maximize=False,
            )

    def _fused_adam(self, lrs: Sequence[float], step: int) -> None:
        kernel = torch._fused_adamw_ if self.kind == "AdamW" else torch._fused_adam_
        for m, s in enumerate(self.settings):
            t = self._member[m]
            kernel(
                t["p"],
                t["g"],
                t["exp_avg"],
                t["exp_avg_sq"],
                [],
                [self.step_t] * len(t["p"]),
                lr=lrs[m],
                beta1=float(s["betas"][0]),
                beta2=float(s["betas"][1]),
                weight_decay=float(s["weight_decay"]),
                eps=float(s["eps"]),
                amsgrad=False,
                maximize=False,
            )

    _fused_adamw = _fused_adam

    # -- vectorized updates with [G, 1, 1] hyperparameters ---------------------------------
    def _weight_decay(self, lrs: Sequence[float]) -> None:
        """L2 (``g += wd * p``) or decoupled (``p *= 1 - lr * wd``) weight decay."""
        wd = self._values("weight_decay")
        if not any(wd):
            return
        if self.settings[0].get("decoupled_weight_decay", False):
            factor = self._column([1.0 - lr * w for lr, w in zip(lrs, wd)])
            for p in self.params:
                p.mul_(factor)
        else:
            for p, g in zip(self.params, self.grads):
                g.addcmul_(p, self._hp["weight_decay"])

    def _step_sgd(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        lr = self._column(lrs)
        self._weight_decay(lrs)
        bufs = self.state.get("momentum_buffer")
        for i, (p, g) in enumerate(zip(self.params, self.grads)):
            if bufs is not None:
                buf = bufs[i]
                if step == 1:
                    buf.copy_(g)
                elif any(self._values("dampening")):
                    buf.mul_(self._hp["momentum"]).addcmul_(g, self._hp["one_minus_dampening"])
                else:
                    buf.mul_(self._hp["momentum"]).add_(g)
                if s["nesterov"]:
                    g.addcmul_(buf, self._hp["momentum"])
                else:
                    g = buf
            p.addcmul_(g, lr, value=-1)

    def _step_adagrad(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        clr = self._column([lr / (1 + (step - 1) * float(s["lr_decay"])) for lr in lrs])
        self._weight_decay(lrs)
        for p, g, acc, std in zip(self.params, self.grads, self.state["sum"], self._temps[0]):
            acc.addcmul_(g, g, value=1)
            torch.sqrt(acc, out=std).add_(float(s["eps"]))
            p.addcdiv_(g.mul_(clr), std, value=-1)

    def _step_rmsprop(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        alpha, eps = float(s["alpha"]), float(s["eps"])
        lr = self._column(lrs)
        self._weight_decay(lrs)
        bufs = self.state.get("momentum_buffer")
        for i, (p, g, sq, avg) in enumerate(
            zip(self.params, self.grads, self.state["square_avg"], self._temps[0])
        ):
            sq.mul_(alpha).addcmul_(g, g, value=1 - alpha)
            torch.sqrt(sq, out=avg).add_(eps)
            if bufs is not None:
                bufs[i].mul_(self._hp["momentum"]).addcdiv_(g, avg)
                p.addcmul_(bufs[i], lr, value=-1)
            else:
                p.addcdiv_(g.mul_(lr), avg, value=-1)

    def _moments(self) -> None:
        beta2 = float(self.settings[0]["betas"][1])
        for g, m, v in zip(self.grads, self.state["exp_avg"], self.state["exp_avg_sq"]):
            m.lerp_(g, self._hp["one_minus_beta1"])
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)

    def _step_adam(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        beta2, eps = float(s["betas"][1]), float(s["eps"])
        step_size = self._column(
            [lr / (1 - b1**step) for lr, b1 in zip(lrs, self._values("beta1"))]
        )
        bc2_sqrt = (1 - beta2**step) ** 0.5
        self._weight_decay(lrs)
        self._moments()
        for p, m, v, denom, num in zip(
            self.params, self.state["exp_avg"], self.state["exp_avg_sq"], *self._temps
        ):
            torch.sqrt(v, out=denom).div_(bc2_sqrt).add_(eps)
            p.addcdiv_(torch.mul(m, step_size, out=num), denom, value=-1)

    _step_adamw = _step_adam

    def _step_nadam(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        beta2, eps, decay = float(s["betas"][1]), float(s["eps"]), float(s["momentum_decay"])
        betas1 = self._values("beta1")
        mu = [b1 * (1.0 - 0.5 * (0.96 ** (step * decay))) for b1 in betas1]
        mu_next = [b1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * decay))) for b1 in betas1]
        mu_product = self.state["mu_product"][0]
        mu_product.mul_(torch.tensor(mu, dtype=torch.float32))
        products = mu_product.tolist()
        c_grad = self._column([-lr * (1.0 - u) / (1.0 - q) for lr, u, q in zip(lrs, mu, products)])
        c_avg = self._column(
            [(-lr * un) / (1.0 - q * un) for lr, un, q in zip(lrs, mu_next, products)]
        )
        bias_correction2 = 1 - beta2**step
        self._weight_decay(lrs)
        self._moments()
        for p, g, m, v, denom, num in zip(
            self.params, self.grads, self.state["exp_avg"], self.state["exp_avg_sq"], *self._temps
        ):
            torch.div(v, bias_correction2, out=denom).sqrt_().add_(eps)
            p.addcdiv_(g.mul_(c_grad), denom)
            p.addcdiv_(torch.mul(m, c_avg, out=num), denom)

    def _step_radam(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        beta2, eps = float(s["betas"][1]), float(s["eps"])
        bias_correction1 = self._column([1 - b1**step for b1 in self._values("beta1")])
        bias_correction2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
        lr = self._column(lrs)
        self._weight_decay(lrs)
        self._moments()
        for p, m, v, update, adaptive in zip(
            self.params, self.state["exp_avg"], self.state["exp_avg_sq"], *self._temps
        ):
            torch.div(m, bias_correction1, out=update).mul_(lr)
            if rho_t > 5.0:
                rect = (
                    (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                ) ** 0.5
                # torch computes `float / tensor` as `tensor.reciprocal() * float`
                torch.sqrt(v, out=adaptive).add_(eps).reciprocal_().mul_(bias_correction2**0.5)
                update.mul_(adaptive).mul_(rect)
            p.sub_(update)


class _Narrowable(Protocol):
    @property
    def size(self) -> int: ...

    def keep(self, local: Tensor) -> None: ...


_G = TypeVar("_G", bound=_Narrowable)


def keep_groups(groups: Sequence[_G], keep: Sequence[int]) -> list[_G]:
    """The groups that still hold a member of ``keep`` (population indices, ascending),
    each narrowed to those members; the groups cover the population in order."""
    start, kept = 0, list[_G]()
    for group in groups:
        local = [i - start for i in keep if start <= i < start + group.size]
        start += group.size
        if local:
            group.keep(torch.tensor(local, dtype=torch.int64))
            kept.append(group)
    return kept
