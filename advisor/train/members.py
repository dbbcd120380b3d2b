"""The values both trainers exchange with their callers: member configs, epoch reports, results.

Also the divergence criterion, so that both trainers stop a member for the same reason:
a member *diverges* when its mean training loss over a check window (every
:data:`CHECK_EVERY` steps and at the end of every epoch) is NaN or infinite or exceeds
``DIVERGENCE_FACTOR * ln(n_classes)`` — ten times the cross-entropy of a uniform guess
(23.0 for 10 classes) — or when its validation loss is NaN or infinite. A fresh network
starts near ``ln(n_classes)``; one whose training loss is ten times worse than guessing has
blown up, whatever it did before. (A large but finite *validation* loss only means
overfitting, so it does not count.)

That limit is for cross-entropy. For a regression trained on the mean squared error the
limit is ``DIVERGENCE_FACTOR * mean(y_train ** 2)``: ten times the loss of predicting 0,
which is where a fresh network (outputs near zero) starts — the counterpart of the uniform
guess. (The targets' variance would be the loss of the best constant; the second moment is
never below it and does not call a fresh network that has not yet learned an offset
diverged.) For a callable loss, whose scale advisor cannot know, only a NaN or infinite
loss counts. :func:`loss_limit` gives the limit of a task and
:func:`divergence_reason` takes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from advisor.core.errors import InvalidValueError
from advisor.data.dataset import Dataset
from advisor.data.task import Task
from advisor.knowledge.optimizers import OptimizerInfo, get_optimizer_info
from advisor.train.schedules import check_schedule

#: A member diverges when its loss exceeds this many times ``ln(n_classes)``.
DIVERGENCE_FACTOR = 10.0
#: Steps between two divergence checks (each check waits for the device once).
CHECK_EVERY = 50

STATUSES = ("complete", "stopped", "diverged")


@dataclass(frozen=True)
class MemberConfig:
    """One model to train: optimizer (registry name), canonical hyperparameters, schedule, init.

    Missing hyperparameters take the registry defaults. The weights are those of
    ``torch.manual_seed(init_seed); mnist_mlp()``. ``key`` is the caller's id for the member
    (e.g. an Optuna trial number); ``None`` means "my position in the list given to
    :func:`train_members`".

    >>> MemberConfig("adam", {"lr": 3e-3}, schedule="cosine").resolved()
    {'lr': 0.003, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-08, 'weight_decay': 0.0}
    """

    optimizer: str
    hyperparameters: Mapping[str, float] = field(default_factory=dict)
    schedule: str = "constant"
    init_seed: int = 0
    key: Hashable = None

    def __post_init__(self) -> None:
        info = get_optimizer_info(self.optimizer)  # unknown name -> UnknownNameError
        object.__setattr__(self, "optimizer", info.name)
        info.resolve(self.hyperparameters)  # unknown hyperparameter -> InvalidValueError
        for name, value in self.hyperparameters.items():
            if not math.isfinite(float(value)):
                raise InvalidValueError(f"hyperparameter {name!r} must be finite, got {value!r}.")
        check_schedule(self.schedule)
        if isinstance(self.init_seed, bool) or not isinstance(self.init_seed, int):
            raise TypeError(f"init_seed must be an int, got {type(self.init_seed).__name__}.")

    @property
    def info(self) -> OptimizerInfo:
        return get_optimizer_info(self.optimizer)

    def resolved(self) -> dict[str, float]:
        """The hyperparameters with the registry defaults filled in."""
        return self.info.resolve(self.hyperparameters)


@dataclass(frozen=True)
class EpochReport:
    """What happened in one epoch: metrics of the members still running, and divergences.

    ``epoch`` is 1-based; ``elapsed_s`` counts wall-clock seconds since ``train_members``
    started. Members that diverged during the epoch appear only in ``diverged``.
    """

    epoch: int
    val_accuracy: Mapping[Hashable, float]
    val_loss: Mapping[Hashable, float]
    train_loss: Mapping[Hashable, float]
    diverged: Mapping[Hashable, str]
    elapsed_s: float


@dataclass(frozen=True)
class MemberResult:
    """How one member ended.

    ``status``: ``complete`` (ran every epoch), ``stopped`` (``on_epoch`` asked to stop it)
    or ``diverged`` (``reason`` says why). The metric tuples hold one value per completed
    epoch (``epochs_run`` of them); ``test_accuracy`` is set for complete and stopped
    members (a stopped one as it was when it stopped) when the test set was asked for.
    """

    key: Hashable
    config: MemberConfig
    status: str
    reason: str | None
    val_accuracy: tuple[float, ...]
    val_loss: tuple[float, ...]
    train_loss: tuple[float, ...]
    test_accuracy: float | None
    epochs_run: int
    #: which trainer ran the member: ``population`` (the hand-written seed-MLP trainer),
    #: ``func`` (the generic ``torch.func`` population) or ``reference`` (torch.optim, alone)
    trainer: str = ""
    #: the seed of the member's random draws (dropout) in the generic population
    seed: int | None = None
    #: one line on how the member was trained when it is not the obvious way (e.g. why a
    #: model fell back to the reference trainer)
    note: str | None = None


#: The per-epoch callback: gets a report, returns the keys of members to stop (or None).
OnEpoch = Callable[[EpochReport], Iterable[Hashable] | None]


def divergence_threshold(n_classes: int) -> float:
    """The loss above which a member counts as diverged."""
    return DIVERGENCE_FACTOR * math.log(max(2, n_classes))


#: A training-loss limit and what it is, for messages; ``(None, "")``: only NaN / inf count.
LossLimit = tuple[float | None, str]


def loss_limit(task: Task | None, n_classes: int, mean_square_target: float = 1.0) -> LossLimit:
    """The training loss above which a member of ``task`` diverges (module docstring).

    ``mean_square_target``: ``mean(y_train ** 2)`` (used by MSE regressions only).

    >>> loss_limit(None, 10)[0] == divergence_threshold(10)
    True
    >>> loss_limit(Task("regression"), 1, mean_square_target=4.0)
    (40.0, '10 x mean(y**2), the loss of predicting 0')
    """
    task = task or Task()
    if task.loss == "cross_entropy":
        return divergence_threshold(
            n_classes
        ), f"{DIVERGENCE_FACTOR:g} x ln {n_classes}, a uniform guess"
    if task.loss == "mse":
        limit = DIVERGENCE_FACTOR * max(float(mean_square_target), 1e-12)
        return limit, f"{DIVERGENCE_FACTOR:g} x mean(y**2), the loss of predicting 0"
    return None, ""


def task_limit(task: Task | None, data: Dataset) -> LossLimit:
    """:func:`loss_limit` of ``task`` on ``data`` (its classes, or its training targets)."""
    if task is not None and task.loss == "mse":
        y = data.y_train
        square = float(y.double().square().mean()) if y.numel() else 1.0
        return loss_limit(task, data.n_classes, square)
    return loss_limit(task, data.n_classes)


def divergence_reason(
    loss: float, n_classes: int, what: str = "training loss", *, limit: LossLimit | None = None
) -> str | None:
    """Why a loss means divergence, or ``None`` if it does not (see the module docstring).

    ``limit`` (from :func:`loss_limit`) defaults to cross-entropy's over ``n_classes``.
    """
    if not math.isfinite(loss):
        return f"{what} is {loss}"
    if what != "training loss":
        return None
    value, why = loss_limit(None, n_classes) if limit is None else limit
    if value is not None and loss > value:
        return f"{what} {loss:.4g} > {value:.4g} ({why})"
    return None


class MemberLog:
    """Mutable record a trainer fills in while one member trains; frozen by :meth:`result`."""

    def __init__(self, key: Hashable, config: MemberConfig) -> None:
        self.key = key
        self.config = config
        self.status = "complete"
        self.reason: str | None = None
        self.val_accuracy: list[float] = []
        self.val_loss: list[float] = []
        self.train_loss: list[float] = []
        self.test_accuracy: float | None = None
        self.trainer = ""
        self.seed: int | None = None
        self.note: str | None = None

    def add_epoch(self, val_accuracy: float, val_loss: float, train_loss: float) -> None:
        self.val_accuracy.append(val_accuracy)
        self.val_loss.append(val_loss)
        self.train_loss.append(train_loss)

    def end(self, status: str, reason: str | None = None) -> None:
        self.status = status
        self.reason = reason

    def result(self) -> MemberResult:
        return MemberResult(
            key=self.key,
            config=self.config,
            status=self.status,
            reason=self.reason,
            val_accuracy=tuple(self.val_accuracy),
            val_loss=tuple(self.val_loss),
            train_loss=tuple(self.train_loss),
            test_accuracy=self.test_accuracy,
            epochs_run=len(self.val_accuracy),
            trainer=self.trainer,
            seed=self.seed,
            note=self.note,
        )


def member_keys(configs: Sequence[MemberConfig]) -> list[Hashable]:
    """The key of each config (its position when ``key`` is None); duplicates are an error."""
    keys = [i if c.key is None else c.key for i, c in enumerate(configs)]
    seen: set[Hashable] = set()
    for key in keys:
        if key in seen:
            raise InvalidValueError(
                f"member keys must be unique in one call, got {key!r} twice; "
                "give every MemberConfig its own key (or leave all keys None)."
            )
        seen.add(key)
    return keys


def epoch_report(
    epoch: int,
    logs: Iterable[MemberLog],
    diverged: Mapping[Hashable, str],
    elapsed_s: float,
) -> EpochReport:
    """Report ``epoch`` for ``logs`` (members still running, whose last entry is this epoch)."""
    running = list(logs)
    return EpochReport(
        epoch=epoch,
        val_accuracy=MappingProxyType({m.key: m.val_accuracy[-1] for m in running}),
        val_loss=MappingProxyType({m.key: m.val_loss[-1] for m in running}),
        train_loss=MappingProxyType({m.key: m.train_loss[-1] for m in running}),
        diverged=MappingProxyType(dict(diverged)),
        elapsed_s=elapsed_s,
    )


def keys_to_stop(
    answer: Iterable[Hashable] | None, running: Iterable[Hashable], known: Iterable[Hashable]
) -> set[Hashable]:
    """The running members ``on_epoch`` asked to stop; keys never given to the call are an error.

    Keys of members that already ended (or that train in another population) are ignored.
    """
    if answer is None:
        return set()
    if isinstance(answer, (str, bytes)):
        answer = [answer]
    wanted = set(answer)
    unknown = wanted - set(known)
    if unknown:
        raise InvalidValueError(
            f"on_epoch asked to stop unknown member keys {sorted(map(repr, unknown))}; "
            "return keys of the MemberConfigs given to train_members."
        )
    return wanted & set(running)
