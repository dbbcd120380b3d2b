"""The reference trainer: any ``nn.Module``, any registered optimizer, one member at a time.

It is the textbook loop without a DataLoader: minibatches are rows of tensors already on
the device, in the order of :func:`advisor.train.batches.epoch_permutation`; the optimizers
come from :func:`advisor.knowledge.optimizers.create_optimizers` (one, or for Muon two: Muon on
the hidden 2-D weights that :func:`advisor.train.layout.model_layout` finds, AdamW on the
rest); the schedule is a ``LambdaLR`` per optimizer, stepped after every optimizer step.
Schedule-free optimizers get ``optimizer.train()`` before each epoch's steps and
``optimizer.eval()`` before each evaluation (so the returned model holds the averaged
weights), and the model's BatchNorm statistics are recomputed after ``eval()``
(:func:`recompute_batchnorm`). Full-batch optimizers (L-BFGS) take one
``optimizer.step(closure)`` per epoch over the whole training set (the closure accumulates
gradients over chunks of :data:`FULL_BATCH_CHUNK` rows to bound memory), so an L-BFGS
"epoch" is up to ``max_iter`` (torch default 20) quasi-Newton iterations.

It serves user models, optimizers the population trainer lacks, and the exactness tests
of the population trainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advisor.core.devices import resolve_device
from advisor.data.dataset import Dataset
from advisor.data.task import LossFn, Task
from advisor.knowledge.optimizers import create_optimizers
from advisor.train.batches import batch_bounds, epoch_permutation
from advisor.train.layout import model_layout
from advisor.train.members import (
    CHECK_EVERY,
    MemberConfig,
    MemberLog,
    MemberResult,
    OnEpoch,
    divergence_reason,
    epoch_report,
    keys_to_stop,
    task_limit,
)
from advisor.train.models import mnist_mlp
from advisor.train.schedules import lr_lambda

#: Rows per forward pass when a full-batch closure or an evaluation walks a whole split.
FULL_BATCH_CHUNK = 8192
#: Training minibatches run through a model to recompute its BatchNorm statistics.
BATCHNORM_BATCHES = 50


@dataclass(frozen=True)
class ReferenceRun:
    """The result of one reference run and the trained model (on the training device)."""

    result: MemberResult
    model: nn.Module


def as_device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else resolve_device(device)


def build_model(
    config: MemberConfig,
    data: Dataset,
    model_factory: Callable[[], nn.Module] | None = None,
) -> nn.Module:
    """``torch.manual_seed(config.init_seed)`` then the factory (default: the seed MLP).

    The global CPU random state of the caller is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.init_seed)
        if model_factory is None:
            return mnist_mlp(n_features=data.n_features, n_classes=data.n_classes)
        return model_factory()


def _is_seed_task(task: Task | None) -> bool:
    return task is None or (task.loss == "cross_entropy" and task.metric == "accuracy")


@torch.no_grad()
def evaluate_module(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Task | None = None
) -> tuple[float, float]:
    """The task's metric and mean loss of ``model`` on ``(x, y)``, in eval mode.

    The default task gives accuracy and mean cross-entropy.
    """
    was_training = model.training
    model.eval()
    if task is not None and not _is_seed_task(task):
        outputs = [
            model(x[start : start + FULL_BATCH_CHUNK])
            for start in range(0, x.shape[0], FULL_BATCH_CHUNK)
        ]
        model.train(was_training)
        if not outputs:
            return float("nan"), float("nan")
        out = torch.cat(outputs)
        return float(task.metric_fn()(out, y)), float(task.loss_fn()(out, y))
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], FULL_BATCH_CHUNK):
        logits = model(x[start : start + FULL_BATCH_CHUNK])
        target = y[start : start + FULL_BATCH_CHUNK]
        loss += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(dim=1) == target).sum()
    model.train(was_training)
    n = max(1, x.shape[0])
    return float(correct) / n, float(loss) / n


