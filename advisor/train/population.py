"""The population trainer: K seed MLPs (784-128-128-10) trained at once, each its own trial.

Member ``k``'s weights live in stacks shared by the population, in ``nn.Linear`` layout::

    W1 [K*H, D]   (rows k*H .. (k+1)*H are member k's first layer)   b1 [K, H, 1]
    W2 [K, H, H]                                                       b2 [K, H, 1]
    W3 [K, C, H]                                                       b3 [K, C, 1]

Activations are kept transposed, ``[K, H, B]``, so that every product is one call: the
shared batch hits all first layers in one wide GEMM (``W1 @ x.T``, ``[K*H, D] x [D, B]``),
the other layers are ``torch.baddbmm`` over the member dimension, and the weight gradient of
layer 1 is again a wide GEMM (``dZ1 @ x``, one per update group). The backward pass is
written by hand into preallocated buffers (no autograd graph); the loss is the sum over
members of each member's mean cross-entropy, so each member's gradient is exactly its own.
Optimizer updates run per group of members sharing an update rule
(:mod:`advisor.train.population_optim`), each group right after its layer-1 gradient.

On the CPU in float32, layer 1's two GEMMs (79% of the FLOPs) go through oneDNN, which
runs at about twice MKL's speed where MKL keeps to AVX2 (AMD CPUs); layers 2 and 3 stay on
``torch.bmm`` (MKL), as torch exposes no batched oneDNN matmul for fp32.

Members that diverge or that ``on_epoch`` stops are dropped from the stacks (compaction);
the others go on as if they had been alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

import torch
from torch import Tensor

from advisor.core.errors import InvalidValueError
from advisor.train.layout import model_layout
from advisor.train.members import (
    MemberConfig,
)
from advisor.train.models import mnist_mlp
from advisor.train.population_modern import ModernGroup, make_group
from advisor.train.population_optim import UpdateGroup, group_key, keep_groups, torch_settings
from advisor.train.reference import as_device
from advisor.train.schedules import lr_factors

# Stacked parameters in this order; the names of the matching nn.Sequential entries.
_NAMES = ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")
#: Members per update group at most. With oneDNN, layer 1's weight gradient is one GEMM per
#: group (a fresh tensor: oneDNN has no ``out=``); keeping it <= 6.4 MB lets glibc recycle
#: the memory instead of page-faulting fresh pages every step (measured at K=64 in one
#: piece: ~4,000 faults per step, 15% of the step time; in groups of 16: ~170).
MAX_GROUP = 16
# Evaluation walks a split in chunks of at most this many activations (K*H*rows).
_EVAL_ACTIVATIONS = 1 << 22


def _roles(hidden: int, n_features: int, n_classes: int) -> list[str]:
    """The role of each stacked tensor, in ``_NAMES`` order (as ``model_layout`` finds them)."""
    with torch.random.fork_rng(devices=[]):  # building the model draws its init
        model = mnist_mlp(hidden, n_features, n_classes)
    layout = model_layout(model, torch.zeros(1, n_features))
    roles = {p.name: p.role for p in layout.params}
    return [roles[name] for name in _NAMES]


def default_population(device: str | torch.device = "cpu") -> int:
    """A good number of members to train at once on ``device``.

    On the CPU the seconds per model-epoch stop improving past K = 8-16 (the GEMMs are
    already at full speed and the optimizer state starts to leave the caches), so 16; on a
    GPU the per-step launch overhead is shared by all members, so large populations pay.
    """
    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    return {"cuda": 256, "mps": 64}.get(kind, 16)


#: torch's fused optimizer kernels run on the CPU from torch 2.5 on (the package accepts
#: torch >= 2.2: older versions take the vectorized updates, which give the same result)
_FUSED_CPU = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)


def _onednn_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(  # type: ignore[no-untyped-call]
        torch.ops.mkldnn, "_linear_pointwise"
    )


def _use_onednn(gemm: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether layer 1's GEMMs go through oneDNN (``gemm``: ``auto``, ``onednn`` or ``mm``).

    oneDNN's fp32 GEMM runs at about twice MKL's speed on AMD Zen CPUs (466 vs 212 GFLOP/s
    measured on a 2-core EPYC), where MKL keeps to its AVX2 kernels; ``auto`` uses it for
    float32 on the CPU. It has no float64 kernels and no ``out=`` argument.
    """
    if gemm not in ("auto", "onednn", "mm"):
        raise InvalidValueError(f"gemm must be 'auto', 'onednn' or 'mm', got {gemm!r}.")
    usable = device.type == "cpu" and dtype == torch.float32 and _onednn_available()
    if gemm == "onednn" and not usable:
        raise InvalidValueError("gemm='onednn' needs float32 on a CPU build of torch with oneDNN.")
    return usable and gemm != "mm"


