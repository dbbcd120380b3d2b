"""What a model learns: the task kind, the loss it trains on and the metric it is judged by.

A :class:`Task` is a value shared by the data (what the targets are), the trainers (which
loss to minimize, which metric to evaluate) and the tuner (which direction is better).

- ``kind``: ``"classification"`` (int64 class targets ``[N]``, outputs ``[N, n_classes]``)
  or ``"regression"`` (float targets, outputs of the targets' shape; ``[N]`` targets also
  accept ``[N, 1]`` outputs).
- ``loss``: ``"cross_entropy"``, ``"mse"``, or a callable ``(outputs, targets) -> scalar``
  tensor, the mean over the batch.
- ``metric``: ``"accuracy"``, ``"neg_mse"`` (negative mean squared error: higher is better),
  or a callable ``(outputs, targets) -> float`` over a whole split; a callable metric needs
  its ``direction`` (``"maximize"`` or ``"minimize"``).

The defaults follow the kind: cross-entropy and accuracy for classification, MSE and
negative MSE for regression, both maximized.

>>> Task("regression").loss, Task("regression").metric, Task("regression").direction
('mse', 'neg_mse', 'maximize')
>>> Task(metric=lambda out, y: 0.0)
Traceback (most recent call last):
...
advisor.core.errors.InvalidValueError: a callable metric needs its direction: Task(metric=fn, direction='maximize') or direction='minimize'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advisor.core.errors import InvalidValueError

if TYPE_CHECKING:
    import torch

TASK_KINDS = ("classification", "regression")
LOSSES = ("cross_entropy", "mse")
METRICS = ("accuracy", "neg_mse")
DIRECTIONS = ("maximize", "minimize")
_DEFAULTS = {
    "classification": ("cross_entropy", "accuracy"),
    "regression": ("mse", "neg_mse"),
}

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
MetricFn = Callable[["torch.Tensor", "torch.Tensor"], float]


def _choice(what: str, value: Any, names: tuple[str, ...]) -> None:
    if isinstance(value, str) and value not in names:
        raise InvalidValueError(
            f"unknown {what} {value!r}: choose one of {', '.join(names)}, or pass a callable."
        )


@dataclass(frozen=True)
class Task:
    """The kind of targets, the training loss and the judging metric (see the module doc)."""

    kind: str = "classification"
    loss: str | LossFn | None = None
    metric: str | MetricFn | None = None
    direction: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise InvalidValueError(
                f"unknown task {self.kind!r}: choose one of {', '.join(TASK_KINDS)}."
            )
        loss, metric = _DEFAULTS[self.kind]
        if self.loss is None:
            object.__setattr__(self, "loss", loss)
        _choice("loss", self.loss, LOSSES)
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise InvalidValueError(
                f"unknown direction {self.direction!r}: choose one of {', '.join(DIRECTIONS)}."
            )
        if self.metric is None:
            object.__setattr__(self, "metric", metric)
        _choice("metric", self.metric, METRICS)
        if callable(self.metric) and self.direction is None:
            raise InvalidValueError(
                "a callable metric needs its direction: Task(metric=fn, direction='maximize') "
                "or direction='minimize'."
            )
        if self.direction is None:
            object.__setattr__(self, "direction", "maximize")
        if self.kind == "regression" and self.loss == "cross_entropy":
            raise InvalidValueError(
                "loss 'cross_entropy' is for class targets, not a regression: use loss='mse' "
                "or a callable."
            )
        if self.kind == "regression" and self.metric == "accuracy":
            raise InvalidValueError(
                "metric 'accuracy' is for class targets, not a regression: use "
                "metric='neg_mse' or a callable with its direction."
            )

    @property
    def loss_name(self) -> str:
        """The loss as reports name it: its name, or the callable's ``__name__``."""
        return self.loss if isinstance(self.loss, str) else _name(self.loss)

    @property
    def metric_name(self) -> str:
        """The metric as reports name it: its name, or the callable's ``__name__``."""
        return self.metric if isinstance(self.metric, str) else _name(self.metric)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def loss_fn(self) -> LossFn:
        """The loss as a function ``(outputs, targets) -> scalar tensor`` (batch mean)."""
        import torch.nn.functional as F

        if callable(self.loss):
            return self.loss
        if self.loss == "cross_entropy":
            return F.cross_entropy
        return lambda out, y: F.mse_loss(_as_target_shape(out, y), y)

    def metric_fn(self) -> MetricFn:
        """The metric as a function ``(outputs, targets) -> float`` over a split."""
        if callable(self.metric):
            return self.metric
        if self.metric == "accuracy":
            return lambda out, y: float((out.argmax(dim=-1) == y).float().mean())
        return lambda out, y: -float(((_as_target_shape(out, y) - y) ** 2).mean())

    def check(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Raise :class:`InvalidValueError`, naming the shapes, when ``outputs`` of the
        model and ``targets`` of the data do not fit this task (one line, for exit 2)."""
        got = f"outputs {tuple(outputs.shape)}, targets {tuple(targets.shape)} ({targets.dtype})"
        if self.kind == "classification":
            if targets.is_floating_point():
                raise InvalidValueError(
                    f"classification needs integer class targets, got float ones ({got}); "
                    "for a regression pass task='regression' (CLI: --task regression)."
                )
            if outputs.dim() != 2 or targets.dim() != 1 or outputs.shape[0] != targets.shape[0]:
                raise InvalidValueError(
                    f"classification needs outputs [N, n_classes] and targets [N]; got {got}."
                )
            return
        if not targets.is_floating_point():
            raise InvalidValueError(
                f"regression needs float targets, got {targets.dtype} ({got}); "
                "for class labels use task='classification'."
            )
        if _as_target_shape(outputs, targets).shape != targets.shape:
            raise InvalidValueError(f"regression needs outputs of the targets' shape; got {got}.")

    def to_dict(self) -> dict[str, str]:
        """JSON-ready: the kind and the names of loss, metric and direction."""
        return {
            "kind": self.kind,
            "loss": self.loss_name,
            "metric": self.metric_name,
            "direction": str(self.direction),
        }


def _name(fn: Callable[..., Any] | None) -> str:
    return str(getattr(fn, "__name__", type(fn).__name__))


def _as_target_shape(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[N, 1]`` outputs for ``[N]`` targets, as one column; anything else unchanged."""
    if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
        return outputs.squeeze(-1)
    return outputs


#: The seed task: 10-class classification, cross-entropy, accuracy.
CLASSIFICATION = Task()
