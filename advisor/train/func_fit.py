"""Whether a model can train in the generic population, and how many members fit.

:func:`vmap_problem` runs two copies of a model through one vmapped training step and an
evaluation, and says in one line why it fails (``nn.LSTM`` and ``nn.GRU`` have no batching
rule); :func:`func_unsupported` names the optimizer settings the population leaves to the
reference trainer; :func:`memory_population` estimates how many members fit in memory.
The vmapped member functions of :mod:`advisor.train.func_population` are built here, so
that the check runs the very code the trainer will.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from advisor.data.task import Task
from advisor.knowledge.optimizers import get_optimizer_info
from advisor.train.fast_masks import fast_dropout, use_fast_dropout
from advisor.train.layout import model_layout, no_transformer_fastpath, probing
from advisor.train.members import MemberConfig
from advisor.train.population import default_population
from advisor.train.reference import as_device
from advisor.train.vmap_attention import use_vmap_attention

_FALLBACK_WARNING = "There is a performance drop because we have not yet implemented"


@contextlib.contextmanager
def vmap_friendly() -> Iterator[None]:
    """Attention by its math kernel, no Transformer fast path, no per-op fallback warnings."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with no_transformer_fastpath(), sdpa_kernel(SDPBackend.MATH), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_FALLBACK_WARNING)
        yield


def use_population_forward(model: nn.Module, device: torch.device) -> None:
    """Give ``model`` (the population's copy) the forward the population runs.

    Self-attention written for vmap (:mod:`advisor.train.vmap_attention`) everywhere; on a
    CPU, dropout masks from 16-bit draws (:mod:`advisor.train.fast_masks`) too.
    """
    cpu = device.type == "cpu"
    if cpu:
        use_fast_dropout(model)
    use_vmap_attention(model, fast_dropout if cpu else None)


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def func_unsupported(config: MemberConfig, model: nn.Module) -> str | None:
    """Why ``config`` cannot train ``model`` in the generic population (``None``: it can)."""
    info = config.info
    if not info.population:
        return f"{info.name} has no population update rule"
    if info.train_eval and _has_batchnorm(model):
        return f"{info.name} recomputes BatchNorm statistics at its averaged weights"
    return None


def stack_states(models: Sequence[nn.Module], named: str) -> dict[str, Tensor]:
    tables = [dict(getattr(m, named)()) for m in models]
    return {
        name: torch.stack([t[name].detach() for t in tables]).contiguous() for name in tables[0]
    }


