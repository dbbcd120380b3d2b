"""A model's outputs checked against the task before anything trains or is measured.

One forward pass on a few training samples: it turns a model that does not fit the data or
the task (a classifier given float targets, three outputs for ten classes, a loss that
returns one value per sample) into one readable line, before it fails deep in torch.
``advisor tune`` and ``advisor profile-model`` both run it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advisor.core.errors import InvalidValueError
from advisor.train.layout import probing

if TYPE_CHECKING:
    from torch import nn

    from advisor.data.dataset import Dataset
    from advisor.data.task import Task

#: Samples run through the model to check its outputs against the task.
CHECK_ROWS = 4


def check_model_task(model: nn.Module, data: Dataset, task: Task) -> None:
    """One forward pass on a few training samples, checked against ``task``: outputs and
    targets of fitting shapes (:meth:`Task.check`), a loss that is a finite scalar, a metric
    that is a number. Raises :class:`InvalidValueError` (one line naming the shapes).

    The model is left as it was (:func:`~advisor.train.layout.probing`): the pass runs in
    eval mode (no BatchNorm statistics updated, no dropout drawn) and draws nothing from the
    global random generator."""
    import torch

    x, y = data.x_train[:CHECK_ROWS], data.y_train[:CHECK_ROWS]
    first = next(model.parameters(), None)
    if first is not None:
        x = x.to(first.device, first.dtype)  # samples are float32; a float64 model gets float64
        y = y.to(first.device)
    try:
        with probing(model):
            out = model(x)
    except Exception as exc:
        raise InvalidValueError(
            f"the model fails on samples of shape {tuple(x.shape)} ({str(x.dtype)[6:]}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise InvalidValueError(f"the model must return a tensor, got {type(out).__name__}.")
    task.check(out, y)
    got = f"outputs {tuple(out.shape)}, targets {tuple(y.shape)}"
    if (
        task.kind == "classification"
        and task.loss == "cross_entropy"
        and out.shape[-1] < data.n_classes
    ):
        raise InvalidValueError(
            f"the data has {data.n_classes} classes but the model gives {out.shape[-1]} "
            f"outputs per sample ({got}): its last layer needs {data.n_classes}."
        )
    try:
        loss = task.loss_fn()(out, y)
    except Exception as exc:
        raise InvalidValueError(
            f"the loss {task.loss_name!r} fails on {got}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise InvalidValueError(
            f"the loss {task.loss_name!r} must return a scalar tensor (the batch mean), got "
            f"{shape} for {got}."
        )
    try:
        float(task.metric_fn()(out, y))
    except Exception as exc:
        raise InvalidValueError(
            f"the metric {task.metric_name!r} must return a number for {got}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
