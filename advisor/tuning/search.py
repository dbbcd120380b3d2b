"""The search stage: Optuna ask-and-tell in batches, each batch trained as one population.

A batch of K trials is asked at once (TPE with the constant liar sees the running ones),
trained together on one minibatch order, reported to Optuna after every epoch, pruned by
Optuna's :class:`~optuna.pruners.SuccessiveHalvingPruner` (asynchronous successive halving:
it compares each trial with every trial that reached the same rung, running ones included),
and told. Pruned members leave the population at once. A diverged member is told as pruned
(so TPE learns to avoid its region) with ``advisor_status = "diverged"`` and the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.core.errors import StorageUnavailableError
from advisor.train import MemberConfig
from advisor.tuning import schema
from advisor.tuning.storage import fail_and_requeue, touch_heartbeat

if TYPE_CHECKING:
    import optuna

    from advisor.data.dataset import Dataset
    from advisor.train import EpochReport, MemberConfig, MemberResult
    from advisor.tuning.space import SearchSpace

#: Test-only switch for the fault tests, never set in normal use: with this environment
#: variable naming a file, the first batch that starts after the study has a complete trial
#: stops after its first epoch, writes the file and waits (at most :data:`HOLD_MAX_S`) for the
#: test's signal (or until the test deletes the file), so that a SIGKILL, a Ctrl-C or a
#: lost database surely lands on a population in flight.
HOLD_ENV = "ADVISOR_TEST_HOLD_FILE"
HOLD_MAX_S = 120.0

#: A running trial's heartbeat is written at most this often (each write is a storage append;
#: one per member per epoch was a fifth of a 1-minute run's writes), far inside the stale-trial
#: grace (:data:`advisor.tuning.storage.DEFAULT_GRACE_S`).
HEARTBEAT_EVERY_S = 10.0

#: Successive halving: first rung after 1 epoch, keep the best third at each rung.
MIN_RESOURCE = 1
REDUCTION_FACTOR = 3


def make_pruner() -> optuna.pruners.BasePruner:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=MIN_RESOURCE, reduction_factor=REDUCTION_FACTOR
    )


@dataclass
class SearchState:
    """What the search loop learned about time, for budgeting the next batch."""

    member_epoch_s: float  # seconds per member-epoch at the population size K
    epochs_per_trial: float  # mean epochs a trial runs (successive halving cuts it)
    batches: int = 0
    trials: int = 0


class Stopwatch:
    """Adds up the time spent inside ``with watch:`` blocks (they may nest)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._t0 = 0.0

    def __enter__(self) -> Stopwatch:
        if self._depth == 0:
            self._t0 = time.perf_counter()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._t0


@dataclass
class BatchOutcome:
    """One batch: its members' results, and where its time went.

    ``optuna_s`` is the time in Optuna's ask, suggest, report, prune and tell (and their
    storage writes); ``train_s`` the rest of the batch. ``by_optimizer[opt]`` holds
    ``(trials, member_epochs, seconds)``: each epoch's time is shared equally by the members
    that trained in it, Optuna's time inside the epoch callback excluded.
    """

    results: list[MemberResult]
    optuna_s: float
    train_s: float
    by_optimizer: dict[str, tuple[int, float, float]]


