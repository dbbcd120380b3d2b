"""The generic population trainer: K copies of any ``nn.Module`` trained at once by ``torch.func``.

Member ``k``'s parameters and buffers are slices ``[k]`` of stacks ``[K, *shape]`` (built
from ``torch.manual_seed(init_seed); factory()`` per member, as the reference trainer
builds its model). One step runs ``vmap(functional_call(model, ...))`` over the member
dimension with the shared minibatch, takes each member's mean loss (``Task.loss_fn()``),
and differentiates the *sum* of the members' losses, so each member's gradient is exactly
its own. The optimizer updates are those of the seed-MLP population
(:mod:`advisor.train.population_optim`, :mod:`advisor.train.population_modern`): each
group sees the stacks as ``[G, rows, cols]`` views (scalars ``[G, 1, 1]``, vectors
``[G, n, 1]``, matrices as they are, higher ranks ``[G, d0, rest]``: every update rule there
is elementwise or per-member except Adafactor, which takes the natural shapes and factors
the last two dimensions as torch does).

- **BatchNorm** works with *batched buffers*: running statistics are stacked ``[K, C]``
  and updated in place under ``vmap``, member by member, as ``nn.BatchNorm`` would.
  (Schedule-free methods, which recompute BatchNorm statistics at their averaged weights,
  go to the reference trainer for models with BatchNorm; see
  :func:`advisor.train.func_fit.func_unsupported`.)
- **Dropout** and other random ops run with ``randomness="different"``: each member draws
  its own masks, from one generator seeded with the population's ``seed`` (recorded in
  every member's result). A member's masks depend on that seed and on its place in the
  population, so they are not those the reference trainer would draw. On a CPU the masks
  come from 16-bit draws (:mod:`advisor.train.fast_masks`, 5x cheaper than torch's).
- On a CPU it keeps freed host memory in the process (:mod:`advisor.train.host_memory`):
  a population's activations are megabytes, and fresh pages for them every step cost a
  third of the transformer encoder's step.
- A model whose forward, loss or backward cannot be vmapped (``nn.LSTM`` and ``nn.GRU``
  have no batching rule) is found by :func:`advisor.train.func_fit.vmap_problem` on one
  batch; the caller then trains it on the reference trainer with that line as the reason.
- Attention runs through the math kernel of ``scaled_dot_product_attention`` and without
  the ``nn.TransformerEncoderLayer`` fast path: their fused CPU kernels have no batching
  rule, and vmap would loop over the members one at a time. ``nn.MultiheadAttention``
  modules get a forward written for vmap (:mod:`advisor.train.vmap_attention`).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from itertools import groupby

import torch
from torch import Tensor, nn

from advisor.data.dataset import Dataset
from advisor.data.task import Task
from advisor.train.fast_masks import FastMasks
from advisor.train.func_fit import (
    member_losses,
    member_outputs,
    stack_states,
    use_population_forward,
    vmap_friendly,
)
from advisor.train.host_memory import keep_freed_memory
from advisor.train.layout import model_layout
from advisor.train.members import MemberConfig
from advisor.train.population import MAX_GROUP
from advisor.train.population_modern import AdafactorGroup, ModernGroup, MuonGroup, make_group
from advisor.train.population_optim import (
    UpdateGroup,
    group_key,
    keep_groups,
    keep_rows,
    torch_settings,
)
from advisor.train.reference import as_device, build_model
from advisor.train.schedules import lr_factors

# Evaluation walks a split in chunks of at most this many output numbers (K*rows*outputs).
_EVAL_NUMBERS = 1 << 22


def _dense(t: Tensor) -> bool:
    """Whether ``t`` covers its storage without gaps or overlaps (a permuted contiguous)."""
    order = sorted(range(t.dim()), key=lambda d: t.stride(d))
    expected = 1
    for d in order:
        if t.shape[d] != 1 and t.stride(d) != expected:
            return False
        expected *= t.shape[d]
    return True


def _like_param(p: Tensor, g: Tensor | None) -> Tensor:
    """The gradient ``g`` of ``p`` in ``p``'s memory layout (a copy only if it differs)."""
    if g is None:
        return torch.zeros_like(p)
    return g if g.stride() == p.stride() else torch.empty_like(p).copy_(g)