def member_losses(
    base: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor]
) -> Callable[..., Tensor]:
    from torch.func import functional_call, vmap

    def one(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(functional_call(base, (params, buffers), (x,)), y)

    return vmap(one, in_dims=(0, 0, None, None), randomness="different")  # type: ignore[no-any-return]


def member_outputs(base: nn.Module) -> Callable[..., Tensor]:
    from torch.func import functional_call, vmap

    def one(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(base, (params, buffers), (x,))  # type: ignore[no-any-return]

    return vmap(one, in_dims=(0, 0, None), randomness="different")  # type: ignore[no-any-return]


def vmap_problem(
    model: nn.Module, x: Tensor, y: Tensor, task: Task | None = None, members: int = 2
) -> str | None:
    """One line saying why ``model`` cannot train in the generic population, or ``None``.

    Runs a forward, the loss and a backward of ``members`` copies on the rows ``x``, ``y``
    under ``vmap`` (train mode), then a forward in eval mode; the model and the caller's
    random state are left as they were.
    """
    task = task or Task()
    probe = copy.deepcopy(model)
    use_population_forward(probe, x.device)
    params = stack_states([probe] * members, "named_parameters")
    buffers = stack_states([probe] * members, "named_buffers")
    leaves = {n: p.requires_grad_() for n, p in params.items()}
    try:
        cuda = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), vmap_friendly():
            probe.train()
            losses = member_losses(probe, task.loss_fn())(leaves, buffers, x, y)
            torch.autograd.grad(losses.sum(), list(leaves.values()), allow_unused=True)
            probe.eval()
            with torch.no_grad():
                member_outputs(probe)(params, buffers, x)
    except Exception as exc:  # any failure means: not vmappable; the caller falls back
        text = " ".join(str(exc).split())
        return f"its forward cannot be vmapped ({type(exc).__name__}: {text[:160]})"
    return None


def memory_population(
    model: nn.Module,
    x: Tensor,
    *,
    optimizer: str = "adam",
    device: torch.device | str = "cpu",
    cap: int | None = None,
) -> int:
    """How many members of ``model`` fit in memory when training on batches like ``x``.

    Per member it counts, in bytes of the model's dtype: the parameters, their gradient,
    the optimizer's state (``OptimizerInfo.state_bytes`` from the model's layout) and two
    update temporaries per parameter, plus the activations of one training step, estimated
    as twice the numbers every module outputs on ``x`` (kept for the backward pass, and
    their gradients). The memory available is CUDA's free memory on a CUDA device
    (``torch.cuda.mem_get_info``) and the RAM available (``MemAvailable``, else the free
    pages) elsewhere; half of it is used, to leave room for the data, the allocator and
    the rest of the process. The result is at least 1 and at most ``cap`` (default:
    :func:`advisor.train.default_population` of the device: on a CPU the speed per member
    stops improving long before the memory runs out).

    >>> from advisor.train.models import mnist_mlp
    >>> memory_population(mnist_mlp(), torch.zeros(128, 784), cap=10_000) > 16
    True
    """
    dev = as_device(device)
    first = next(model.parameters(), None)
    itemsize = first.element_size() if first is not None else 4
    n_params = sum(p.numel() for p in model.parameters())
    layout = model_layout(model, x[:2].to(first.device) if first is not None else x[:2])
    state = get_optimizer_info(optimizer).state_bytes(layout, itemsize)
    outputs = 0

    def count(_m: nn.Module, _i: object, out: object) -> None:
        nonlocal outputs
        if isinstance(out, Tensor):
            outputs += out.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with probing(model):
            model(x.to(first.device) if first is not None else x)
    finally:
        for h in hooks:
            h.remove()
    per_member = n_params * itemsize * 4 + state + 2 * outputs * itemsize
    budget = _available_bytes(dev) // 2
    limit = default_population(dev) if cap is None else cap
    return max(1, min(limit, budget // max(1, per_member)))


#: A member's training step (forward and backward, estimated) above which a CPU trains a
#: user's model one at a time: such a step already keeps the cores busy, and vmap's batched
#: matmuls only add their own cost. Between two measured points (1 and 2 threads,
#: docs/VALIDATION.md "CPU time" and docs/BENCHMARKS.md "Generic population"): the
#: benchmark's small transformer encoder, 0.12 GFLOP a step at batch 128, trains 1.5-2.4x
#: faster per member in populations; the validation's 2-layer text transformer, 2.4 GFLOP,
#: at 0.7x (a population of 8 took 8.6 s per run-epoch, one at a time 6.0 s).
CPU_STEP_FLOPS_ALONE = 1e9


def step_flops(model: nn.Module, x: Tensor) -> int:
    """Estimated floating-point operations of one training step of ``model`` on batch ``x``.

    The forward pass's matmuls, convolutions and attention as counted by
    ``torch.utils.flop_counter.FlopCounterMode``, times 3 (the backward pass costs about
    twice the forward). The model is left as it was (:func:`~advisor.train.layout.probing`:
    eval mode counts the same operations).

    >>> step_flops(nn.Linear(10, 5), torch.zeros(4, 10))  # 2 * 4 * 10 * 5, times 3
    1200
    """
    from torch.utils.flop_counter import FlopCounterMode

    first = next(model.parameters(), None)
    with FlopCounterMode(display=False) as counter, probing(model):
        model(x.to(first.device) if first is not None else x)
    return 3 * int(counter.get_total_flops())


def user_population(
    model: nn.Module, x: Tensor, *, device: torch.device | str = "cpu"
) -> tuple[int, str]:
    """How many members of a user's ``model`` to train at once, and why (one line).

    On a CPU, a model trains one at a time when

    - it has convolutions: vmap turns them into grouped ones, little faster per member than
      separate ones (the small CNN: 0.8-1.3x the one-at-a-time speed at K = 1-64,
      docs/BENCHMARKS.md, "Generic population"), and a population's members wait for each
      other;
    - or its training step on ``x`` costs more than :data:`CPU_STEP_FLOPS_ALONE` (see
      :func:`step_flops`): the step is compute-bound, and a population only adds vmap's
      overhead.

    Otherwise as many as :func:`memory_population` allows (at most the device's default
    population).

    >>> user_population(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), torch.zeros(8, 4))[0] > 1
    True
    >>> user_population(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), torch.zeros(8, 1, 5, 5))
    (1, 'one model at a time: on a CPU, vmap turns convolutions into grouped ones, little faster than separate ones')
    >>> user_population(nn.Linear(4096, 4096), torch.zeros(128, 4096))[1]
    'one model at a time: on a CPU, a training step of 12.9 GFLOP already keeps the cores busy'
    """
    dev = as_device(device)
    if dev.type == "cpu" and any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules()):
        return 1, (
            "one model at a time: on a CPU, vmap turns convolutions into grouped ones, "
            "little faster than separate ones"
        )
    if dev.type == "cpu" and (flops := step_flops(model, x)) > CPU_STEP_FLOPS_ALONE:
        return 1, (
            f"one model at a time: on a CPU, a training step of {flops / 1e9:.1f} GFLOP "
            "already keeps the cores busy"
        )
    k = memory_population(model, x, device=dev)
    return k, f"{k} models at once (the generic torch.func population)"


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 30
