"""Population updates of Muon, Adafactor, Lion, Schedule-Free AdamW and Prodigy.

Each group holds ``G`` members sharing an update rule, as
:class:`~advisor.train.population_optim.UpdateGroup` does, and replicates its class's
single-tensor code (``torch/optim/_muon.py``, ``torch/optim/_adafactor.py``,
``lion_pytorch/lion_pytorch.py``, ``schedulefree/adamw_schedulefree.py`` foreach path,
``prodigyopt/prodigy.py``) in the same order of operations, with the members' tuned
values as ``[G, 1, 1]`` columns. What the classes compute per tensor from Python floats
(Adafactor's RMS of the weights, Prodigy's step-size estimate ``d``) is a ``[G]`` tensor
here, so no step waits for the device.

``roles`` (:mod:`advisor.knowledge.layout`) tell the tensors apart where the class does:
Muon updates the ``hidden`` weights and hands the others to an AdamW
:class:`UpdateGroup`; Adafactor factors matrices but not ``vector`` tensors (the
population's biases are ``[G, out, 1]``, vectors in ``nn.Linear``).

Schedule-Free AdamW holds ``y`` in the parameters while training and ``x`` for evaluation:
:meth:`ScheduleFreeGroup.eval_mode` and :meth:`~ScheduleFreeGroup.train_mode` switch them
with the package's own interpolations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from advisor.train.population_optim import UpdateGroup, keep_rows

#: Classes whose groups live here.
MODERN_CLASSES = ("Muon", "Adafactor", "Lion", "AdamWScheduleFree", "Prodigy")


class ModernGroup:
    """What every group here shares: settings, views, per-member columns, compaction."""

    def __init__(self, settings: Sequence[Mapping[str, Any]], roles: Sequence[str]) -> None:
        self.settings = [dict(s) for s in settings]
        self.kind: str = self.settings[0]["class"]
        self.roles = tuple(roles)
        self.state: dict[str, list[Tensor]] = {}
        self.params: list[Tensor] = []
        self.grads: list[Tensor] = []

    @property
    def size(self) -> int:
        return len(self.settings)

    def _values(self, name: str) -> list[float]:
        if name in ("beta1", "beta2"):
            return [float(s["betas"][0 if name == "beta1" else 1]) for s in self.settings]
        return [float(s.get(name, 0.0)) for s in self.settings]

    def _column(self, values: Sequence[float], dtype: torch.dtype | None = None) -> Tensor:
        p = self.params[0]
        return torch.tensor(values, dtype=dtype or p.dtype, device=p.device).view(-1, 1, 1)

    def bind(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        self.params, self.grads = list(params), list(grads)
        if not self.state:
            self._init_state()

    def _init_state(self) -> None:
        raise NotImplementedError

    def set_grad(self, index: int, grad: Tensor) -> None:
        """Point gradient ``index`` at ``grad`` (``[G, ...]``), e.g. a fresh GEMM result."""
        self.grads[index] = grad

    def keep(self, local: Tensor) -> None:
        """Keep only the members at positions ``local`` (int64, ascending) of this group."""
        idx = local.tolist()
        self.settings = [self.settings[i] for i in idx]
        for name, tensors in self.state.items():
            self.state[name] = [keep_rows(t, local) for t in tensors]

    def step(self, lrs: Sequence[float], step: int) -> None:
        raise NotImplementedError

    def train_mode(self) -> None:
        """Before training steps (only schedule-free methods do anything)."""

    def eval_mode(self) -> None:
        """Before evaluating (only schedule-free methods do anything)."""

    def _decay(self, lrs: Sequence[float]) -> None:
        """``p *= 1 - lr * wd`` per member (decoupled weight decay, scaled by ``lr``)."""
        wd = self._values("weight_decay")
        if any(wd):
            factor = self._column([1.0 - lr * w for lr, w in zip(lrs, wd)])
            for p in self.params:
                p.mul_(_like(factor, p))


def _like(column: Tensor, p: Tensor) -> Tensor:
    """A ``[G, 1, 1]`` column shaped ``[G, 1, ..., 1]`` to broadcast over ``p`` (``[G, ...]``)."""
    return column.view(-1, *([1] * (p.dim() - 1)))


class LionGroup(ModernGroup):
    """``lion_pytorch.Lion``: the sign of an interpolation of momentum and gradient."""

    def _init_state(self) -> None:
        self.state = {"exp_avg": [torch.zeros_like(p) for p in self.params]}

    def step(self, lrs: Sequence[float], step: int) -> None:
        beta2 = float(self.settings[0]["betas"][1])
        b1 = self._column(self._values("beta1"))
        one_minus_b1 = self._column([1.0 - b for b in self._values("beta1")])
        lr = self._column(list(lrs))
        self._decay(lrs)
        for p, g, m in zip(self.params, self.grads, self.state["exp_avg"]):
            update = torch.mul(m, b1).addcmul_(g, one_minus_b1).sign_()
            p.addcmul_(update, lr, value=-1)
            m.mul_(beta2).add_(g, alpha=1 - beta2)


class AdafactorGroup(ModernGroup):
    """``torch.optim.Adafactor``: factored second moments and a relative step size.

    A matrix keeps ``row_var`` ``[G, n, 1]`` and ``col_var`` ``[G, 1, m]``; a vector keeps its
    full second moment in ``row_var`` (and an unused ``[G, 1, 1]`` in ``col_var``). A tensor
    of more dimensions (``[G, ..., n, m]``, a convolution kernel) is factored over its last
    two, as torch does, so this group takes tensors of any rank.
    """

    def _init_state(self) -> None:
        rows, cols = [], []
        for p, role in zip(self.params, self.roles):
            if role == "vector":
                rows.append(torch.zeros_like(p))
                cols.append(p.new_zeros(p.shape[0], 1, 1))
            else:
                rows.append(p.new_zeros(*p.shape[:-1], 1))
                cols.append(p.new_zeros(*p.shape[:-2], 1, p.shape[-1]))
        self.state = {"row_var": rows, "col_var": cols}

    def step(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        eps1, eps2 = s["eps"]
        d, decay = float(s["d"]), float(s["beta2_decay"])
        one_minus_beta2 = float(step) ** decay
        rho = self._column([min(lr, 1 / (float(step) ** 0.5)) for lr in lrs])
        # per member: max(eps2, RMS(p)) * rho, from the weights before the decay
        alphas = []
        for p in self.params:
            dims = tuple(range(1, p.dim()))
            numel = math.prod(p.shape[1:])
            rms = torch.linalg.vector_norm(p, dim=dims, keepdim=True) / numel**0.5
            alphas.append(rms.clamp_(min=eps2).mul_(_like(rho, p)))
        self._decay(lrs)
        for p, g, row, col, alpha, role in zip(
            self.params,
            self.grads,
            self.state["row_var"],
            self.state["col_var"],
            alphas,
            self.roles,
        ):
            e1 = torch.finfo(p.dtype).eps if eps1 is None else float(eps1)
            if role == "vector":
                row.lerp_(g * g, one_minus_beta2)
                var = row.clone()
            else:
                row_mean = torch.norm(g, dim=-1, keepdim=True).square_().div_(g.size(-1))
                row.lerp_(row_mean, one_minus_beta2)
                col_mean = torch.norm(g, dim=-2, keepdim=True).square_().div_(g.size(-2))
                col.lerp_(col_mean, one_minus_beta2)
                var = torch.matmul(row, col)
                var.div_(row.mean(dim=-2, keepdim=True).clamp_(min=e1))
            update = var.clamp_(min=e1 * e1).rsqrt_().mul_(g)
            numel = math.prod(p.shape[1:])
            dims = tuple(range(1, p.dim()))
            rms = torch.linalg.vector_norm(update, dim=dims, keepdim=True) / (numel**0.5 * d)
            p.addcmul_(update, alpha.div_(rms.clamp_(min=1.0)), value=-1)


class ScheduleFreeGroup(ModernGroup):
    """``schedulefree.AdamWScheduleFree`` (foreach path): parameters are ``y`` while training."""

    def __init__(self, settings: Sequence[Mapping[str, Any]], roles: Sequence[str]) -> None:
        super().__init__(settings, roles)
        self.weight_sum = [float(s["weight_sum"]) for s in self.settings]
        self.lr_max = [float(s["lr_max"]) for s in self.settings]
        self.training = True  # before the first step x = y = z: either mode is right

    def _init_state(self) -> None:
        self.state = {
            "z": [p.clone() for p in self.params],
            "exp_avg_sq": [torch.zeros_like(p) for p in self.params],
        }

    def keep(self, local: Tensor) -> None:
        idx = local.tolist()
        self.weight_sum = [self.weight_sum[i] for i in idx]
        self.lr_max = [self.lr_max[i] for i in idx]
        super().keep(local)

    def step(self, lrs: Sequence[float], step: int) -> None:
        s = self.settings[0]
        beta2, eps, r = float(s["betas"][1]), float(s["eps"]), float(s["r"])
        power, warmup = float(s["weight_lr_power"]), int(s["warmup_steps"])
        k = step - 1
        sched = (k + 1) / warmup if k < warmup else 1.0
        bias_correction2 = 1 - beta2 ** (k + 1)
        ckp1, lr_now = [], []
        for m, base in enumerate(lrs):
            lr = base * sched
            self.lr_max[m] = max(lr, self.lr_max[m])
            weight = ((k + 1) ** r) * (self.lr_max[m] ** power)
            self.weight_sum[m] += weight
            ckp1.append(weight / self.weight_sum[m] if self.weight_sum[m] else 0.0)
            lr_now.append(lr)
        betas1 = self._values("beta1")
        c = self._column(ckp1)
        y_step = self._column(
            [lr * (b1 * (1 - c1) - 1) for lr, b1, c1 in zip(lr_now, betas1, ckp1)]
        )
        z_step = self._column(lr_now)
        wd = self._values("weight_decay")
        wd_col = self._column(wd)
        for y, g, v, z in zip(self.params, self.grads, self.state["exp_avg_sq"], self.state["z"]):
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = torch.div(v, bias_correction2).sqrt_().add_(eps)
            g.div_(denom)
            if any(wd):
                g.addcmul_(y, wd_col)
            y.lerp_(z, c)
            y.addcmul_(g, y_step)
            z.addcmul_(g, z_step, value=-1)

    def eval_mode(self) -> None:
        if self.training and self.state:
            w = self._column([1 - 1 / b for b in self._values("beta1")])
            for p, z in zip(self.params, self.state["z"]):
                p.lerp_(z, w)
        self.training = False

    def train_mode(self) -> None:
        if not self.training and self.state:
            w = self._column([1 - b for b in self._values("beta1")])
            for p, z in zip(self.params, self.state["z"]):
                p.lerp_(z, w)
        self.training = True


class ProdigyGroup(ModernGroup):
    """``prodigyopt.Prodigy``: Adam with the step size ``d`` estimated per member."""

    def _vec(self, values: Sequence[float]) -> Tensor:
        """A ``[G]`` float64 tensor: Prodigy keeps these in Python floats."""
        return torch.tensor(list(values), dtype=torch.float64, device=self.params[0].device)

    def _init_state(self) -> None:
        d0 = [float(s["d0"]) for s in self.settings]
        self.state = {
            "s": [torch.zeros_like(p) for p in self.params],
            "p0": [p.clone() for p in self.params],
            "exp_avg": [torch.zeros_like(p) for p in self.params],
            "exp_avg_sq": [torch.zeros_like(p) for p in self.params],
            # per-member scalars, float64 like the Python floats Prodigy keeps in its group
            "d": [self._vec(d0)],
            "d_max": [self._vec(d0)],
            "d_numerator": [self._vec([0.0] * self.size)],
        }

    def step(self, lrs: Sequence[float], step: int) -> None:
        s0 = self.settings[0]
        beta2, eps = float(s0["betas"][1]), float(s0["eps"])
        beta3 = math.sqrt(beta2) if s0["beta3"] is None else float(s0["beta3"])
        growth = float(s0["growth_rate"])
        d, d_max = self.state["d"][0], self.state["d_max"][0]
        d0 = self._vec([float(s["d0"]) for s in self.settings])
        b1 = self._vec(self._values("beta1"))
        dlr = d * self._vec(lrs)  # bias correction off
        numerator = self.state["d_numerator"][0]
        delta = self._vec([0.0] * self.size)
        denom = self._vec([0.0] * self.size)
        dt = self.params[0].dtype

        def col(x: Tensor) -> Tensor:
            return x.to(dt).view(-1, 1, 1)

        for p, g, s, p0, m, v in zip(
            self.params,
            self.grads,
            self.state["s"],
            self.state["p0"],
            self.state["exp_avg"],
            self.state["exp_avg_sq"],
        ):
            dims = tuple(range(1, p.dim()))
            dot = (g * (p0 - p)).sum(dim=dims).to(torch.float64)
            delta += (d / d0) * dlr * dot
            m.mul_(col(b1)).addcmul_(g, col(d * (1 - b1)))
            v.mul_(beta2).addcmul_(g * col(d * d * (1 - beta2)), g)
            s.mul_(beta3).addcmul_(g, col((d / d0) * dlr))
            denom += s.abs().sum(dim=dims).to(torch.float64)
        moving = denom != 0  # Prodigy returns before its step when every gradient is zero
        total = numerator * beta3 + delta
        numerator.copy_(torch.where(moving, total, numerator))
        d_coef = self._vec(self._values("d_coef"))
        d_hat = d_coef * total / torch.where(moving, denom, torch.ones_like(denom))
        first = d == d0
        new_d = torch.where(first, torch.maximum(d, d_hat), d)
        new_max = torch.maximum(d_max, d_hat)
        new_d = torch.minimum(new_max, new_d * growth)
        d.copy_(torch.where(moving, new_d, d))
        d_max.copy_(torch.where(moving, new_max, d_max))
        wd = self._vec(self._values("weight_decay"))
        step_size = col(torch.where(moving, -dlr, torch.zeros_like(dlr)))
        decay = col(torch.where(moving, -wd * dlr, torch.zeros_like(dlr)))
        for p, m, v in zip(self.params, self.state["exp_avg"], self.state["exp_avg_sq"]):
            bottom = v.sqrt().add_(col(d * eps))
            if wd.any():
                p.addcmul_(p, decay)
            p.addcmul_(m / bottom, step_size)


class MuonGroup(ModernGroup):
    """``torch.optim.Muon`` on the hidden weights, an AdamW :class:`UpdateGroup` on the rest.

    The Newton-Schulz iteration runs in bfloat16 as torch's does, batched over the members
    (``torch.baddbmm``): on the CPU its results equal the per-matrix ``torch.addmm`` ones.
    """

    def __init__(
        self, settings: Sequence[Mapping[str, Any]], roles: Sequence[str], *, fused: bool
    ) -> None:
        super().__init__(settings, roles)
        self.hidden = [i for i, role in enumerate(self.roles) if role == "hidden"]
        self.rest = [i for i, role in enumerate(self.roles) if role != "hidden"]
        aux = [
            {**dict(s["aux"]), "lr": s["lr"], "weight_decay": s["weight_decay"], "class": "AdamW"}
            for s in self.settings
        ]
        self.aux = UpdateGroup(aux, fused=fused)

    def _init_state(self) -> None:
        self.state = {"momentum_buffer": [torch.zeros_like(p) for p in self.params]}

    def bind(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        super().bind([params[i] for i in self.hidden], [grads[i] for i in self.hidden])
        self.aux.bind([params[i] for i in self.rest], [grads[i] for i in self.rest])

    def set_grad(self, index: int, grad: Tensor) -> None:
        if index in self.hidden:
            self.grads[self.hidden.index(index)] = grad
        else:
            self.aux.set_grad(self.rest.index(index), grad)

    def keep(self, local: Tensor) -> None:
        super().keep(local)
        self.aux.keep(local)

    def step(self, lrs: Sequence[float], step: int) -> None:
        self.aux.step(lrs, step)
        s = self.settings[0]
        a, b, c = s["ns_coefficients"]
        eps, steps, nesterov = float(s["eps"]), int(s["ns_steps"]), bool(s["nesterov"])
        momentum = self._values("momentum")
        keep = self._column([1 - m for m in momentum])
        mu = self._column(momentum)
        decay = self._column([1.0 - lr * w for lr, w in zip(lrs, self._values("weight_decay"))])
        for p, g, buf in zip(self.params, self.grads, self.state["momentum_buffer"]):
            buf.lerp_(g, keep)
            update = g.lerp(buf, mu) if nesterov else buf
            x = update.bfloat16()
            tall = p.shape[1] > p.shape[2]
            if tall:
                x = x.transpose(1, 2)
            norm = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
            x = x.div(norm.clamp(min=eps))
            for _ in range(steps):
                gram = torch.bmm(x, x.transpose(1, 2))
                gram_update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
                x = torch.baddbmm(x, gram_update, x, beta=a)
            if tall:
                x = x.transpose(1, 2)
            scale = _adjust(s["adjust_lr_fn"], p.shape[1], p.shape[2])
            p.mul_(decay)
            p.addcmul_(x.to(p.dtype), self._column([lr * scale for lr in lrs]), value=-1)


def _adjust(fn: str | None, rows: int, cols: int) -> float:
    """torch's ``_adjust_lr`` ratio for a ``rows x cols`` matrix."""
    if fn is None or fn == "original":
        return math.sqrt(max(1, rows / cols))
    if fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def make_group(
    settings: Sequence[Mapping[str, Any]], *, fused: bool, roles: Sequence[str]
) -> UpdateGroup | ModernGroup:
    """The group for ``settings`` (one update rule): ``roles`` per parameter tensor."""
    kind = settings[0]["class"]
    if kind == "Muon":
        return MuonGroup(settings, roles, fused=fused)
    modern: dict[str, type[ModernGroup]] = {
        "Adafactor": AdafactorGroup,
        "Lion": LionGroup,
        "AdamWScheduleFree": ScheduleFreeGroup,
        "Prodigy": ProdigyGroup,
    }
    if kind in modern:
        return modern[kind](settings, roles)
    return UpdateGroup(settings, fused=fused)