def _as_3d(t: Tensor) -> Tensor:
    """A ``[G, *shape]`` stack as the ``[G, rows, cols]`` view the update groups take.

    A stack whose last two dimensions are transposed in memory stays as it is (3-D) or is
    viewed over its leading dimensions."""
    g = t.shape[0]
    if t.dim() == 1:
        return t.view(g, 1, 1)
    if t.dim() == 2:
        return t.view(g, -1, 1)
    return t if t.dim() == 3 else t.view(g, t.shape[1], -1)


def _group_view(group: UpdateGroup | ModernGroup, t: Tensor) -> Tensor:
    """The view of a stack that ``group`` updates.

    Adafactor and Muon see every matrix as it is (they treat rows and columns apart). The
    elementwise rules see a transposed stack (a linear layer's weight, laid out as its
    gradient comes) through its transpose, which is contiguous: the fused kernels then
    run over contiguous memory instead of copying each member's slice in and out.
    """
    if isinstance(group, AdafactorGroup) and t.dim() > 3:
        return t  # factored over its last two dimensions, as torch does
    view = _as_3d(t)
    if isinstance(group, (AdafactorGroup, MuonGroup)) or view.is_contiguous():
        return view
    return view.mT if view.mT.is_contiguous() else view


class FuncPopulation:
    """K copies of a model with their optimizers; see the module docstring.

    ``configs`` and ``keys`` are in the caller's order; members are reordered so that each
    update group is contiguous (``self.keys`` is the internal order). ``data`` gives the
    model its example input (for the parameter roles) and the task's targets.
    """

    def __init__(
        self,
        configs: Sequence[MemberConfig],
        keys: Sequence[Hashable],
        *,
        model_factory: Callable[[], nn.Module] | None,
        data: Dataset,
        total_steps: int,
        task: Task | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        fused: bool | None = None,
        seed: int = 0,
    ) -> None:
        self.device = as_device(device)
        self.dtype = dtype
        self.task = task or Task()
        self.loss_fn = self.task.loss_fn()
        self.seed = seed
        if self.device.type == "cpu":
            keep_freed_memory()
        # other dropouts' masks from 16-bit draws on a CPU, while the model draws any
        self._fast_masks = self.device.type == "cpu"
        fused = self.device.type == "cpu" if fused is None else fused
        settings = [torch_settings(c.optimizer, c.hyperparameters) for c in configs]
        gkeys = [group_key(s) for s in settings]
        first = {g: i for i, g in reversed(list(enumerate(gkeys)))}
        order = sorted(range(len(configs)), key=lambda i: first[gkeys[i]])
        self.keys: list[Hashable] = [keys[i] for i in order]
        self.configs: list[MemberConfig] = [configs[i] for i in order]
        models = [
            build_model(c, data, model_factory).to(device=self.device, dtype=dtype)
            for c in self.configs
        ]
        trainable = [n for n, p in models[0].named_parameters() if p.requires_grad]
        stacked = stack_states(models, "named_parameters")
        self.names = trainable
        self.params = [stacked[n] for n in trainable]
        self.fixed = {n: t for n, t in stacked.items() if n not in trainable}
        self.buffers = stack_states(models, "named_buffers")
        # after stacking: the example forward pass moves BatchNorm statistics
        with torch.random.fork_rng(devices=[]):
            example = data.x_train[:2].to(device=self.device, dtype=dtype)
            layout = model_layout(models[0], example)
        roles = {p.name: p.role for p in layout.params}
        self.base = copy.deepcopy(models[0]).to("meta")
        use_population_forward(self.base, self.device)
        del models
        runs = [list(m) for _, m in groupby(order, key=lambda i: gkeys[i])]
        role_list = [roles.get(n, "other") for n in trainable]
        self.groups: list[UpdateGroup | ModernGroup] = [
            make_group(
                [settings[i] for i in run[start : start + MAX_GROUP]], fused=fused, roles=role_list
            )
            for run in runs
            for start in range(0, len(run), MAX_GROUP)
        ]
        tables = {c.schedule: lr_factors(c.schedule, max(1, total_steps)) for c in self.configs}
        self.lr_tables = [tables[c.schedule] for c in self.configs]
        self.base_lrs = [c.resolved()["lr"] for c in self.configs]
        self.loss_sum = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        self._losses = member_losses(self.base, self.loss_fn)
        self._outputs = member_outputs(self.base)
        self._rng_state: Tensor | None = None
        self._cuda_rng_state: Tensor | None = None
        y = data.y_train[:2].to(self.device)
        y = y.to(dtype) if y.is_floating_point() else y
        self.params = self._gradient_layout(data.x_train[:2].to(device=self.device, dtype=dtype), y)
        self._bind(None)

    @property
    def size(self) -> int:
        return len(self.keys)

    def _gradient_layout(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """The stacks copied into the memory layout their gradients come in.

        vmap's backward returns some weight gradients transposed (a linear layer's, as
        ``[K, out, in]`` with the strides of ``[K, in, out]``); the fused optimizer kernels
        need a parameter, its gradient and its state laid out alike, and copying every
        gradient costs a quarter of an MLP step. One backward pass on ``x`` (the caller's
        random state and the BatchNorm statistics untouched) on ``(x, y)`` finds the layout.
        """
        leaves = [p.detach().clone().requires_grad_() for p in self.params]
        params = {**dict(zip(self.names, leaves)), **self.fixed}
        buffers = {n: b.clone() for n, b in self.buffers.items()}
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), vmap_friendly():
            losses = self._losses(params, buffers, x, y)
            grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        out = []
        for p, g in zip(self.params, grads):
            if g is None or g.stride() == p.stride() or not _dense(g) or p.dim() > 3:
                out.append(p)
            else:
                out.append(
                    torch.empty_strided(p.shape, g.stride(), dtype=p.dtype, device=p.device).copy_(
                        p
                    )
                )
        return out

    def _bind(self, grads: Sequence[Tensor] | None) -> None:
        """Give each group its views of the stacks (and of ``grads``, when there are any)."""
        grads = [torch.zeros_like(p) for p in self.params] if grads is None else grads
        start = 0
        for group in self.groups:
            stop = start + group.size
            group.bind(
                [_group_view(group, p[start:stop]) for p in self.params],
                [_group_view(group, g[start:stop]) for g in grads],
            )
            start = stop

    def _set_grads(self, grads: Sequence[Tensor]) -> None:
        start = 0
        for group in self.groups:
            stop = start + group.size
            for i, g in enumerate(grads):
                group.set_grad(i, _group_view(group, g[start:stop]))
            start = stop

    @contextlib.contextmanager
    def _random(self) -> Iterator[None]:
        """Draws inside come from the population's own generator (seeded with ``seed``)."""
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            if self._rng_state is None:
                torch.manual_seed(self.seed)
            else:
                torch.set_rng_state(self._rng_state)
                if cuda and self._cuda_rng_state is not None:
                    torch.cuda.set_rng_state(self._cuda_rng_state, self.device)
            try:
                yield
            finally:
                self._rng_state = torch.get_rng_state()
                if cuda:
                    self._cuda_rng_state = torch.cuda.get_rng_state(self.device)

    @contextlib.contextmanager
    def _masks(self) -> Iterator[None]:
        """The forward pass under :class:`FastMasks` until a step draws no mask."""
        if not self._fast_masks:
            yield
            return
        mode = FastMasks()
        with mode:
            yield
        self._fast_masks = mode.draws > 0

    def train_step(self, x_all: Tensor, y_all: Tensor, idx: Tensor, step: int) -> None:
        """Forward, backward and update of every member on rows ``idx``; ``step`` is 0-based."""
        x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)
        leaves = [p.detach().requires_grad_() for p in self.params]
        params = {**dict(zip(self.names, leaves)), **self.fixed}
        with self._random(), vmap_friendly():
            with self._masks():
                losses = self._losses(params, self.buffers, x, y)  # [K]
            grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        grads = tuple(_like_param(p, g) for p, g in zip(self.params, grads))
        self.loss_sum += losses.detach().double()
        self._set_grads(grads)
        lrs = [lr * table[step] for lr, table in zip(self.base_lrs, self.lr_tables)]
        start = 0
        with torch.no_grad():
            for group in self.groups:
                group.step(lrs[start : start + group.size], step + 1)
                start += group.size

    def train_mode(self) -> None:
        """Before training steps: train mode; schedule-free members hold their ``y``."""
        self.base.train()
        for group in self.groups:
            if isinstance(group, ModernGroup):
                group.train_mode()

    def eval_mode(self) -> None:
        """Before evaluating: eval mode; schedule-free members hold their averaged ``x``."""
        self.base.eval()
        for group in self.groups:
            if isinstance(group, ModernGroup):
                group.eval_mode()

    @torch.no_grad()
    def outputs(self, x: Tensor) -> Tensor:
        """Every member's outputs on ``x`` (``[K, N, ...]``), in the model's current mode."""
        x = x.to(self.dtype)
        params = {**dict(zip(self.names, self.params)), **self.fixed}
        chunks = []
        with self._random(), vmap_friendly():
            first = self._outputs(params, self.buffers, x[:1])
            per_row = max(1, first[0].numel()) * self.size
            chunk = max(64, _EVAL_NUMBERS // per_row)
            for start in range(0, x.shape[0], chunk):
                chunks.append(self._outputs(params, self.buffers, x[start : start + chunk]))
        return torch.cat(chunks, dim=1) if chunks else first[:, :0]

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[list[float], list[float]]:
        """The task's metric and mean loss of every member on ``(x, y)`` (internal order)."""
        if x.shape[0] == 0:
            return [math.nan] * self.size, [math.nan] * self.size
        out = self.outputs(x)
        metric = self.task.metric_fn()
        return (
            [float(metric(out[k], y)) for k in range(self.size)],
            [float(self.loss_fn(out[k], y)) for k in range(self.size)],
        )

    def remove(self, keys: Iterable[Hashable]) -> None:
        """Drop members from the stacks; the others keep their weights and optimizer state."""
        drop = set(keys)
        if not drop:
            return
        keep = [i for i, key in enumerate(self.keys) if key not in drop]
        keep_t = torch.tensor(keep, dtype=torch.int64, device=self.device)
        self.params = [keep_rows(p, keep_t) for p in self.params]
        self.fixed = {n: t.index_select(0, keep_t) for n, t in self.fixed.items()}
        self.buffers = {n: t.index_select(0, keep_t) for n, t in self.buffers.items()}
        self.groups = keep_groups(self.groups, keep)
        self.keys = [self.keys[i] for i in keep]
        self.configs = [self.configs[i] for i in keep]
        self.lr_tables = [self.lr_tables[i] for i in keep]
        self.base_lrs = [self.base_lrs[i] for i in keep]
        self.loss_sum = self.loss_sum.index_select(0, keep_t)
        self._bind(None)

    def state_dict(self, key: Hashable) -> dict[str, Tensor]:
        """Member ``key``'s parameters and buffers under the model's names (copies)."""
        k = self.keys.index(key)
        out = {n: p[k].clone() for n, p in zip(self.names, self.params)}
        out.update({n: t[k].clone() for n, t in self.fixed.items()})
        out.update({n: t[k].clone() for n, t in self.buffers.items()})
        return out
