"""A tuning run's result, rebuilt from the Optuna storage alone (reads only, writes nothing).

A study ``S`` holds the search trials; the study ``S.final`` holds one trial per seed of
the multi-seed stage, each with the validation curves and test accuracies of every
finalist and of the baseline (:mod:`advisor.tuning.schema`). :func:`build_result` turns
both into a :class:`~advisor.tuning.result.TuneResult`, so ``advisor report`` gives the
same answer as the run that wrote them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.errors import AdvisorError, StorageError, unknown_name
from advisor.core.units import format_duration
from advisor.tuning import schema
from advisor.tuning.budget import by_optimizer
from advisor.tuning.config import DEFAULT_OUT, JOURNAL_FILE
from advisor.tuning.result import Finalist, TuneResult, judge
from advisor.tuning.schema import FINAL_SUFFIX, FinalistSpec, SeedRun, StudySettings
from advisor.tuning.stats import summarize
from advisor.tuning.storage import open_storage

if TYPE_CHECKING:
    import optuna


def count_trials(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: complete, pruned, diverged (told as pruned), failed, running."""
    from optuna.trial import TrialState

    counts = {"complete": 0, "pruned": 0, "diverged": 0, "failed": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif t.state == TrialState.PRUNED:
            counts["diverged" if schema.trial_status(t) == schema.DIVERGED else "pruned"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 1
        elif t.state == TrialState.RUNNING:
            counts["running"] += 1
    return counts


def finalist_from_runs(spec: FinalistSpec, runs: list[SeedRun], chance: float | None) -> Finalist:
    """One finalist's summaries over the seeds it ran. A diverged seed scores ``chance``
    (:attr:`StudySettings.chance`: chance level for accuracy) or, for another metric, the
    worst value of that seed's members (values point up); a seed where all diverged is left
    out.

    >>> from advisor.tuning.schema import BASELINE, MemberRun
    >>> runs = [SeedRun(s, {"baseline": MemberRun("complete", (0.8, 0.9), 0.88)}) for s in (1, 2)]
    >>> f = finalist_from_runs(BASELINE, runs, chance=0.1)
    >>> f.test_accuracy.values, f.val_accuracy.mean
    ((0.88, 0.88), 0.9)
    >>> lost = MemberRun(schema.DIVERGED, (), None)  # a regression: no chance level
    >>> runs = [SeedRun(1, {"baseline": lost, "a": MemberRun("complete", (-0.5,), -0.6)})]
    >>> finalist_from_runs(BASELINE, runs, chance=None).test_accuracy.values
    (-0.6,)
    """
    vals, tests, curves, diverged = [], [], [], 0
    for run in runs:
        member = run.members.get(spec.label)
        if member is None:
            continue
        curves.append(member.val_curve)
        if member.status == schema.DIVERGED or member.test_accuracy is None:
            diverged += 1  # a diverged model predicts garbage: score it as the worst
            ok = [m for m in run.members.values() if m.test_accuracy is not None and m.val_curve]
            if chance is None and not ok:
                continue
            vals.append(chance if chance is not None else min(m.val_curve[-1] for m in ok))
            tests.append(chance if chance is not None else min(m.test_accuracy or 0.0 for m in ok))
        else:
            vals.append(member.val_curve[-1])
            tests.append(member.test_accuracy)
    return Finalist(
        label=spec.label,
        optimizer=spec.optimizer,
        hyperparameters=spec.hyperparameters,
        schedule=spec.schedule,
        trial=spec.trial,
        search_val_accuracy=spec.search_val_accuracy,
        val_accuracy=summarize(vals),
        test_accuracy=summarize(tests),
        curves=tuple(curves),
        diverged_seeds=diverged,
    )


def build_result(
    storage: Any, study_name: str, *, storage_display: str = "", storage_url: str | None = None
) -> TuneResult:
    """Rebuild the result of a finished study from its storage alone."""
    import optuna
    from optuna.trial import TrialState

    try:
        search = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError as exc:
        raise unknown_name("study", study_name, list_studies(storage)) from exc
    unfinished = f"Run `advisor tune --study {study_name}` with the same storage to finish it."
    try:
        final = optuna.load_study(study_name=study_name + FINAL_SUFFIX, storage=storage)
    except KeyError as exc:
        raise AdvisorError(
            f"the study {study_name!r} has no finalist stage yet (its search is not finished). "
            + unfinished
        ) from exc
    specs = schema.read_finalists(final) or []
    complete = final.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    by_seed: dict[int, SeedRun] = {}
    for t in complete:  # by number: a seed told twice counts once (the finalist stage prevents it)
        if (run := schema.read_seed_run(t)) is not None:
            by_seed.setdefault(run.seed, run)
    runs = [by_seed[s] for s in sorted(by_seed)]
    if not specs or not runs:
        raise AdvisorError(
            f"the finalist stage of study {study_name!r} has not finished. " + unfinished
        )
    settings = schema.read_settings(search) or StudySettings()
    finalists = [finalist_from_runs(spec, runs, settings.chance) for spec in specs]
    verdict = judge(finalists, settings)
    plan = final.user_attrs.get(schema.FINAL_PLAN)
    elapsed = schema.read_elapsed(search, final)
    notes = (
        *verdict.notes,
        *([plan["reason"]] if plan else []),
        *settings.notes,
        *_budget_note(settings, elapsed),
    )
    return TuneResult(
        recommendation=verdict.best,
        baseline=next(f for f in finalists if f.label == schema.BASELINE_LABEL),
        finalists=tuple(f for f in finalists if not f.is_baseline),
        tied_with_best=verdict.tied,
        difference=verdict.difference,
        trials=count_trials(search),
        study_name=study_name,
        storage_display=storage_display,
        elapsed_s=elapsed,
        settings=settings,
        notes=notes,
        budget=budget_summary(search, final, settings, elapsed, len(runs)),
        storage_url=storage_url,
        lr_free=tuple(f for f in finalists if schema.is_lr_free_baseline(f.label)),
        lr_free_tied=verdict.lr_free_tied,
    )


#: A run that took this many times its budget gets a note saying why.
OVER_BUDGET = 1.5


def _budget_note(settings: StudySettings, elapsed: float) -> tuple[str, ...]:
    """Why a run took far longer than its budget: the finalist stage always runs in full."""
    if not settings.budget_s or elapsed <= OVER_BUDGET * settings.budget_s:
        return ()
    return (
        f"The run took {format_duration(elapsed)} against its {format_duration(settings.budget_s)} "
        "budget: the first search batch and the finalist stage (finalists and baselines on "
        "every seed) run in full whatever is left, and they took longer than timed at the "
        f"start (a member-epoch: {settings.member_epoch_s:.3g} s in the search, "
        f"{settings.final_member_epoch_s:.3g} s in the finalist stage). Other processes on the "
        "machine slow it down, and so do optimizers with costly steps (Muon's bfloat16 "
        "Newton-Schulz iterations on a CPU without native bfloat16).",
    )


def budget_summary(
    search: optuna.Study, final: optuna.Study, settings: StudySettings, elapsed: float, seeds: int
) -> dict[str, Any]:
    """How the wall budget was spent, over every worker: the search (training and Optuna),
    the finalist stage, and each optimizer's trials and training seconds."""
    spends = schema.read_spends(search)
    return {
        "budget_s": settings.budget_s,
        "elapsed_s": elapsed,
        "search_s": sum(s.search_s for s in spends),
        "train_s": sum(s.train_s for s in spends),
        "optuna_s": sum(s.optuna_s for s in spends),
        "finals_s": sum(s.finals_s for s in schema.read_spends(final)),
        "final_seeds": seeds,
        "expected_trials": next(
            (s.expected_trials for s in spends if s.expected_trials is not None), None
        ),
        "by_optimizer": by_optimizer(s.by_optimizer for s in spends),
    }


def list_studies(storage: Any) -> list[str]:
    """Names of the search studies in a storage, oldest first."""
    import optuna

    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    summaries.sort(key=lambda s: (s.datetime_start is None, s.datetime_start or 0, s.study_name))
    return [s.study_name for s in summaries if not s.study_name.endswith(FINAL_SUFFIX)]


def load_result(
    study: str | None = None,
    *,
    storage: str | None = None,
    out: str | Path | None = None,
) -> TuneResult:
    """The result of a tuning run, rebuilt from its storage alone; nothing is written.

    ``storage``: the Optuna URL the run used; without it, the journal file that
    ``tune(out=...)`` wrote in ``out`` (default ``advisor-runs/``). ``study``: its name
    (default: the newest search study there). To write the report files again, pass the
    result to :func:`advisor.write_report` (what ``advisor report --out DIR`` does). Opening
    a journal file repairs a torn last record first (:mod:`advisor.tuning.journal`).

    >>> load_result(out="no-such-folder")
    Traceback (most recent call last):
    ...
    advisor.core.errors.StorageError: no study file in no-such-folder/; pass a storage URL, or the folder where `advisor tune --out DIR` wrote it.
    """
    folder = Path(out) if out is not None else DEFAULT_OUT
    path = folder / JOURNAL_FILE
    if storage is None and not path.exists():
        raise StorageError(
            f"no study file in {folder}/; pass a storage URL, or the folder "
            "where `advisor tune --out DIR` wrote it."
        )
    store, display = open_storage(storage, path)
    if study is None:
        names = list_studies(store)
        if not names:
            raise StorageError(
                f"no study in {display}; pass the storage or the folder where the study was written."
            )
        study = names[-1]
    return build_result(store, study, storage_display=display, storage_url=storage)