def _linear(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T`` by oneDNN (``a``: ``[M, K]``, ``b``: ``[N, K]``, both contiguous)."""
    out: Tensor = torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    return out


@dataclass
class _Buffers:
    """Preallocated per-step tensors for one batch size (shapes in comments)."""

    x: Tensor  # [B, D]
    xt: Tensor  # [D, B]
    y: Tensor  # [B]
    z1: Tensor  # [K*H, B]
    z2: Tensor  # [K, H, B]
    z3: Tensor  # [K, C, B], then log-probabilities, then the logits' gradient
    picked: Tensor  # [K, 1, B]
    minus_one: Tensor  # [K, 1, B]
    d2: Tensor  # [K, H, B]
    d1: Tensor  # [K, H, B]
    loss: Tensor  # [K]


class Population:
    """K stacked seed MLPs with their optimizers; see the module docstring.

    ``configs`` and ``keys`` are in the caller's order; members are reordered internally so
    that each update group is contiguous (``self.keys`` gives the internal order).
    ``total_steps`` is the length of the schedules. ``fused=None`` uses torch's fused CPU
    optimizer kernels on the CPU and the vectorized updates elsewhere. ``lr_table`` (at
    least ``total_steps`` factors) replaces every member's schedule: member ``k``'s
    learning rate at step ``t`` is then its base ``lr`` times ``lr_table[t]`` (the
    exponential ramp of an LR range test, :mod:`advisor.probe.lr_range`).
    """

    def __init__(
        self,
        configs: Sequence[MemberConfig],
        keys: Sequence[Hashable],
        *,
        n_features: int,
        n_classes: int,
        total_steps: int,
        hidden: int = 128,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        fused: bool | None = None,
        gemm: str = "auto",
        lr_table: Sequence[float] | None = None,
    ) -> None:
        self.device = as_device(device)
        self.onednn = _use_onednn(gemm, self.device, dtype)
        self.dtype = dtype
        self.hidden, self.n_features, self.n_classes = hidden, n_features, n_classes
        fused = self.device.type == "cpu" and _FUSED_CPU if fused is None else fused
        settings = [torch_settings(c.optimizer, c.hyperparameters) for c in configs]
        gkeys = [group_key(s) for s in settings]
        # stable sort by first appearance of the group key: groups become contiguous
        first = {g: i for i, g in reversed(list(enumerate(gkeys)))}
        order = sorted(range(len(configs)), key=lambda i: first[gkeys[i]])
        self.keys: list[Hashable] = [keys[i] for i in order]
        self.configs: list[MemberConfig] = [configs[i] for i in order]
        runs = [list(members) for _, members in groupby(order, key=lambda i: gkeys[i])]
        roles = _roles(hidden, n_features, n_classes)
        self.groups: list[UpdateGroup | ModernGroup] = [
            make_group(
                [settings[i] for i in run[start : start + MAX_GROUP]], fused=fused, roles=roles
            )
            for run in runs
            for start in range(0, len(run), MAX_GROUP)
        ]
        if lr_table is not None:
            if len(lr_table) < total_steps:
                raise InvalidValueError(
                    f"lr_table needs a factor for each of the {total_steps} steps, "
                    f"got {len(lr_table)}."
                )
            tables = {c.schedule: [float(f) for f in lr_table] for c in self.configs}
        else:
            tables = {c.schedule: lr_factors(c.schedule, total_steps) for c in self.configs}
        self.lr_tables = [tables[c.schedule] for c in self.configs]
        self.base_lrs = [c.resolved()["lr"] for c in self.configs]
        self.params = self._initial_weights()
        self.grads = self._gradient_buffers()
        self.loss_sum = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        self._buffers: dict[int, _Buffers] = {}
        self._bind()

    @property
    def size(self) -> int:
        return len(self.keys)

    def _initial_weights(self) -> list[Tensor]:
        stacks: list[list[Tensor]] = [[] for _ in _NAMES]
        for config in self.configs:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.init_seed)
                model = mnist_mlp(self.hidden, self.n_features, self.n_classes)
            state = model.state_dict()
            for stack, name in zip(stacks, _NAMES):
                tensor = state[name]
                stack.append(tensor.unsqueeze(-1) if name.endswith("bias") else tensor)
        w1, b1, w2, b2, w3, b3 = (torch.stack(s) for s in stacks)
        tensors = [w1.reshape(-1, self.n_features), b1, w2, b2, w3, b3]
        return [t.to(device=self.device, dtype=self.dtype).contiguous() for t in tensors]

    def _gradient_buffers(self) -> list[Tensor]:
        grads = [torch.zeros_like(p) for p in self.params[1:]]
        if self.onednn:  # a fresh GEMM result every step; until then a zero-stride stand-in
            w1 = torch.zeros((), dtype=self.dtype, device=self.device).expand_as(self.params[0])
        else:
            w1 = torch.zeros_like(self.params[0])
        return [w1, *grads]

    def _member_view(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """The stacks with a leading member dimension (W1 as ``[K, H, D]``)."""
        w1 = tensors[0].view(self.size, self.hidden, self.n_features)
        return [w1, *tensors[1:]]

    def _bind(self) -> None:
        params, grads = self._member_view(self.params), self._member_view(self.grads)
        start = 0
        for group in self.groups:
            stop = start + group.size
            group.bind([p[start:stop] for p in params], [g[start:stop] for g in grads])
            start = stop
        self._buffers.clear()

    def _buffers_for(self, batch: int) -> _Buffers:
        buffers = self._buffers.get(batch)
        if buffers is None:
            k, h, c = self.size, self.hidden, self.n_classes
            dt, dev = self.dtype, self.device
            buffers = _Buffers(
                x=torch.empty(batch, self.n_features, dtype=dt, device=dev),
                xt=torch.empty(self.n_features, batch, dtype=dt, device=dev),
                y=torch.empty(batch, dtype=torch.int64, device=dev),
                z1=torch.empty(k * h, batch, dtype=dt, device=dev),
                z2=torch.empty(k, h, batch, dtype=dt, device=dev),
                z3=torch.empty(k, c, batch, dtype=dt, device=dev),
                picked=torch.empty(k, 1, batch, dtype=dt, device=dev),
                minus_one=torch.full((k, 1, batch), -1.0, dtype=dt, device=dev),
                d2=torch.empty(k, h, batch, dtype=dt, device=dev),
                d1=torch.empty(k, h, batch, dtype=dt, device=dev),
                loss=torch.empty(k, dtype=dt, device=dev),
            )
            self._buffers[batch] = buffers
        return buffers

    def train_step(self, x_all: Tensor, y_all: Tensor, idx: Tensor, step: int) -> None:
        """Forward, backward and update of every member on rows ``idx``; ``step`` is 0-based."""
        k, h, b = self.size, self.hidden, idx.shape[0]
        w1, b1, w2, b2, w3, b3 = self.params
        g_w1, g_b1, g_w2, g_b2, g_w3, g_b3 = self.grads
        buf = self._buffers_for(b)
        x = torch.index_select(x_all, 0, idx, out=buf.x)
        y = torch.index_select(y_all, 0, idx, out=buf.y)
        # forward, activations transposed: [K, H, B]
        if self.onednn:
            a1 = _linear(w1, x).view(k, h, b).add_(b1).relu_()
        else:
            a1 = torch.addmm(b1.view(k * h, 1), w1, x.t(), out=buf.z1).relu_().view(k, h, b)
        a2 = torch.baddbmm(b2, w2, a1, out=buf.z2).relu_()
        z3 = torch.baddbmm(b3, w3, a2, out=buf.z3)
        logp = torch.log_softmax(z3, dim=1, out=z3)  # [K, C, B]
        target = y.view(1, 1, b).expand(k, 1, b)
        torch.gather(logp, 1, target, out=buf.picked)
        self.loss_sum.sub_(torch.sum(buf.picked, dim=(1, 2), out=buf.loss), alpha=1.0 / b)
        # backward of sum_k mean_b CE: dZ3 = (softmax - onehot) / B
        dz3 = logp.exp_().scatter_add_(1, target, buf.minus_one).mul_(1.0 / b)
        torch.bmm(dz3, a2.transpose(1, 2), out=g_w3)
        torch.sum(dz3, dim=2, keepdim=True, out=g_b3)
        d2 = torch.bmm(w3.transpose(1, 2), dz3, out=buf.d2)
        torch.ops.aten.threshold_backward.grad_input(d2, a2, 0, grad_input=d2)
        torch.bmm(d2, a1.transpose(1, 2), out=g_w2)
        torch.sum(d2, dim=2, keepdim=True, out=g_b2)
        d1 = torch.bmm(w2.transpose(1, 2), d2, out=buf.d1)
        torch.ops.aten.threshold_backward.grad_input(d1, a1, 0, grad_input=d1)
        torch.sum(d1, dim=2, keepdim=True, out=g_b1)
        if self.onednn:
            self._w1_grads_and_update(d1.view(k * h, b), buf.xt.copy_(x.t()), step)
        else:
            torch.mm(d1.view(k * h, b), x, out=g_w1)
            self.update(step)

    def _w1_grads_and_update(self, d1: Tensor, xt: Tensor, step: int) -> None:
        """Per group: layer 1's weight gradient ``d1 @ x`` by oneDNN, then the group's update.

        Updating right after the GEMM finds the fresh gradient still in cache.
        """
        h, start = self.hidden, 0
        lrs = self._lrs(step)
        for group in self.groups:
            stop = start + group.size
            grad = _linear(d1[start * h : stop * h], xt)  # [G*H, D]
            group.set_grad(0, grad.view(group.size, h, self.n_features))
            group.step(lrs[start:stop], step + 1)
            start = stop

    def _lrs(self, step: int) -> list[float]:
        return [lr * table[step] for lr, table in zip(self.base_lrs, self.lr_tables)]

    def train_mode(self) -> None:
        """Before training steps: schedule-free members hold their training weights ``y``."""
        for group in self.groups:
            if isinstance(group, ModernGroup):
                group.train_mode()

    def eval_mode(self) -> None:
        """Before evaluating: schedule-free members hold their averaged weights ``x``."""
        for group in self.groups:
            if isinstance(group, ModernGroup):
                group.eval_mode()

    def update(self, step: int) -> None:
        """Apply every group's optimizer to the gradients in ``self.grads``."""
        lrs = self._lrs(step)
        start = 0
        for group in self.groups:
            group.step(lrs[start : start + group.size], step + 1)
            start += group.size

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[list[float], list[float]]:
        """Accuracy and mean cross-entropy of every member on ``(x, y)`` (internal order)."""
        k, h = self.size, self.hidden
        w1, b1, w2, b2, w3, b3 = self.params
        correct = torch.zeros(k, dtype=torch.int64, device=self.device)
        loss = torch.zeros(k, dtype=torch.float64, device=self.device)
        x = x.to(self.dtype)
        chunk = max(64, _EVAL_ACTIVATIONS // (k * h))
        for start in range(0, x.shape[0], chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            n = xb.shape[0]
            if self.onednn:
                a1 = _linear(w1, xb.contiguous()).view(k, h, n).add_(b1).relu_()
            else:
                a1 = torch.addmm(b1.view(k * h, 1), w1, xb.t()).relu_().view(k, h, n)
            a2 = torch.baddbmm(b2, w2, a1).relu_()
            z3 = torch.baddbmm(b3, w3, a2)  # [K, C, n]
            correct += (z3.argmax(dim=1) == yb).sum(dim=1)
            logp = torch.log_softmax(z3, dim=1)
            loss -= logp.gather(1, yb.view(1, 1, n).expand(k, 1, n)).sum(dim=(1, 2)).double()
        n_all = max(1, x.shape[0])
        return [c / n_all for c in correct.tolist()], [v / n_all for v in loss.tolist()]

    def remove(self, keys: Iterable[Hashable]) -> None:
        """Drop members from the stacks; the others keep their weights and optimizer state."""
        drop = set(keys)
        if not drop:
            return
        keep = [i for i, key in enumerate(self.keys) if key not in drop]
        keep_t = torch.tensor(keep, dtype=torch.int64, device=self.device)
        params = [p.index_select(0, keep_t) for p in self._member_view(self.params)]
        self.groups = keep_groups(self.groups, keep)
        self.keys = [self.keys[i] for i in keep]
        self.configs = [self.configs[i] for i in keep]
        self.lr_tables = [self.lr_tables[i] for i in keep]
        self.base_lrs = [self.base_lrs[i] for i in keep]
        self.params = [params[0].view(-1, self.n_features), *params[1:]]
        self.grads = self._gradient_buffers()
        self.loss_sum = self.loss_sum.index_select(0, keep_t)
        self._bind()

    def state_dict(self, key: Hashable) -> dict[str, Tensor]:
        """Member ``key``'s weights under ``mnist_mlp()``'s names (copies, on the device)."""
        k = self.keys.index(key)
        w1, b1, w2, b2, w3, b3 = self._member_view(self.params)
        tensors = (w1[k], b1[k, :, 0], w2[k], b2[k, :, 0], w3[k], b3[k, :, 0])
        return {name: t.clone() for name, t in zip(_NAMES, tensors)}