def run_batch(
    study: optuna.Study,
    space: SearchSpace,
    k: int,
    *,
    train: Callable[..., list[MemberResult]],
    data: Dataset,
    epochs: int,
    seed: int,
    worker: str,
    chance: float | None,
) -> BatchOutcome:
    """Ask ``k`` trials, train them as one population, report, prune and tell each.

    A diverged member reports ``chance`` (:attr:`StudySettings.chance`) at its epoch, or,
    where no chance level is known, the worst value of that epoch's report (nothing when
    every member diverged)."""
    from optuna.trial import TrialState

    t_start = time.perf_counter()
    optuna_time = Stopwatch()
    trials: list[optuna.Trial] = []
    by_number: dict[int, optuna.Trial] = {}
    optimizer_of: dict[int, str] = {}
    member_epochs: dict[str, float] = {}
    seconds: dict[str, float] = {}
    last = {"elapsed": 0.0, "optuna": 0.0}
    # trial number -> when its heartbeat was last written (the sampler writes the first)
    beats: dict[int, float] = {}

    def account(report: EpochReport) -> None:
        """Share the epoch's training time among the members that ran in it."""
        dt = report.elapsed_s - last["elapsed"] - (optuna_time.seconds - last["optuna"])
        members = [int(key) for key in (*report.val_accuracy, *report.diverged)]  # type: ignore[call-overload]
        for number in members:
            opt = optimizer_of[number]
            member_epochs[opt] = member_epochs.get(opt, 0.0) + 1.0
            seconds[opt] = seconds.get(opt, 0.0) + max(dt, 0.0) / len(members)

    def on_epoch(report: EpochReport) -> Iterable[Hashable]:
        account(report)
        try:
            with optuna_time:
                return prune(report)
        finally:
            last["elapsed"], last["optuna"] = report.elapsed_s, optuna_time.seconds

    def prune(report: EpochReport) -> list[Hashable]:
        worst = min(report.val_accuracy.values(), default=None)
        garbage = chance if chance is not None else worst
        for key in report.diverged:
            if garbage is not None:
                by_number[int(key)].report(garbage, report.epoch)  # type: ignore[call-overload]
        for key, acc in report.val_accuracy.items():
            trial = by_number[int(key)]  # type: ignore[call-overload]
            trial.report(float(acc), report.epoch)
            if time.monotonic() - beats.get(trial.number, 0.0) >= HEARTBEAT_EVERY_S:
                touch_heartbeat(study, trial._trial_id)
                beats[trial.number] = time.monotonic()
        hold_for_fault_test(study, report.epoch)
        if report.epoch >= epochs:
            return []
        stop = []
        # the best first: each member then competes with all better ones at its rung
        for key, _ in sorted(report.val_accuracy.items(), key=lambda kv: -kv[1]):
            if by_number[int(key)].should_prune():  # type: ignore[call-overload]
                stop.append(key)
        return stop

    try:
        # a Ctrl-C while asking is held until every asked trial is known, then handled below
        with deferred_interrupt(), optuna_time:
            configs: list[MemberConfig] = []
            for _ in range(k):
                trial = study.ask()
                trials.append(trial)
                by_number[trial.number] = trial
                beats[trial.number] = time.monotonic()  # the sampler stamped it just now
                optimizer, hp, schedule = space.suggest(trial)
                optimizer_of[trial.number] = optimizer
                if trial.user_attrs.get(schema.WORKER) != worker:  # a sampler without the stamp
                    trial.set_user_attr(schema.WORKER, worker)
                    touch_heartbeat(study, trial._trial_id)
                # common random numbers: every search member starts from the same init and batches
                configs.append(
                    MemberConfig(optimizer, hp, schedule, init_seed=seed, key=trial.number)
                )
        results = train(configs, data, epochs=epochs, data_seed=seed, on_epoch=on_epoch)
    except StorageUnavailableError:
        raise  # nothing can be written; the next worker's stale check fails these trials
    except BaseException as exc:  # Ctrl-C or a crash: keep the study consistent, then re-raise
        reason = (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        )
        with deferred_interrupt():
            interrupt_trials(study, by_number, reason)
        raise
    with deferred_interrupt(), optuna_time:
        for res in results:
            trial = by_number[int(res.key)]  # type: ignore[call-overload]
            if res.status == "complete":
                study.tell(trial, res.val_accuracy[-1])
            elif res.status == "diverged":
                trial.set_user_attr(schema.STATUS, schema.DIVERGED)
                trial.set_user_attr(schema.REASON, res.reason or "diverged")
                study.tell(trial, state=TrialState.PRUNED)
            else:
                trial.set_user_attr(schema.STATUS, schema.PRUNED)
                study.tell(trial, state=TrialState.PRUNED)
    trial_counts: dict[str, int] = {}
    for opt in optimizer_of.values():
        trial_counts[opt] = trial_counts.get(opt, 0) + 1
    total = time.perf_counter() - t_start
    by_optimizer = {
        opt: (n, member_epochs.get(opt, 0.0), seconds.get(opt, 0.0))
        for opt, n in trial_counts.items()
    }
    return BatchOutcome(results, optuna_time.seconds, total - optuna_time.seconds, by_optimizer)


_held: list[bool] = []  # the hold happens once per process


def hold_for_fault_test(study: optuna.Study, epoch: int) -> None:
    """Hold the population in flight for a fault test (:data:`HOLD_ENV`); a no-op otherwise.
    The test ends the hold early by deleting the file (after it broke what it tests)."""
    path = os.environ.get(HOLD_ENV)
    if not path or _held or epoch != 1 or os.path.exists(path) or best_value(study) is None:
        return
    _held.append(True)
    Path(path).write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + HOLD_MAX_S
    while time.monotonic() < deadline and os.path.exists(path):
        time.sleep(0.05)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block has finished its storage writes, then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def best_value(study: optuna.Study) -> float | None:
    from optuna.trial import TrialState

    values = [
        t.value
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None
    ]
    return max(values) if values else None


def finished_trials(study: optuna.Study) -> int:
    """Trials that ran to an answer (complete, pruned or diverged): what ``--trials`` caps.

    Failed (interrupted) trials do not count: their retries are queued and still to run.
    """
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=done))


def waiting_trials(study: optuna.Study) -> int:
    """Trials queued and not yet started: the first batch's design, retries."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def interrupt_trials(study: optuna.Study, numbers: Iterable[int], reason: str) -> None:
    """Fail trials left running by an interruption and queue their parameters again."""
    from optuna.trial import TrialState

    wanted = set(numbers)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in wanted:
            fail_and_requeue(study, t, reason)
