"""The search's sampler: Optuna's TPE, stamping each trial with its worker, over a bounded history.

TPE's time per trial grows with the trials it reads (about 60 µs per trial per suggestion
here: over a second at 20,000 trials, for each trial of each batch; on a loaded 2-core
machine, 62 ms per ask at 2,000 trials with 200 recent ones shown against 246 ms with
1,000: ``python benchmarks/sampler_cost.py``). It is therefore shown
the study through :class:`History`: every running or waiting trial (the constant liar needs
them), the :data:`BEST` best complete trials (its "good" density is built from the best
``min(25, 10 %)`` trials, so these are exactly the ones it would use) and the
:data:`RECENT` most recent finished ones (its "bad" density, where TPE's own weights already
favour recent trials). A study smaller than that is shown whole, unchanged.

TPE with ``group=True`` samples every group of the conditional space for every trial (each
optimizer's parameters), and the trial then uses one optimizer's. Here the groups are sampled
lazily: the optimizer's choice first, then only the groups the chosen optimizer uses, 2-3 of
the 6 of the default space (same distributions, about half the ask time:
``python benchmarks/sampler_cost.py``).

It is also steered for the budget: ``avoid()`` names the optimizers not to sample now (over
their share of the search time, or whose one trial no longer fits the time left); when TPE
picks one of them, another of the search's optimizers is drawn instead (seeded). Enqueued
trials (the first batch, retries) are not steered.
"""

from __future__ import annotations

import copy
import heapq
import random
import warnings
from collections.abc import Callable, Collection, Container, Sequence
from typing import TYPE_CHECKING, Any

from advisor.tuning import schema
from advisor.tuning.storage import touch_heartbeat

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

#: Finished trials TPE sees at most: the best complete ones and the most recent ones.
BEST = 100
RECENT = 300
#: The categorical parameter that chooses the optimizer (SearchSpace.suggest).
OPTIMIZER_PARAM = "optimizer"


def make_sampler(
    seed: int,
    n_startup: int,
    worker: str | None = None,
    *,
    avoid: Callable[[], Collection[str]] | None = None,
) -> optuna.samplers.BaseSampler:
    """TPE for conditional spaces and batches, over a bounded history (:class:`History`); with
    ``worker``, every new trial is stamped with its owner the moment it is created (so a
    killed worker's trials are found stale); ``avoid``: optimizers not to sample now."""

    import optuna

    with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna 4 and 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        tpe = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(n_startup, 1),
            multivariate=True,
            group=True,
            constant_liar=True,
        )
    return _wrapped(tpe, worker, avoid or (lambda: ()), random.Random(seed))


