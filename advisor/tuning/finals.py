"""The finalist stage: the best search trials and the default baselines, re-run on several seeds.

The baselines are the default ``Adam(lr=1e-3)`` and, as a second baseline, every
learning-rate-free method at its defaults (Prodigy): what a user gets without tuning at all.

It lives in its own study, ``<name>.final``, in the same storage, as *tasks*: one trial that
sets the stage up (chooses the finalists, once the search has settled) and one trial per
seed. Any worker takes any waiting task; the storage lets exactly one worker move a waiting
trial to running, and a task enqueued twice runs once (:func:`is_canonical`). A worker that
dies leaves its task running; the next worker's stale check fails it and the task is
enqueued again, so the stage finishes as long as one worker is alive, and each task
completes exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from advisor.core.errors import AdvisorError, StorageUnavailableError
from advisor.train import MemberConfig
from advisor.tuning import schema
from advisor.tuning.schema import BASELINE, FinalistSpec, MemberRun, SeedRun
from advisor.tuning.storage import fail_and_requeue, fail_stale_trials, touch_heartbeat

if TYPE_CHECKING:
    from collections.abc import Hashable

    import optuna

    from advisor.data.dataset import Dataset
    from advisor.train import EpochReport, MemberResult
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


def _open_final(study: optuna.Study) -> optuna.Study:
    """The ``.final`` study of ``study``, created by whichever worker gets there first."""
    import optuna

    name = study.study_name + schema.FINAL_SUFFIX
    try:
        return optuna.create_study(study_name=name, storage=study._storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=study._storage)


def task_key(trial: optuna.trial.FrozenTrial) -> tuple[str, int] | None:
    """What a trial of ``S.final`` is for: ``("setup", 0)``, ``("seed", s)``, or None."""
    if trial.user_attrs.get(schema.TASK) == schema.SETUP_TASK:
        return (schema.SETUP_TASK, 0)
    s = trial.user_attrs.get(schema.SEED)
    return None if s is None else ("seed", int(s))


def is_canonical(trials: list[optuna.trial.FrozenTrial], trial: optuna.trial.FrozenTrial) -> bool:
    """True when ``trial`` is the one copy of its task that may run.

    A task may be enqueued twice (two workers restoring a lost one at once, or a write
    repeated after a broken connection); the copy that runs is the lowest-numbered one that
    has not failed, and none runs when one is complete. Failing is final, so two copies
    can never both be the one: a task runs to completion at most once.
    """
    from optuna.trial import TrialState

    key = task_key(trial)
    for other in trials:
        if other.number == trial.number or task_key(other) != key:
            continue
        if other.state == TrialState.COMPLETE:
            return False
        if other.number < trial.number and other.state != TrialState.FAIL:
            return False
    return True


def _ensure_tasks(
    final: optuna.Study,
    trials: list[optuna.trial.FrozenTrial],
    seeds: list[int],
    specs: list[FinalistSpec] | None,
) -> None:
    """Enqueue the tasks the stage still needs and nobody holds: the setup while there are no
    finalists, then one trial per seed. A task whose worker died was failed (and not queued
    again) by the stale-trial check, so it is needed again here."""
    from optuna.trial import TrialState

    live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
    held = {task_key(t) for t in trials if t.state in live}
    if specs is None:
        if (schema.SETUP_TASK, 0) not in held:
            final.enqueue_trial({}, user_attrs={schema.TASK: schema.SETUP_TASK})
        return
    setting_up = any(
        task_key(t) == (schema.SETUP_TASK, 0) and t.state == TrialState.RUNNING for t in trials
    )
    if setting_up:  # its worker is still enqueuing the seeds
        return
    for s in seeds:
        if ("seed", s) not in held:
            final.enqueue_trial({}, user_attrs={schema.SEED: s})


def _pop_waiting(final: optuna.Study, worker: str) -> optuna.Trial | None:
    """Take one waiting task (atomically: the storage lets one worker move it to RUNNING)."""
    import optuna
    from optuna.trial import TrialState

    for t in final.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            popped = final._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if popped:
            final._storage.set_trial_user_attr(t._trial_id, schema.WORKER, worker)
            touch_heartbeat(final, t._trial_id)
            return optuna.Trial(final, t._trial_id)
    return None


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
    plan_finals: Callable[[list[FinalistSpec]], tuple[list[FinalistSpec], int, str | None]]
    | None = None,
    on_seed: Callable[[int, int], None] | None = None,
) -> optuna.Study:
    """Run (or join) the finalist stage of ``study``; return the ``.final`` study when every
    seed is done.

    ``plan_finals(finalists)`` lets the worker that chooses the finalists fit the stage in the time
    left: it returns the finalists kept (the best first, always kept), the seeds to run
    (fewer than ``seeds``) and why (:data:`~advisor.tuning.schema.FINAL_PLAN`); every worker
    then runs that many.

    The stage is a set of tasks, each one trial of ``S.final`` that any worker may take: first
    *setup* (wait for the search's running trials, choose the finalists, enqueue the seeds),
    then one task per seed. A task whose worker dies is failed by the next worker's stale
    check and enqueued again (:func:`_ensure_tasks`); a task enqueued twice runs once
    (:func:`is_canonical`). ``wait_s``: how long to wait without any progress before giving up.
    """
    from optuna.trial import TrialState

    final = _open_final(study)
    deadline, seen = time.monotonic() + wait_s, None
    while True:
        fail_stale_trials(final, retry=False)  # _ensure_tasks queues what they held again
        trials = final.get_trials(deepcopy=False)
        plan = final.user_attrs.get(schema.FINAL_PLAN)  # written before the finalists
        specs = schema.read_finalists(final)
        wanted = final_seeds(seed, int(plan["seeds"]) if plan else seeds)
        if specs == []:
            raise AdvisorError(
                f"study {study.study_name!r} has no complete trial to choose finalists from."
            )
        done = {k[1] for t in trials if t.state == TrialState.COMPLETE and (k := task_key(t))}
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if specs is not None and set(wanted) <= done and not waiting:
            break  # (a waiting copy of a finished task is popped below and failed as a duplicate)
        _ensure_tasks(final, trials, wanted, specs)
        trial = _pop_waiting(final, worker)
        if trial is None:  # others hold every task: wait for them (or for their stale check)
            state = (specs is not None, len(done), len(trials))
            if state != seen:
                deadline, seen = time.monotonic() + wait_s, state
            elif time.monotonic() > deadline:
                raise AdvisorError(
                    f"the finalist stage of {study.study_name!r} made no progress for "
                    f"{wait_s:.0f} s. Rerun the same command to continue it."
                )
            time.sleep(1.0)
            continue
        frozen = final._storage.get_trial(trial._trial_id)
        key = task_key(frozen)
        if key is None or not is_canonical(final.get_trials(deepcopy=False), frozen):
            final._storage.set_trial_user_attr(trial._trial_id, schema.STATUS, schema.DUPLICATE)
            final.tell(trial, state=TrialState.FAIL)
            continue
        if key[0] == schema.SETUP_TASK:
            _set_up(study, final, trial, space, finalists, (seed, seeds), wait_s, plan_finals)
        else:
            _run_seed(final, trial, key[1], train, data, epochs)
            if on_seed is not None:
                complete = final.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                n = sum(1 for t in complete if (k := task_key(t)) and k[0] == "seed")
                on_seed(min(n, len(wanted)), len(wanted))
    return final


def _set_up(
    study: optuna.Study,
    final: optuna.Study,
    trial: optuna.Trial,
    space: SearchSpace,
    finalists: int,
    seeds: tuple[int, int],
    wait_s: float,
    plan_finals: Callable[[list[FinalistSpec]], tuple[list[FinalistSpec], int, str | None]] | None,
) -> None:
    """The setup task: choose the finalists once the search has settled, enqueue the seeds.

    ``seeds`` is ``(search seed, seeds asked)``; ``plan_finals`` may drop finalists and lower the count.

    Resumable: a worker that takes it over after a crash keeps finalists already written and
    enqueues only the seeds that have no trial yet.
    """
    specs = schema.read_finalists(final)
    if specs is None:
        _wait_for_running(study, wait_s, beat=lambda: touch_heartbeat(final, trial._trial_id))
        chosen = choose_finalists(study, space, finalists)
        if not chosen:
            schema.write_finalists(final, [])
            final.tell(trial, 0.0)
            raise AdvisorError(
                f"no trial of study {study.study_name!r} completed, so there is nothing to "
                "recommend: give it a larger --budget (or --trials), or check the divergence "
                "reasons with `advisor report`."
            )
        if plan_finals is not None:
            chosen, n, why = plan_finals(chosen)
            if why is not None:
                final.set_user_attr(schema.FINAL_PLAN, {"seeds": n, "reason": why})
        # the default Adam, and the learning-rate-free methods at their defaults: nothing tuned
        schema.write_finalists(final, [*chosen, BASELINE, *schema.lr_free_baselines()])
    plan = final.user_attrs.get(schema.FINAL_PLAN)
    wanted = final_seeds(seeds[0], int(plan["seeds"]) if plan else seeds[1])
    have = {k[1] for t in final.get_trials(deepcopy=False) if (k := task_key(t)) and k[0] == "seed"}
    for run_seed in wanted:
        if run_seed not in have:
            final.enqueue_trial({}, user_attrs={schema.SEED: run_seed})
    final.tell(trial, 0.0)


def _run_seed(
    final: optuna.Study,
    trial: optuna.Trial,
    run_seed: int,
    train: Callable[..., list[MemberResult]],
    data: Dataset,
    epochs: int,
) -> None:
    """One seed task: every finalist and the baseline trained on ``run_seed``, told with results."""
    specs = schema.read_finalists(final) or []
    configs = [
        MemberConfig(
            sp.optimizer, dict(sp.hyperparameters), sp.schedule, init_seed=run_seed, key=sp.label
        )
        for sp in specs
    ]

    def beat(report: EpochReport) -> list[Hashable]:
        touch_heartbeat(final, trial._trial_id)
        return []

    try:
        results = train(
            configs, data, epochs=epochs, data_seed=run_seed, evaluate_test=True, on_epoch=beat
        )
    except StorageUnavailableError:
        raise  # nothing can be written; the next worker's stale check fails this trial
    except BaseException as exc:
        reason = (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        )
        fail_and_requeue(final, final._storage.get_trial(trial._trial_id), reason, retry=False)
        raise
    members = {
        str(r.key): MemberRun(r.status, tuple(r.val_accuracy), r.test_accuracy, r.reason)
        for r in results
    }
    trial.set_user_attr(schema.RESULTS, SeedRun(run_seed, members).to_dict())
    final.tell(trial, max((m.val_curve or (0.0,))[-1] for m in members.values()))


def _wait_for_running(
    study: optuna.Study, wait_s: float, beat: Callable[[], None] | None = None
) -> None:
    """Wait until no trial of ``study`` is running (other workers finishing their batch)."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + wait_s
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        fail_stale_trials(study)
        if beat is not None:
            beat()
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
