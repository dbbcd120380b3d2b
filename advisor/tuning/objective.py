"""The objective API: your own training loop, tuned by advisor.

``advisor.tune(objective=fn)`` calls ``fn(trial)`` once per trial with a :class:`Trial`
and takes the metric it returns. advisor keeps everything else: the rule-narrowed search
space, pruning (successive halving over what ``trial.report`` sends), the finalists and the
default ``Adam(lr=1e-3)`` re-run on fresh seeds (``fn`` is called with their configurations
too, ``trial.evaluate_test`` True), the statistics and the report.

A trial gives your loop what it needs to build its optimizer and schedule::

    def objective(trial):
        torch.manual_seed(trial.seed)
        model = Net()
        optimizer = trial.optimizer(model.parameters())       # Muon: trial.optimizers(model)
        scheduler = trial.scheduler(optimizer, trial.epochs * len(train_loader))
        for epoch in range(1, trial.epochs + 1):
            ...  # your loop; scheduler.step() after every optimizer.step()
            ...  # evaluate; Schedule-Free (trial.train_eval): optimizer.eval() before, .train() after
            trial.report(epoch, val_accuracy)                  # raises when pruned
        if trial.evaluate_test:                                # the finalist stage
            return {"value": val_accuracy, "test": test_accuracy}
        return val_accuracy

``fn`` returns the validation metric (a float), or ``{"value": v, "test": t}`` (or
``(v, t)``) when it also measured the held-out test set. ``direction="minimize"`` (a loss)
is handled by negating the value inside (the study maximizes; reports show the metric as
it is). An objective that raises fails that trial (recorded as diverged with the reason,
told to Optuna as pruned so that TPE steers away) and the study goes on; when every trial
of the first batch raises, :class:`ObjectiveError` stops the run with the first error. NaN
or infinite values count as diverged. An objective that never calls ``report`` is still
tuned, without pruning (the report says so).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from advisor.core.errors import AdvisorError, InvalidValueError
from advisor.knowledge.optimizers import (
    create_optimizer,
    create_optimizers,
    get_optimizer_info,
    torch_line,
)
from advisor.train.members import EpochReport, MemberConfig, MemberLog, MemberResult, OnEpoch
from advisor.train.schedules import lr_lambda

if TYPE_CHECKING:
    import torch

    from advisor.data.dataset import Dataset

#: Trials asked per batch of an objective (they run one after the other, in this process).
OBJECTIVE_BATCH = 4
#: Seconds per epoch assumed before the first trial was timed.
GUESS_EPOCH_S = 1.0
#: The note a report carries when the objective never called ``trial.report``.
NO_REPORT_NOTE = (
    "The objective never called trial.report(epoch, value): trials ran to the end without "
    "pruning. Report the validation metric after every epoch to let advisor prune."
)

#: The note a report carries when the finalists' objective returned no test value.
NO_TEST_NOTE = (
    "The objective returned no test value in the finalist stage: the test columns repeat "
    "the validation metric. Return {'value': val, 'test': test} when trial.evaluate_test."
)


class ObjectiveError(AdvisorError):
    """Every trial of the first batch raised: the objective is broken, not the trials."""


@dataclass
class Trial:
    """One trial of your objective: what to build, and a hook to report progress.

    ``optimizer`` (registry name) with ``hyperparameters`` (canonical names: ``lr``,
    ``momentum``, ``beta1``, ...) and ``schedule`` (``constant``, ``cosine``,
    ``warmup_cosine``, ``warmup_constant``); ``seed`` to seed your model and data order;
    ``epochs`` the epochs asked; ``number`` the Optuna trial (``None`` in the finals);
    ``evaluate_test`` True in the finalist stage (return the test metric as well).
    """

    optimizer_name: str
    hyperparameters: Mapping[str, float]
    schedule: str
    seed: int
    epochs: int
    number: Hashable
    evaluate_test: bool
    _report: Callable[[int, float], None] = field(repr=False)

    def optimizer(self, params: Any) -> torch.optim.Optimizer:
        """The torch optimizer over ``params`` (an iterable of parameters, or a model).

        Muon trains hidden 2-D weights only and needs a second optimizer for the rest:
        use :meth:`optimizers` with the model.
        """
        from torch import nn

        if isinstance(params, nn.Module):
            found = self.optimizers(params)
            if len(found) > 1:
                raise InvalidValueError(
                    f"{self.optimizer_name} is {len(found)} optimizers for this model: "
                    "use trial.optimizers(model) and step each."
                )
            return found[0]
        return _train_mode([create_optimizer(self.optimizer_name, params, self.hyperparameters)])[0]

    def optimizers(self, model: torch.nn.Module) -> list[torch.optim.Optimizer]:
        """Every optimizer that trains ``model``: one, or for Muon, Muon and its AdamW."""
        return _train_mode(create_optimizers(self.optimizer_name, model, self.hyperparameters))

    @property
    def train_eval(self) -> bool:
        """Whether the optimizer has train/eval modes (Schedule-Free AdamW): it comes in
        train mode; call ``optimizer.eval()`` before evaluating, ``optimizer.train()`` after."""
        return get_optimizer_info(self.optimizer_name).train_eval

    def scheduler(
        self, optimizer: torch.optim.Optimizer, steps: int
    ) -> torch.optim.lr_scheduler.LambdaLR:
        """The schedule over ``steps`` optimizer steps (all epochs), as a ``LambdaLR`` to
        step after every ``optimizer.step()`` (:mod:`advisor.train.schedules`)."""
        import torch

        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(self.schedule, max(1, steps)))

    @property
    def torch(self) -> str:
        """The optimizer as paste-ready PyTorch code."""
        return torch_line(self.optimizer_name, self.hyperparameters)

    def report(self, epoch: int, value: float) -> None:
        """Report the validation metric after ``epoch`` (1, 2, ...); raises
        ``optuna.TrialPruned`` when advisor prunes this trial: let it propagate."""
        self._report(epoch, value)


def _train_mode(optimizers: list[torch.optim.Optimizer]) -> list[torch.optim.Optimizer]:
    """Schedule-free optimizers switched to train mode, as the printed code does."""
    for o in optimizers:
        train = getattr(o, "train", None)
        if callable(train):
            train()
    return optimizers


class ObjectiveTrainer:
    """Trains members by calling the objective: the signature of
    :func:`advisor.train.train_members`, so the search and the finals use it unchanged.

    >>> trainer = ObjectiveTrainer(lambda trial: trial.hyperparameters["lr"] * 10)
    >>> [(r.status, r.val_accuracy) for r in trainer([MemberConfig("sgd", {"lr": 0.05})])]
    [('complete', (0.5,))]
    >>> trainer.notes() == [NO_REPORT_NOTE]
    True
    """

    def __init__(self, fn: Callable[[Trial], Any], *, maximize: bool = True) -> None:
        self.fn = fn
        self.sign = 1.0 if maximize else -1.0
        self.calls = 0
        self.reported = False
        self.succeeded = False
        self.test_missing = False

    def notes(self) -> list[str]:
        """What the report must say about how the objective behaved."""
        notes = []
        if self.calls and not self.reported:
            notes.append(NO_REPORT_NOTE)
        if self.test_missing:
            notes.append(NO_TEST_NOTE)
        return notes

    def __call__(
        self,
        configs: Sequence[MemberConfig],
        data: Dataset | None = None,
        *,
        epochs: int = 5,
        data_seed: int = 0,
        on_epoch: OnEpoch | None = None,
        evaluate_test: bool = False,
        **_: Any,
    ) -> list[MemberResult]:
        t0 = time.perf_counter()
        first_call = self.calls == 0
        self.calls += 1
        results, errors = [], []
        for i, config in enumerate(configs):
            key = i if config.key is None else config.key
            result, error = self._run(config, key, epochs, data_seed, on_epoch, evaluate_test, t0)
            results.append(result)
            if error is not None:
                errors.append(error)
        if first_call and configs and len(errors) == len(configs):
            raise ObjectiveError(
                f"the objective failed on every trial of the first batch: {errors[0]}"
            )
        return results

    def _run(
        self,
        config: MemberConfig,
        key: Hashable,
        epochs: int,
        data_seed: int,
        on_epoch: OnEpoch | None,
        evaluate_test: bool,
        t0: float,
    ) -> tuple[MemberResult, str | None]:
        import optuna

        log = MemberLog(key, config)
        state = {"epoch": 0, "pruned": False}

        def send(epoch: int, value: float | None, diverged: str | None) -> bool:
            """Tell ``on_epoch``; True when it asks to stop this member."""
            if on_epoch is None:
                return False
            acc = {} if value is None else {key: value}
            report = EpochReport(
                epoch=epoch,
                val_accuracy=MappingProxyType(acc),
                val_loss=MappingProxyType({}),
                train_loss=MappingProxyType({}),
                diverged=MappingProxyType({} if diverged is None else {key: diverged}),
                elapsed_s=time.perf_counter() - t0,
            )
            return key in set(on_epoch(report) or ())

        def report(epoch: int, value: float) -> None:
            self.reported = True
            if state["pruned"]:
                raise optuna.TrialPruned(f"trial {key} was pruned at epoch {state['epoch']}")
            value = float(value)
            state["epoch"] = epoch
            if not math.isfinite(value):
                log.end("diverged", f"the objective reported {value} at epoch {epoch}")
                send(epoch, None, log.reason)
                state["pruned"] = True
                raise optuna.TrialPruned(log.reason)
            log.add_epoch(self.sign * value, math.nan, math.nan)
            if send(epoch, self.sign * value, None):
                state["pruned"] = True
                log.end("stopped", f"pruned at epoch {epoch}")
                raise optuna.TrialPruned(f"trial {key} pruned at epoch {epoch}")

        trial = Trial(
            config.optimizer,
            dict(config.resolved()),
            config.schedule,
            seed=config.init_seed,
            epochs=epochs,
            number=None if evaluate_test else key,
            evaluate_test=evaluate_test,
            _report=report,
        )
        try:
            answer = self.fn(trial)
        except optuna.TrialPruned:
            if log.status == "complete":  # raised by the objective itself
                log.end("stopped", "the objective raised TrialPruned")
            return log.result(), None
        except Exception as exc:
            if state["pruned"]:  # the loop wrapped our TrialPruned in its own error
                return log.result(), None
            reason = f"the objective raised {type(exc).__name__}: {exc}"
            log.end("diverged", reason)
            send(max(state["epoch"], 1), None, reason)
            return log.result(), reason
        if state["pruned"]:
            return log.result(), None
        try:
            value, test = _value_and_test(answer)
        except (TypeError, ValueError) as exc:
            reason = f"the objective returned {answer!r}: {exc}"
            log.end("diverged", reason)
            send(max(state["epoch"], 1), None, reason)
            return log.result(), reason
        if not math.isfinite(value) or (test is not None and not math.isfinite(test)):
            log.end("diverged", f"the objective returned {answer!r}")
            send(max(state["epoch"], 1), None, log.reason)
            return log.result(), None
        self.succeeded = True
        if not log.val_accuracy or state["epoch"] < epochs:
            # the returned value is the last epoch's: recorded (and reported) at ``epochs``
            log.add_epoch(self.sign * value, math.nan, math.nan)
            send(epochs, self.sign * value, None)
        else:
            log.val_accuracy[-1] = self.sign * value
        if evaluate_test:
            self.test_missing |= test is None
            log.test_accuracy = self.sign * (value if test is None else test)
        return log.result(), None


def _value_and_test(answer: Any) -> tuple[float, float | None]:
    """``(validation value, test value or None)`` from what the objective returned."""
    if isinstance(answer, Mapping):
        if "value" not in answer:
            raise ValueError("a returned mapping needs the key 'value' (and optionally 'test')")
        test = answer.get("test")
        return float(answer["value"]), None if test is None else float(test)
    if isinstance(answer, (tuple, list)):
        if len(answer) != 2:
            raise ValueError("return the metric, (value, test) or {'value': v, 'test': t}")
        return float(answer[0]), float(answer[1])
    if answer is None:
        raise TypeError("the objective returned nothing: return the validation metric")
    return float(answer), None