def bounded_history(
    trials: list[FrozenTrial], maximize: bool, *, best: int | None = None, recent: int | None = None
) -> list[FrozenTrial]:
    """What TPE is shown of ``trials`` (sorted by number): all of them when there are few,
    else every unfinished trial, the ``best`` best complete ones and the ``recent`` most
    recent finished ones, in number order (defaults: :data:`BEST`, :data:`RECENT`).

    >>> import optuna
    >>> ts = [optuna.trial.create_trial(value=float(i % 7)) for i in range(50)]
    >>> for i, t in enumerate(ts):
    ...     t.number = i
    >>> [t.number for t in bounded_history(ts, True, best=2, recent=3)]
    [6, 13, 47, 48, 49]
    """
    from optuna.trial import TrialState

    best = BEST if best is None else best
    recent = RECENT if recent is None else recent
    finished = [t for t in trials if t.state.is_finished()]
    if len(finished) <= best + recent:
        return trials
    complete = [t for t in finished if t.state == TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if maximize else 1.0
    top = heapq.nsmallest(best, complete, key=lambda t: (sign * float(t.value or 0.0), t.number))
    keep = {t.number for t in top} | {t.number for t in finished[-recent:]}
    return [t for t in trials if not t.state.is_finished() or t.number in keep]


class History:
    """A study as the sampler sees it: every attribute is the study's, but its trials are
    :func:`bounded_history`. Built once per new trial."""

    def __init__(self, study: Any) -> None:
        from optuna.study import StudyDirection

        self._study = study
        maximize = study.direction == StudyDirection.MAXIMIZE
        everything = study._get_trials(deepcopy=False, use_cache=False)
        self._trials = bounded_history(everything, maximize)
        self.size = len(self._trials)
        #: the finished trials shown, which alone shape TPE's groups (running ones do not)
        self.finished = tuple(t.number for t in self._trials if t.state.is_finished())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[Any] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        found = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(found) if deepcopy else found

    def get_trials(
        self, deepcopy: bool = True, states: Container[Any] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


def _split_groups(
    groups: Sequence[dict[str, Any]], search_space: dict[str, Any]
) -> tuple[dict[str, Any], Callable[[str], dict[str, Any]]]:
    """TPE's groups of ``search_space`` split in two: the groups holding the optimizer choice
    (sampled first), and, for a chosen optimizer, the groups holding its own parameters
    (``<optimizer>.<name>``) or a shared one (a name without a dot: the schedule), whole.

    >>> groups = [{"optimizer": 1}, {"adam.lr": 2, "adam.beta1": 3}, {"sgd.lr": 4}, {"schedule": 5}]
    >>> first, rest = _split_groups(groups, {k: v for g in groups for k, v in g.items()})
    >>> sorted(first), sorted(rest("adam"))
    (['optimizer'], ['adam.beta1', 'adam.lr', 'schedule'])
    """
    present = [{k: v for k, v in g.items() if k in search_space} for g in groups]
    first = {k: v for g in present if OPTIMIZER_PARAM in g for k, v in g.items()}

    def rest(optimizer: str) -> dict[str, Any]:
        def used(name: str) -> bool:
            return name.startswith(f"{optimizer}.") or "." not in name

        return {
            k: v
            for g in present
            if OPTIMIZER_PARAM not in g and any(used(name) for name in g)
            for k, v in g.items()
        }

    return first, rest


def _wrapped(
    inner: optuna.samplers.BaseSampler,
    worker: str | None,
    avoid: Callable[[], Collection[str]],
    rng: random.Random,
) -> optuna.samplers.BaseSampler:
    import optuna

    def steer(value: Any, choices: Sequence[Any]) -> Any:
        banned = set(avoid())
        if value not in banned:
            return value
        allowed = [c for c in choices if c not in banned]
        return rng.choice(allowed) if allowed else value

    class BoundedOwnedSampler(optuna.samplers.BaseSampler):
        """Delegates to ``inner`` over a :class:`History`; stamps each new trial with the
        worker and a heartbeat; steers away from the optimizers to avoid."""

        def __init__(self) -> None:
            self.history: tuple[int, History] | None = None  # (trial id, its view)
            # TPE's search space, kept while the finished trials shown are the same (within
            # a batch): inferring it walks every trial shown, for every trial asked
            self.space: tuple[tuple[int, ...], dict[str, Any]] | None = None

        def _view(self, study: Any, trial: Any) -> Any:  # a History, which Optuna types as Study
            if self.history is None or self.history[0] != trial._trial_id:
                self.history = (trial._trial_id, History(study))
            return self.history[1]

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            view = self._view(study, trial)
            if self.space is None or self.space[0] != view.finished:
                self.space = (view.finished, inner.infer_relative_search_space(view, trial))
            return dict(self.space[1])

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            view = self._view(study, trial)
            dist = search_space.get(OPTIMIZER_PARAM)
            groups = getattr(inner, "_search_space_group", None)  # TPE's groups, set by infer_…
            if dist is None or groups is None:
                return dict(inner.sample_relative(view, trial, search_space))
            # Lazily, group by group: the optimizer first, then only what that optimizer uses.
            # TPE alone samples every group (every optimizer's parameters) for every trial and
            # the trial then uses one optimizer's: 2-3 groups of 6 are all the trial needs.
            first, rest = _split_groups(groups.search_spaces, search_space)
            params = dict(inner.sample_relative(view, trial, first))
            if OPTIMIZER_PARAM not in params:  # still in the startup phase: sampled independently
                return params
            params[OPTIMIZER_PARAM] = steer(params[OPTIMIZER_PARAM], dist.choices)
            params.update(inner.sample_relative(view, trial, rest(params[OPTIMIZER_PARAM])))
            return params

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            value = inner.sample_independent(self._view(study, trial), trial, name, dist)
            return steer(value, dist.choices) if name == OPTIMIZER_PARAM else value

        def before_trial(self, study: Any, trial: Any) -> None:
            if worker is not None:
                study._storage.set_trial_user_attr(trial._trial_id, schema.WORKER, worker)
                touch_heartbeat(study, trial._trial_id)
            inner.before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            inner.reseed_rng()

    return BoundedOwnedSampler()