@torch.no_grad()
def recompute_batchnorm(
    model: nn.Module, x: torch.Tensor, batch_size: int, batches: int = BATCHNORM_BATCHES
) -> bool:
    """Recompute BatchNorm running statistics at the current weights; False if there is none.

    Schedule-free training collects them at the training weights ``y``; evaluation uses the
    averaged ``x`` (Defazio et al. 2024, and the schedulefree README). The statistics are
    reset and averaged (``momentum=None``) over the first ``batches`` minibatches of ``x``,
    in train mode without gradients; the caller's random state is left as it was.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        for start in range(0, min(x.shape[0], batches * batch_size), batch_size):
            model(x[start : start + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return True


def _full_batch_closure(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
) -> Callable[[], torch.Tensor]:
    n = x.shape[0]

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        total = torch.zeros((), device=x.device)
        for start in range(0, n, FULL_BATCH_CHUNK):
            xb, yb = x[start : start + FULL_BATCH_CHUNK], y[start : start + FULL_BATCH_CHUNK]
            loss = loss_fn(model(xb), yb) * (xb.shape[0] / n)  # batch mean -> share of the sum
            loss.backward()  # type: ignore[no-untyped-call]
            total += loss.detach()
        return total

    return closure


def train_reference(
    config: MemberConfig,
    data: Dataset,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    data_seed: int = 0,
    device: str | torch.device = "cpu",
    on_epoch: OnEpoch | None = None,
    evaluate_test: bool = False,
    model_factory: Callable[[], nn.Module] | None = None,
    key: Hashable = None,
    known_keys: Iterable[Hashable] | None = None,
    start_time: float | None = None,
    dtype: torch.dtype | None = None,
    task: Task | None = None,
) -> ReferenceRun:
    """Train one member with ``torch.optim``; see :func:`advisor.train.train_members`.

    ``dtype`` (e.g. ``torch.float64`` for exactness checks) converts the model and the data;
    ``None`` keeps the model's own dtype and float32 data. ``known_keys`` are the keys that
    ``on_epoch`` may name (default: this member's key). ``task`` (default: classification
    with cross-entropy, judged by accuracy) gives the loss and the metric.
    """
    t0 = time.perf_counter() if start_time is None else start_time
    dev = as_device(device)
    key = config.key if key is None else key
    known = {key} if known_keys is None else set(known_keys)
    info = config.info
    data = data.to(dev)
    model = build_model(config, data, model_factory).to(dev)
    if dtype is not None:
        model = model.to(dtype)
    first = next(model.parameters(), None)
    x_dtype = dtype or (first.dtype if first is not None else torch.float32)
    x_train, x_val = data.x_train.to(x_dtype), data.x_val.to(x_dtype)
    y_train, y_val, y_test = data.y_train, data.y_val, data.y_test
    if task is not None and task.kind == "regression":
        y_train, y_val, y_test = (t.to(x_dtype) for t in (y_train, y_val, y_test))
    loss_fn = (task or Task()).loss_fn()
    limit = task_limit(task, data)
    n = x_train.shape[0]
    layout = None
    if info.param_shapes == "2d":
        with torch.random.fork_rng(devices=[]):  # the forward pass may draw dropout masks
            layout = model_layout(model, x_train[:2])
    optimizers = create_optimizers(config.optimizer, model, config.hyperparameters, layout=layout)
    optimizer = optimizers[0]
    bounds = batch_bounds(n, batch_size)
    total_steps = epochs if info.full_batch else epochs * len(bounds)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, lr_lambda(config.schedule, max(1, total_steps)))
        for o in optimizers
    ]
    log = MemberLog(key, config)
    log.trainer = "reference"
    model.train()
    for epoch in range(1, epochs + 1):
        reason: str | None = None
        if info.train_eval:
            for o in optimizers:
                o.train()  # type: ignore[attr-defined]
        if info.full_batch:
            closure = _full_batch_closure(model, optimizer, x_train, y_train, loss_fn)
            train_loss = float(optimizer.step(closure))  # type: ignore[arg-type]
            schedulers[0].step()
            reason = divergence_reason(train_loss, data.n_classes, limit=limit)
        else:
            perm = epoch_permutation(n, data_seed=data_seed, epoch=epoch, device=dev)
            loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
            seen, seen_sum = 0, 0.0
            for step, (start, stop) in enumerate(bounds, 1):
                idx = perm[start:stop]
                for o in optimizers:
                    o.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_train.index_select(0, idx)), y_train.index_select(0, idx))
                loss.backward()  # type: ignore[no-untyped-call]
                for o, scheduler in zip(optimizers, schedulers):
                    o.step()
                    scheduler.step()
                loss_sum += loss.detach()
                if step % CHECK_EVERY == 0 or step == len(bounds):
                    total = float(loss_sum)  # one device sync per window
                    reason = divergence_reason(
                        (total - seen_sum) / (step - seen), data.n_classes, limit=limit
                    )
                    if reason is not None:
                        break
                    seen, seen_sum = step, total
            train_loss = float(loss_sum) / len(bounds)
        if info.train_eval:
            for o in optimizers:
                o.eval()  # type: ignore[attr-defined]
            recompute_batchnorm(model, x_train, batch_size)
        if reason is None:
            val_accuracy, val_loss = evaluate_module(model, x_val, y_val, task)
            reason = divergence_reason(val_loss, data.n_classes, "validation loss")
            if reason is None:
                log.add_epoch(val_accuracy, val_loss, train_loss)
        if reason is not None:
            log.end("diverged", reason)
        if on_epoch is not None:
            running = [log] if reason is None else []
            diverged = {} if reason is None else {key: reason}
            report = epoch_report(epoch, running, diverged, time.perf_counter() - t0)
            if keys_to_stop(on_epoch(report), [m.key for m in running], known):
                log.end("stopped", "stopped by on_epoch")
        if log.status != "complete":
            break
    if evaluate_test and log.status in ("complete", "stopped"):  # stopped: tested as it stopped
        log.test_accuracy, _ = evaluate_module(model, data.x_test.to(x_dtype), y_test, task)
    return ReferenceRun(log.result(), model)
