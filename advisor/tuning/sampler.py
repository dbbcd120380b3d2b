"""The search's sampler: Optuna's TPE, wrapped for ownership, a budget share and a bounded history.

:func:`make_sampler` builds ``TPESampler(multivariate=True, group=True, constant_liar=True)``
(conditional spaces, batches) and wraps it:

- **Ownership.** Every new trial is stamped with its worker and a heartbeat the moment it
  is created, so that a killed worker's trials are found stale.
- **Budget share.** ``avoid()`` names the optimizers not to sample now (those over their
  share of the time, or whose one trial no longer fits the time left); when TPE picks one
  of them, another of the search's optimizers is drawn instead. Enqueued trials (the first
  batch, retries) are not steered.
- **Bounded history.** TPE's cost per trial grows with the study: every ask walks all the
  trials in Python (measured here, 2 shared cores: about 60 ms per ask at 100 trials,
  70 ms at 600). Past :data:`HISTORY_FROM` finished trials TPE sees a window of them: the
  :data:`KEEP_BEST` best complete ones (its "good" density needs only the best
  ``min(10 %, 25)``) and the :data:`KEEP_RECENT` latest, plus every running trial (the
  constant liar). The cost per ask then stops growing, at the price of an approximate
  "bad" density.
"""

from __future__ import annotations

import heapq
import random
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from advisor.tuning import schema
from advisor.tuning.storage import touch_heartbeat

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, TrialState

#: From this many finished trials on, TPE sees a window of the history.
HISTORY_FROM = 256
KEEP_BEST = 64
KEEP_RECENT = 64
#: The categorical parameter that chooses the optimizer (SearchSpace.suggest).
OPTIMIZER_PARAM = "optimizer"


def make_sampler(
    seed: int,
    n_startup: int,
    worker: str | None = None,
    *,
    avoid: Callable[[], Collection[str]] | None = None,
    history_from: int = HISTORY_FROM,
) -> optuna.samplers.BaseSampler:
    """TPE for conditional spaces and batches, wrapped as the module docstring says.

    Without ``worker`` (and ``avoid``) the plain TPE sampler, as tests and tools use it.
    """
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
    if worker is None and avoid is None:
        return tpe
    return _wrap(tpe, worker, avoid or (lambda: ()), history_from, random.Random(seed))


class HistoryView:
    """A study as TPE should see it: every trial up to ``history_from`` finished ones, then a
    window (the best complete, the latest finished, every running one). Everything else is
    the study's own.

    >>> import optuna
    >>> study = optuna.create_study(direction="maximize")
    >>> for i in range(10):
    ...     study.add_trial(optuna.trial.create_trial(value=float(i % 7)))
    >>> [t.number for t in HistoryView(study, history_from=5, best=2, recent=3)._get_trials()]
    [5, 6, 7, 8, 9]
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        history_from: int,
        best: int = KEEP_BEST,
        recent: int = KEEP_RECENT,
    ) -> None:
        self._study = study
        self._history_from = history_from
        self._best = best
        self._recent = recent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = False,
        states: Sequence[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials: list[FrozenTrial] = self._study._get_trials(
            deepcopy=deepcopy, states=states, use_cache=use_cache
        )
        finished = [t for t in trials if t.state.is_finished()]
        if len(finished) <= self._history_from:
            return trials
        sign = 1.0 if self._study.direction.name == "MAXIMIZE" else -1.0
        complete = [t for t in finished if t.value is not None]
        keep = {
            t.number
            for t in heapq.nlargest(
                self._best, complete, key=lambda t: sign * float(t.value or 0.0)
            )
        }
        keep.update(t.number for t in finished[-self._recent :])
        return [t for t in trials if not t.state.is_finished() or t.number in keep]

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)


def _wrap(
    inner: optuna.samplers.BaseSampler,
    worker: str | None,
    avoid: Callable[[], Collection[str]],
    history_from: int,
    rng: random.Random,
) -> optuna.samplers.BaseSampler:
    import optuna

    def view(study: Any) -> Any:
        return HistoryView(study, history_from=history_from)

    def steer(value: Any, choices: Sequence[Any]) -> Any:
        banned = set(avoid())
        if value not in banned:
            return value
        allowed = [c for c in choices if c not in banned]
        return rng.choice(allowed) if allowed else value

    class AdvisorSampler(optuna.samplers.BaseSampler):
        """Delegates to TPE; stamps owners, steers away from optimizers over their share."""

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return inner.infer_relative_search_space(view(study), trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            params = dict(inner.sample_relative(view(study), trial, search_space))
            dist = search_space.get(OPTIMIZER_PARAM)
            if OPTIMIZER_PARAM in params and dist is not None:
                chosen = steer(params[OPTIMIZER_PARAM], dist.choices)
                if chosen != params[OPTIMIZER_PARAM]:
                    prefix = f"{params[OPTIMIZER_PARAM]}."
                    params = {k: v for k, v in params.items() if not k.startswith(prefix)}
                    params[OPTIMIZER_PARAM] = chosen
            return params

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            value = inner.sample_independent(view(study), trial, name, dist)
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

    return AdvisorSampler()
