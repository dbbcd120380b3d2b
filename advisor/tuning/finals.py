"""The finalist stage: the best search trials and the default baselines, re-run on several seeds.

The baselines are the default ``Adam(lr=1e-3)`` and, as a second baseline, every
learning-rate-free method at its defaults (Prodigy): what a user gets without tuning at all.

It lives in its own study, ``<name>.final``, in the same storage: creating that study is an
atomic election (the storage refuses a duplicate name), so with many workers exactly one
chooses the finalists; each seed is then one enqueued trial, and any worker that pulls it
runs it. Nothing runs twice, and a killed worker's seed is retried by the next worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from advisor.core.errors import AdvisorError
from advisor.train import MemberConfig
from advisor.tuning import schema
from advisor.tuning.schema import BASELINE, FinalistSpec, MemberRun, SeedRun
from advisor.tuning.storage import fail_and_requeue, fail_stale_trials, touch_heartbeat

if TYPE_CHECKING:
    import optuna

    from advisor.data.dataset import Dataset
    from advisor.train import MemberResult
    from advisor.tuning.space import SearchSpace


def final_seeds(seed: int, n: int) -> list[int]:
    """Seeds for the final stage: never the search seed, so the winner is judged on fresh draws."""
    return [10_000 + 100 * seed + i for i in range(n)]


def choose_finalists(study: optuna.Study, space: SearchSpace, k: int) -> list[FinalistSpec]:
    """The ``k`` best complete trials with distinct configurations, best first."""
    from optuna.trial import TrialState

    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None
    ]
    complete.sort(key=lambda t: (-float(t.value or 0.0), t.number))
    chosen: list[FinalistSpec] = []
    seen = set()
    for t in complete:
        key = tuple(sorted(t.params.items()))
        if key in seen:
            continue
        seen.add(key)
        optimizer = str(t.params.get("optimizer", space.optimizers[0]))
        hp = dict(space.fixed.get(optimizer, {}))
        prefix = f"{optimizer}."
        hp.update(
            {n.removeprefix(prefix): float(v) for n, v in t.params.items() if n.startswith(prefix)}
        )
        schedule = space.schedule_of(optimizer, t.params)
        chosen.append(
            FinalistSpec(
                label=f"{optimizer}#{t.number}",
                optimizer=optimizer,
                hyperparameters=hp,
                schedule=schedule,
                trial=t.number,
                search_val_accuracy=float(t.value or 0.0),
            )
        )
        if len(chosen) == k:
            break
    return chosen


def _open_final(study: optuna.Study) -> tuple[optuna.Study, bool]:
    import optuna

    name = study.study_name + schema.FINAL_SUFFIX
    try:
        final = optuna.create_study(study_name=name, storage=study._storage, direction="maximize")
        return final, True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=study._storage), False


def run_finals(
    study: optuna.Study,
    space: SearchSpace,
    *,
    finalists: int,
    seeds: int,
    seed: int,
    train: Callable[..., list[MemberResult]],
    data: Dataset,
    epochs: int,
    worker: str,
    wait_s: float = 600.0,
    on_seed: Callable[[int, int], None] | None = None,
) -> optuna.Study:
    """Run (or join) the finalist stage of ``study``; return the ``.final`` study when all seeds are done."""
    from optuna.trial import TrialState

    final, leader = _open_final(study)
    if leader:
        _wait_for_running(study, wait_s)
        specs = choose_finalists(study, space, finalists)
        if not specs:
            schema.write_finalists(final, [])
            raise AdvisorError(
                f"no trial of study {study.study_name!r} completed, so there is nothing to "
                "recommend: give it a larger --budget (or --trials), or check the divergence "
                "reasons with `advisor report`."
            )
        specs.append(BASELINE)
        specs += schema.lr_free_baselines()  # the second baseline: nothing tuned at all
        for run_seed in final_seeds(seed, seeds):
            final.enqueue_trial({}, user_attrs={schema.SEED: run_seed})
        schema.write_finalists(final, specs)
    deadline = time.monotonic() + wait_s
    while (stored := schema.read_finalists(final)) is None:
        if time.monotonic() > deadline:
            raise AdvisorError(
                f"the finalist stage of {study.study_name!r} was not set up in time."
            )
        time.sleep(1.0)
    specs = stored
    if not specs:
        raise AdvisorError(
            f"study {study.study_name!r} has no complete trial to choose finalists from."
        )
    fail_stale_trials(final)
    total = seeds
    while True:
        waiting = final.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            break
        trial = final.ask()
        s = trial.user_attrs.get(schema.SEED)
        if s is None:  # lost a race for the last waiting seed: this trial is not work
            final.tell(trial, state=TrialState.FAIL)
            continue
        trial.set_user_attr(schema.WORKER, worker)
        touch_heartbeat(final, trial._trial_id)
        configs = [
            MemberConfig(
                sp.optimizer, dict(sp.hyperparameters), sp.schedule, init_seed=int(s), key=sp.label
            )
            for sp in specs
        ]
        try:
            results = train(configs, data, epochs=epochs, data_seed=int(s), evaluate_test=True)
        except BaseException as exc:
            reason = (
                "interrupted"
                if isinstance(exc, KeyboardInterrupt)
                else f"{type(exc).__name__}: {exc}"
            )
            fail_and_requeue(final, final._storage.get_trial(trial._trial_id), reason)
            raise
        members = {
            str(r.key): MemberRun(r.status, tuple(r.val_accuracy), r.test_accuracy, r.reason)
            for r in results
        }
        trial.set_user_attr(schema.RESULTS, SeedRun(int(s), members).to_dict())
        final.tell(trial, max((m.val_curve or (0.0,))[-1] for m in members.values()))
        if on_seed is not None:
            done = len(final.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            on_seed(done, total)
    _wait_for_running(final, wait_s)
    return final


def _wait_for_running(study: optuna.Study, wait_s: float) -> None:
    """Wait until no trial of ``study`` is running (other workers finishing their batch)."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + wait_s
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fail_stale_trials(study)
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
