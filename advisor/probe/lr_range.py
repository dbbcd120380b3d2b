"""The LR range test: raise the learning rate exponentially, watch the loss, narrow the range.

Smith 2017 (*Cyclical Learning Rates for Training Neural Networks*, WACV, Sec. 3.3) and
fastai's ``lr_find``: train from a fresh model for ``steps`` minibatches while the learning
rate grows geometrically from ``min_lr`` to ``max_lr``; record the loss of every batch
(computed before that batch's update), smooth it with a bias-corrected exponential moving
average (``smooth`` = beta) and stop once the smoothed loss exceeds ``diverge_factor`` times
the best so far. From the curve:

- ``suggested_lr``: where the smoothed loss falls fastest (the steepest descent of the
  smoothed loss against log lr, skipping the first 10 steps and the last one), as
  Lightning's ``lr_find().suggestion()`` does;
- ``range``: the narrowed search range for tuning, an :class:`advisor.knowledge.optimizers.Range`
  with ``source="lr_range_test"``: ``[lr_min / 100, lr_min]`` (log scale), where ``lr_min``
  is the learning rate at the minimum of the smoothed loss (see :func:`narrow_range`).

For the seed MLP (``model=None``) every candidate trains in one population (one member per
candidate, :class:`advisor.train.Population` with an ``lr_table`` ramp); other models run
one candidate at a time with ``torch.optim``. Every run starts from a fresh model; nothing
global is changed. Full-batch optimizers (L-BFGS) have no learning-rate range to find:
their line search picks the step.

>>> lrs = lr_ramp(1e-4, 1.0, 5)
>>> [f"{x:.0e}" for x in lrs]
['1e-04', '1e-03', '1e-02', '1e-01', '1e+00']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.core.devices import resolve_device
from advisor.core.errors import InvalidValueError
from advisor.data.datasets import as_dataset
from advisor.data.task import Task
from advisor.knowledge.optimizers import Range, get_optimizer_info
from advisor.knowledge.recommender import Reason, printed_code
from advisor.knowledge.sparse import build_optimizers
from advisor.train import MemberConfig, Population
from advisor.train.batches import minibatches
from advisor.train.layout import model_layout
from advisor.train.model_ref import build, resolve_model_arg, seeded, task_for

if TYPE_CHECKING:
    import torch
    from torch import nn

    from advisor.data.dataset import Dataset
    from advisor.data.task import LossFn
    from advisor.knowledge.recommender import Recommendation

#: The narrowed range runs from ``lr_min / LOW_DIVISOR`` to ``lr_min * HIGH_FACTOR`` ...
LOW_DIVISOR, HIGH_FACTOR = 100.0, 1.0
#: ... or to ``lr_min * STILL_FALLING_FACTOR`` when the loss still fell at ``max_lr``.
STILL_FALLING_FACTOR = 10.0
SOURCE = (
    "Smith 2017, Cyclical Learning Rates for Training Neural Networks (WACV), Sec. 3.3 "
    "(the LR range test); fastai lr_find and Lightning's Tuner.lr_find (smoothed loss, "
    "early stop, steepest-descent suggestion)"
)
#: Steps skipped at the start and end when looking for the steepest descent (Lightning's).
SKIP_BEGIN, SKIP_END = 10, 1


@dataclass(frozen=True)
class LRRangeResult:
    """One optimizer's LR range test.

    ``lrs``, ``losses`` (raw minibatch cross-entropy) and ``smoothed`` have one entry per
    step run; ``stopped`` is ``"diverged"`` (smoothed loss > ``diverge_factor`` x best),
    ``"non-finite"`` (NaN or infinite loss) or ``"completed"``. ``min_loss_lr`` is the
    learning rate at the smallest smoothed loss, ``diverged_lr`` the one that stopped the run
    (``None`` when it completed).
    """

    optimizer: str
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    stopped: str
    suggested_lr: float | None
    min_loss_lr: float | None
    diverged_lr: float | None
    range: Range | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "lrs": list(self.lrs),
            "losses": list(self.losses),
            "smoothed": list(self.smoothed),
            "stopped": self.stopped,
            "suggested_lr": self.suggested_lr,
            "min_loss_lr": self.min_loss_lr,
            "diverged_lr": self.diverged_lr,
            "range": None if self.range is None else self.range.to_dict(),
        }


def lr_ramp(min_lr: float, max_lr: float, steps: int) -> list[float]:
    """``steps`` learning rates growing geometrically from ``min_lr`` to ``max_lr``."""
    if steps == 1:
        return [min_lr]
    ratio = max_lr / min_lr
    return [min_lr * ratio ** (t / (steps - 1)) for t in range(steps)]


class _Curve:
    """The loss curve of one run while it is recorded: smoothing and the stop criterion."""

    def __init__(self, beta: float, diverge_factor: float) -> None:
        self.beta, self.factor = beta, diverge_factor
        self.avg, self.best = 0.0, math.inf
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.stopped = "completed"
        self.stop_lr: float | None = None

    def add(self, lr: float, loss: float) -> bool:
        """Record one step; False when the run should stop."""
        if not math.isfinite(loss):
            self.stopped, self.stop_lr = "non-finite", lr
            return False
        self.avg = self.beta * self.avg + (1.0 - self.beta) * loss
        smoothed = self.avg / (1.0 - self.beta ** (len(self.losses) + 1))
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        self.best = min(self.best, smoothed)
        if len(self.losses) > 1 and smoothed > self.factor * self.best:
            self.stopped, self.stop_lr = "diverged", lr
            return False
        return True

    def result(self, optimizer: str) -> LRRangeResult:
        lrs, smoothed = self.lrs, self.smoothed
        i_min = min(range(len(smoothed)), key=smoothed.__getitem__) if smoothed else None
        min_lr = None if i_min is None else lrs[i_min]
        still_falling = i_min == len(smoothed) - 1 and self.stopped == "completed"
        return LRRangeResult(
            optimizer=optimizer,
            lrs=tuple(lrs),
            losses=tuple(self.losses),
            smoothed=tuple(smoothed),
            stopped=self.stopped,
            suggested_lr=steepest_descent(lrs, smoothed),
            min_loss_lr=min_lr,
            diverged_lr=self.stop_lr,
            range=None if min_lr is None else narrow_range(min_lr, still_falling),
        )


def steepest_descent(lrs: Sequence[float], smoothed: Sequence[float]) -> float | None:
    """The learning rate where the smoothed loss falls fastest (Lightning's suggestion).

    The slope is taken per step (``numpy.gradient`` with unit spacing: per step of log lr,
    as the ramp is geometric) over the steps after the first :data:`SKIP_BEGIN` and before
    the last :data:`SKIP_END`; ``None`` with fewer than 2 such steps.
    """

    losses = np.asarray(smoothed[SKIP_BEGIN : len(smoothed) - SKIP_END], dtype=float)
    if losses.size < 2:
        return None
    return float(lrs[SKIP_BEGIN + int(np.argmin(np.gradient(losses)))])


def narrow_range(min_loss_lr: float, still_falling: bool = False) -> Range:
    """The search range ``[lr_min / 100, lr_min]`` (log scale; ``lr_min * 10`` at the top
    when the smoothed loss was still falling at the last step, i.e. ``max_lr`` was too low).

    Why these ends. The smoothed loss bottoms out where the learning rate is already too
    large to train at: Smith 2017 (Sec. 3.3) takes the point where the loss stops falling
    as the *upper* bound of a cyclical schedule, and fastai's rule of thumb trains at
    ``lr_min / 10``. The moving average lags behind the ramp (beta 0.98 averages about
    50 steps, several decades of learning rate at 100 steps), which moves the minimum later
    still, so ``lr_min`` itself is a safe top. Two decades below it leave room for slower,
    decaying schedules and long runs. On mnist-5k (5 epochs, batch 128) the best rate of a
    grid search sits 3-12x below ``lr_min`` for Adam and Nesterov SGD, inside the range
    (``tests/test_lr_range.py`` checks it); the registry's ranges are 3-3.5 decades wide
    and put Adam's optimum at their top edge.
    """
    high = min_loss_lr * (STILL_FALLING_FACTOR if still_falling else HIGH_FACTOR)
    return Range(
        float(f"{min_loss_lr / LOW_DIVISOR:.3g}"), float(f"{high:.3g}"), True, "lr_range_test"
    )


def _check(min_lr: float, max_lr: float, steps: int, smooth: float, diverge_factor: float) -> None:
    if not (0 < min_lr < max_lr) or not math.isfinite(max_lr):
        raise InvalidValueError(
            f"the LR range test needs 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise InvalidValueError(f"steps must be an int >= 2, got {steps!r}.")
    if not 0 <= smooth < 1:
        raise InvalidValueError(
            f"smooth (the moving-average beta) must be in [0, 1), got {smooth}."
        )
    if not diverge_factor > 1:
        raise InvalidValueError(f"diverge_factor must be > 1, got {diverge_factor}.")


def lr_range_test(
    candidates: Sequence[str] | str,
    data: Dataset | str,
    *,
    model: nn.Module | Callable[[], nn.Module] | str | None = None,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int = 128,
    seed: int = 0,
    device: str = "auto",
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    plot: str | Path | None = None,
    task: Task | None = None,
) -> dict[str, LRRangeResult]:
    """Run the LR range test for each optimizer in ``candidates`` (registry names).

    ``model``: ``None`` (the seed MLP, all candidates at once as one population), an
    ``nn.Module`` (copied for every run), a factory, or ``"module:factory"``; ``data``: a
    :class:`~advisor.data.dataset.Dataset` or a dataset name. Other hyperparameters keep the
    registry defaults. Each run uses fresh weights (``torch.manual_seed(seed)``) and the
    same minibatches. ``plot``: also write loss against learning rate to this PNG.
    ``task``: the loss comes from it (a regression's MSE, ...; it needs your ``model``).
    Results are in the order of ``candidates``.

    >>> res = lr_range_test(["adam", "nesterov"], "mnist-5k", steps=40, device="cpu")
    >>> r = res["adam"].range
    >>> r.source, r.log, r.low < r.high
    ('lr_range_test', True, True)
    """

    names = [candidates] if isinstance(candidates, str) else list(candidates)
    if not names:
        raise InvalidValueError("give at least one optimizer to the LR range test.")
    infos = [get_optimizer_info(n) for n in names]  # unknown name -> UnknownNameError
    for info in infos:
        if info.full_batch or info.lr_free:
            why = (
                "a full-batch method whose line search picks the step"
                if info.full_batch
                else "learning-rate-free: it estimates its own step size"
            )
            raise InvalidValueError(
                f"{info.name!r} is {why}: it has no learning-rate range to test. Leave it out."
            )
    names = list(dict.fromkeys(info.name for info in infos))
    _check(min_lr, max_lr, steps, smooth, diverge_factor)
    factory, _ = resolve_model_arg(model)
    dev = resolve_device(device)
    ds = as_dataset(data, seed).to(dev)
    lrs = lr_ramp(min_lr, max_lr, steps)
    curves = {name: _Curve(smooth, diverge_factor) for name in names}
    batches = list(minibatches(ds.x_train.shape[0], batch_size, seed, steps))
    task = task_for(factory, task)
    if factory is None:
        _run_population(names, ds, lrs, batches, curves, seed, dev)
    else:
        for name in names:
            _run_module(name, factory, ds, lrs, batches, curves[name], seed, task.loss_fn())
    results = {name: curves[name].result(name) for name in names}
    if plot is not None:
        plot_lr_range(results, Path(plot))
    return results


def _run_population(
    names: Sequence[str],
    ds: Dataset,
    lrs: Sequence[float],
    batches: Sequence[torch.Tensor],
    curves: Mapping[str, _Curve],
    seed: int,
    device: torch.device,
) -> None:

    configs = [MemberConfig(n, {"lr": lrs[0]}, init_seed=seed, key=n) for n in names]
    pop = Population(
        configs,
        list(names),
        n_features=ds.n_features,
        n_classes=ds.n_classes,
        total_steps=len(lrs),
        device=device,
        lr_table=[lr / lrs[0] for lr in lrs],
    )
    x, y = ds.x_train, ds.y_train
    for step, idx in enumerate(batches):
        pop.loss_sum.zero_()
        pop.train_step(x, y, idx.to(device), step)
        losses = pop.loss_sum.tolist()  # [K] each member's loss on this batch, before its update
        stop = [k for k, loss in zip(pop.keys, losses) if not curves[str(k)].add(lrs[step], loss)]
        pop.remove(stop)
        if pop.size == 0:
            return


def _run_module(
    name: str,
    factory: Callable[[], nn.Module],
    ds: Dataset,
    lrs: Sequence[float],
    batches: Sequence[torch.Tensor],
    curve: _Curve,
    seed: int,
    loss_fn: LossFn,
) -> None:
    device = ds.x_train.device
    model = build(factory, ds, seed).to(device)
    model.train()
    with seeded(seed, device):  # dropout masks from the seed; the caller's RNG untouched
        layout = model_layout(model, ds.x_train[:2])
        # what the printed code builds: Muon's split, SparseAdam for sparse tables, train mode
        optimizers = build_optimizers(model, name, {"lr": lrs[0]}, layout=layout)
        for step, idx in enumerate(batches):
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lrs[step]
            idx = idx.to(device)
            model.zero_grad(set_to_none=True)
            loss = loss_fn(model(ds.x_train[idx]), ds.y_train[idx])
            if not curve.add(lrs[step], float(loss.detach())):
                return
            loss.backward()  # type: ignore[no-untyped-call]
            for optimizer in optimizers:
                optimizer.step()


def probe_ranges(
    optimizers: Sequence[str],
    data: Dataset | str,
    *,
    model: nn.Module | Callable[[], nn.Module] | str | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 128,
    seed: int = 0,
    task: Task | None = None,
) -> dict[str, Range]:
    """Narrowed ``lr`` ranges from the LR range test, for a tuner to use instead of its own.

    Full-batch optimizers (L-BFGS), learning-rate-free ones (Prodigy) and runs whose loss
    was never finite are left out of the result: keep their current range. Default test settings (``1e-6 .. 10``, 100 steps).

    >>> ranges = probe_ranges(["adam", "nesterov", "lbfgs"], "mnist-5k", device="cpu")
    >>> sorted(ranges), ranges["adam"].source
    (['adam', 'nesterov'], 'lr_range_test')
    """
    names = [get_optimizer_info(o).name for o in optimizers]
    testable = [
        n for n in names if not (get_optimizer_info(n).full_batch or get_optimizer_info(n).lr_free)
    ]
    if not testable:
        return {}
    dev = device if isinstance(device, str) else str(device)
    results = lr_range_test(
        testable, data, model=model, batch_size=batch_size, seed=seed, device=dev, task=task
    )
    return {n: r.range for n, r in results.items() if r.range is not None}


def plot_lr_range(results: Mapping[str, LRRangeResult], path: Path) -> Path:
    """Smoothed loss against learning rate (log x), one line per optimizer, with each
    suggested learning rate and narrowed range marked; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        if not r.lrs:
            continue
        (line,) = ax.plot(r.lrs, r.smoothed, label=name)
        color = line.get_color()
        ax.plot(r.lrs, r.losses, color=color, alpha=0.2, linewidth=0.8)
        if r.suggested_lr is not None:
            ax.axvline(r.suggested_lr, color=color, linestyle=":", linewidth=1)
        if r.range is not None:
            ax.axvspan(r.range.low, r.range.high, color=color, alpha=0.06)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed; raw faint)")
    finite = [v for r in results.values() for v in r.smoothed[:1]]
    if finite:
        ax.set_ylim(top=2.0 * max(finite))
    ax.set_title("LR range test (dotted: steepest descent; band: narrowed range)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def apply_lr_range(
    recommendation: Recommendation, results: Mapping[str, LRRangeResult]
) -> Recommendation:
    """``recommendation`` with each tested candidate's ``lr`` range replaced by the narrowed
    one (``source="lr_range_test"``), its recommended ``lr`` moved to the suggested one
    (clipped into the range) and the change explained in its reasons."""

    candidates = []
    for c in recommendation.candidates:
        r = results.get(c.optimizer)
        if r is None or r.range is None:
            candidates.append(c)
            continue
        new = r.range
        hp = dict(c.hyperparameters)
        lr = r.suggested_lr if r.suggested_lr is not None else hp["lr"]
        hp["lr"] = float(f"{min(max(lr, new.low), new.high):.4g}")
        code, setup = printed_code(c.optimizer, hp, sparse_gradients=c.sparse is not None)
        before = c.search_space["lr"]
        reason = Reason(
            "lr-range-test",
            f"LR range test: smoothed loss lowest at lr {r.min_loss_lr:.3g}, falling fastest "
            f"at {r.suggested_lr or float('nan'):.3g}; the range is [lr_min / 100, lr_min].",
            SOURCE,
            detail=f"lr {before.low:.3g}..{before.high:.3g} -> {new.low:.3g}..{new.high:.3g}",
        )
        candidates.append(
            replace(
                c,
                search_space=MappingProxyType({**c.search_space, "lr": new}),
                hyperparameters=MappingProxyType(hp),
                torch=code,
                sparse=setup,
                reasons=(*c.reasons, reason),
            )
        )
    return replace(recommendation, candidates=tuple(candidates))


def results_text(results: Mapping[str, LRRangeResult]) -> str:
    """One line per optimizer: how the run ended, the minimum, the suggestion and the range."""
    lines = []
    width = max((len(n) for n in results), default=0)
    for name, r in results.items():
        end = f"{r.stopped} at lr {r.diverged_lr:.3g}" if r.diverged_lr else r.stopped
        if r.range is None:
            lines.append(f"  {name.ljust(width)}  {end} after {len(r.lrs)} steps: no range")
            continue
        lines.append(
            f"  {name.ljust(width)}  {len(r.lrs)} steps, {end}; lowest smoothed loss at lr "
            f"{r.min_loss_lr:.3g}, steepest descent at {r.suggested_lr or float('nan'):.3g} "
            f"→ lr {r.range.low:.3g}..{r.range.high:.3g}"
        )
    return "\n".join(lines)
