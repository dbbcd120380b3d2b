"""The update rules docs/optimizers.md gives for the newer methods, against their implementations.

Each formula of the sections ``muon``, ``adafactor``, ``lion``, ``schedulefree`` and
``prodigy`` is written out below as the doc states it, in float64, and run for 12 steps
with weight decay beside the installed implementation on the same gradients (those of a
fixed quadratic loss, so both see the gradient of their own current weights). They must
agree to 1e-12 relative. Where the doc's formula admits two orders of floating-point
operations (an exponential average as ``mu * b + (1 - mu) * g`` or as ``b + (1 - mu) * (g - b)``),
the one torch uses is taken: Muon rounds its input to bfloat16, where a last-bit difference
in float64 can change a rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import lion_pytorch
import prodigyopt
import schedulefree
import torch

STEPS = 12
SHAPES = {"w": (6, 4), "v": (5,)}
Params = dict[str, torch.Tensor]


def _problem(seed: int = 0) -> tuple[Params, Callable[[Params, int], Params]]:
    """Initial weights and the gradient of a fixed quadratic loss at step ``t``."""
    g = torch.Generator().manual_seed(seed)
    init = {k: torch.randn(s, generator=g, dtype=torch.float64) for k, s in SHAPES.items()}
    shifts = [
        {k: torch.randn(s, generator=g, dtype=torch.float64) for k, s in SHAPES.items()}
        for _ in range(STEPS)
    ]
    curv = {k: torch.rand(s, generator=g, dtype=torch.float64) + 0.5 for k, s in SHAPES.items()}

    def grad(p: Params, t: int) -> Params:
        return {k: shifts[t][k] + curv[k] * p[k] for k in p}

    return init, grad


def _run_impl(make: Callable[[list[torch.nn.Parameter]], list[torch.optim.Optimizer]]) -> Params:
    init, grad = _problem()
    params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
    optimizers = make(list(params.values()))
    for o in optimizers:
        if hasattr(o, "train"):
            o.train()
    for t in range(STEPS):
        g = grad({k: p.detach() for k, p in params.items()}, t)
        for k, p in params.items():
            p.grad = g[k].clone()
        for o in optimizers:
            o.step()
    for o in optimizers:
        if hasattr(o, "eval"):
            o.eval()  # schedule-free: the evaluation weights x
    return {k: p.detach() for k, p in params.items()}


def _close(mine: Params, theirs: Params) -> None:
    for k in mine:
        err = float((mine[k] - theirs[k]).abs().max() / theirs[k].abs().max())
        assert err <= 1e-12, f"{k}: relative error {err:.2e}"


def rms(x: torch.Tensor) -> float:
    return float(x.norm() / math.sqrt(x.numel()))


def test_muon_formula() -> None:
    mu, lr, wd = 0.95, 0.02, 0.1
    impl = _run_impl(
        lambda ps: [
            torch.optim.Muon(ps[:1], lr=lr, weight_decay=wd, adjust_lr_fn="match_rms_adamw")
        ]
    )
    _close({"w": _muon(mu, lr, wd)}, {"w": impl["w"]})


def _muon(mu: float, lr: float, wd: float) -> torch.Tensor:
    """The doc's iteration with torch's association: X <- a X + (b G + c G G) X as two addmm."""
    init, grad = _problem()
    w = init["w"].clone()
    buf = torch.zeros_like(w)
    for t in range(STEPS):
        g = grad({"w": w, "v": init["v"]}, t)["w"]
        buf = buf + (1 - mu) * (g - buf)
        u = buf - (buf - g) * (1 - mu)
        x = u.bfloat16()
        tall = x.shape[0] > x.shape[1]
        x = x.T if tall else x
        x = x / x.norm().clamp(min=1e-7)
        for _ in range(5):
            gram = x @ x.T
            update = torch.addmm(gram, gram, gram, beta=-4.7750, alpha=2.0315)
            x = torch.addmm(x, update, x, beta=3.4445)
        o = x.T if tall else x
        w = w * (1 - lr * wd) - 0.2 * lr * math.sqrt(max(w.shape)) * o.double()
    return w


def test_adafactor_formula() -> None:
    lr, wd, eps2, d = 1e-2, 0.05, 1e-3, 1.0
    eps1 = torch.finfo(torch.float64).eps
    init, grad = _problem()
    p = {k: v.clone() for k, v in init.items()}
    row = torch.zeros(6, 1, dtype=torch.float64)
    col = torch.zeros(1, 4, dtype=torch.float64)
    var = torch.zeros(5, dtype=torch.float64)
    for t in range(1, STEPS + 1):
        g = grad(p, t - 1)
        beta = 1 - t**-0.8
        rho = min(lr, 1 / math.sqrt(t))
        for k in p:
            alpha = max(eps2, rms(p[k])) * rho
            p[k] = p[k] * (1 - lr * wd)
            if k == "w":
                row = row + (1 - beta) * ((g[k] ** 2).mean(1, keepdim=True) - row)
                col = col + (1 - beta) * ((g[k] ** 2).mean(0, keepdim=True) - col)
                v_hat = row @ col / row.mean()
            else:
                var = var + (1 - beta) * (g[k] ** 2 - var)
                v_hat = var
            u = g[k] / v_hat.clamp(min=eps1 * eps1).sqrt()
            p[k] = p[k] - alpha / max(1.0, rms(u) / d) * u
    _close(p, _run_impl(lambda ps: [torch.optim.Adafactor(ps, lr=lr, weight_decay=wd)]))


def test_lion_formula() -> None:
    lr, wd, b1, b2 = 1e-3, 0.1, 0.9, 0.99
    init, grad = _problem()
    p = {k: v.clone() for k, v in init.items()}
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    for t in range(STEPS):
        g = grad(p, t)
        for k in p:
            p[k] = p[k] * (1 - lr * wd) - lr * torch.sign(b1 * m[k] + (1 - b1) * g[k])
            m[k] = b2 * m[k] + (1 - b2) * g[k]
    _close(
        p,
        _run_impl(lambda ps: [lion_pytorch.Lion(ps, lr=lr, betas=(b1, b2), weight_decay=wd)]),
    )


def test_schedulefree_formula() -> None:
    lr, b1, b2, eps, wd, warmup = 0.01, 0.9, 0.999, 1e-8, 0.05, 4
    init, grad = _problem()
    z = {k: v.clone() for k, v in init.items()}
    x = {k: v.clone() for k, v in init.items()}
    y = {k: v.clone() for k, v in init.items()}
    v = {k: torch.zeros_like(val) for k, val in init.items()}
    weight_sum, lr_max = 0.0, -1.0
    for t in range(1, STEPS + 1):
        g = grad(y, t - 1)
        lr_t = lr * min(1.0, t / warmup)
        lr_max = max(lr_max, lr_t)
        w_t = lr_max**2
        weight_sum += w_t
        c = w_t / weight_sum
        for k in y:
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            d = g[k] / ((v[k] / (1 - b2**t)).sqrt() + eps) + wd * y[k]
            z[k] = z[k] - lr_t * d
            x[k] = (1 - c) * x[k] + c * z[k]
            y[k] = (1 - b1) * z[k] + b1 * x[k]
    impl = _run_impl(
        lambda ps: [
            schedulefree.AdamWScheduleFree(
                ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, warmup_steps=warmup
            )
        ]
    )
    _close(x, impl)


def test_prodigy_formula() -> None:
    b1, b2, eps, wd, kappa, d0 = 0.9, 0.999, 1e-8, 0.05, 1.5, 1e-6
    b3 = math.sqrt(b2)
    init, grad = _problem()
    p = {k: val.clone() for k, val in init.items()}
    m = {k: torch.zeros_like(val) for k, val in p.items()}
    v = {k: torch.zeros_like(val) for k, val in p.items()}
    s = {k: torch.zeros_like(val) for k, val in p.items()}
    d, r = d0, 0.0
    for t in range(STEPS):
        g = grad(p, t)
        delta = d  # lr = 1
        r = b3 * r + sum((d / d0) * delta * float((g[k] * (init[k] - p[k])).sum()) for k in p)
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * d * g[k]
            v[k] = b2 * v[k] + (1 - b2) * d * d * g[k] ** 2
            s[k] = b3 * s[k] + (d / d0) * delta * g[k]
        d_new = max(d, kappa * r / sum(float(s[k].abs().sum()) for k in p))
        for k in p:
            p[k] = p[k] - wd * delta * p[k]
            p[k] = p[k] - delta * m[k] / (v[k].sqrt() + d_new * eps)
        d = d_new
    impl = _run_impl(
        lambda ps: [prodigyopt.Prodigy(ps, betas=(b1, b2), eps=eps, weight_decay=wd, d_coef=kappa)]
    )
    for k in p:  # Prodigy sums dot products in Python floats: a few ulps apart
        err = float((p[k] - impl[k]).abs().max() / impl[k].abs().max())
        assert err <= 1e-10, f"{k}: relative error {err:.2e}"
