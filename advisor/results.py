"""What a tuning run found, rebuilt from the Optuna storage alone.

A study ``S`` holds the search trials; the study ``S.final`` holds one trial per seed of
the multi-seed stage, each with the validation curves and test accuracies of every
finalist and of the baseline. :func:`build_result` turns both into a :class:`TuneResult`,
so ``advisor report`` gives the same answer as the run that wrote them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import AdvisorError
from advisor.optimizers import torch_line
from advisor.stats import Summary, paired_p_value, summarize

if TYPE_CHECKING:
    import optuna

#: Suffix of the study that holds the multi-seed finalist stage.
FINAL_SUFFIX = ".final"
#: A finalist is "tied" with the best when a paired t-test cannot tell them apart at this level.
TIE_P_VALUE = 0.05
BASELINE_LABEL = "baseline"
BASELINE = {"optimizer": "adam", "hyperparameters": {"lr": 1e-3}, "schedule": "constant"}


@dataclass(frozen=True)
class Finalist:
    """One configuration re-run on several seeds: validation picks, the test set reports."""

    label: str
    optimizer: str
    hyperparameters: Mapping[str, float]
    schedule: str
    trial: int | None
    search_val_accuracy: float | None
    val_accuracy: Summary
    test_accuracy: Summary
    curves: tuple[tuple[float, ...], ...]  # per seed: validation accuracy per epoch
    diverged_seeds: int = 0

    @property
    def torch(self) -> str:
        return torch_line(self.optimizer, self.hyperparameters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "optimizer": self.optimizer,
            "hyperparameters": dict(self.hyperparameters),
            "schedule": self.schedule,
            "torch": self.torch,
            "trial": self.trial,
            "search_val_accuracy": self.search_val_accuracy,
            "val_accuracy": self.val_accuracy.to_dict(),
            "test_accuracy": self.test_accuracy.to_dict(),
            "curves": [list(c) for c in self.curves],
            "diverged_seeds": self.diverged_seeds,
        }


@dataclass(frozen=True)
class TuneResult:
    """The answer of :func:`advisor.tune`; ``to_json()`` follows the documented contract."""

    recommendation: Finalist
    baseline: Finalist
    finalists: tuple[Finalist, ...]
    tied_with_best: tuple[str, ...]
    difference: Mapping[str, Any]  # recommendation minus baseline, test accuracy
    trials: Mapping[str, int]
    study_name: str
    storage_display: str
    elapsed_s: float
    settings: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    storage_url: str | None = field(default=None, repr=False, compare=False)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study of the search (loaded on demand)."""
        import optuna

        from advisor.storage import open_storage

        storage, _ = open_storage(self.storage_url, _journal_path(self.storage_display))
        return optuna.load_study(study_name=self.study_name, storage=storage)

    def to_dict(self) -> dict[str, Any]:
        rec = self.recommendation.to_dict()
        base = self.baseline.to_dict()
        return {
            "recommendation": rec,
            "baseline": base,
            "finalists": [f.to_dict() for f in self.finalists],
            "tied_with_best": list(self.tied_with_best),
            "difference": dict(self.difference),
            "trials": dict(self.trials),
            "study": {"name": self.study_name, "storage": self.storage_display},
            "elapsed_s": self.elapsed_s,
            "settings": dict(self.settings),
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_text(self) -> str:
        from advisor.report import tune_text

        return tune_text(self)

    def to_markdown(self) -> str:
        from advisor.report import tune_markdown

        return tune_markdown(self)


def _journal_path(display: str) -> Path:
    return Path(display.removeprefix("journal:"))


def count_trials(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: complete, pruned, diverged (told as pruned), failed, running."""
    from optuna.trial import TrialState

    counts = {"complete": 0, "pruned": 0, "diverged": 0, "failed": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif t.state == TrialState.PRUNED:
            key = "diverged" if t.user_attrs.get("advisor_status") == "diverged" else "pruned"
            counts[key] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 1
        elif t.state == TrialState.RUNNING:
            counts["running"] += 1
    return counts


def build_result(
    storage: Any, study_name: str, *, storage_display: str = "", storage_url: str | None = None
) -> TuneResult:
    """Rebuild the result of a finished study from its storage alone."""
    import optuna
    from optuna.trial import TrialState

    try:
        search = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError as exc:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        from advisor.errors import unknown_name

        raise unknown_name(
            "study", study_name, [n for n in names if not n.endswith(FINAL_SUFFIX)]
        ) from exc
    try:
        final = optuna.load_study(study_name=study_name + FINAL_SUFFIX, storage=storage)
    except KeyError as exc:
        raise AdvisorError(
            f"the study {study_name!r} has no finalist stage yet (its search is not finished). "
            f"Run `advisor tune --study {study_name}` with the same storage to finish it."
        ) from exc
    specs: list[dict[str, Any]] = final.user_attrs.get("advisor_finalists", [])
    runs = [
        t.user_attrs["advisor_results"]
        for t in final.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "advisor_results" in t.user_attrs
    ]
    runs.sort(key=lambda r: r["seed"])
    if not specs or not runs:
        raise AdvisorError(
            f"the finalist stage of study {study_name!r} has not finished. "
            f"Run `advisor tune --study {study_name}` with the same storage to finish it."
        )
    settings: dict[str, Any] = dict(search.user_attrs.get("advisor_settings", {}))
    chance = 1.0 / float(settings.get("n_classes", 10))
    finalists = []
    for spec in specs:
        label = spec["label"]
        vals, tests, curves, diverged = [], [], [], 0
        for run in runs:
            member = run["members"].get(label)
            if member is None:
                continue
            curve = tuple(float(v) for v in member["val_curve"])
            curves.append(curve)
            if member["status"] == "diverged" or member["test_accuracy"] is None:
                diverged += 1  # a diverged model predicts garbage: score it at chance level
                vals.append(chance)
                tests.append(chance)
            else:
                vals.append(curve[-1])
                tests.append(float(member["test_accuracy"]))
        finalists.append(
            Finalist(
                label=label,
                optimizer=spec["optimizer"],
                hyperparameters=spec["hyperparameters"],
                schedule=spec["schedule"],
                trial=spec.get("trial"),
                search_val_accuracy=spec.get("search_val_accuracy"),
                val_accuracy=summarize(vals),
                test_accuracy=summarize(tests),
                curves=tuple(curves),
                diverged_seeds=diverged,
            )
        )
    baseline = next(f for f in finalists if f.label == BASELINE_LABEL)
    tuned = [f for f in finalists if f.label != BASELINE_LABEL]
    # validation decides (the test set only reports); the baseline may win
    best = max(finalists, key=lambda f: (f.val_accuracy.mean, -finalists.index(f)))
    tied = tuple(
        f.label
        for f in tuned
        if f is not best
        and paired_p_value(best.test_accuracy.values, f.test_accuracy.values) >= TIE_P_VALUE
    )
    diffs = [a - b for a, b in zip(best.test_accuracy.values, baseline.test_accuracy.values)]
    d = summarize(diffs)
    difference: dict[str, Any] = {
        "mean": d.mean,
        "ci95": list(d.ci95),
        "p_value": paired_p_value(best.test_accuracy.values, baseline.test_accuracy.values),
    }
    notes = []
    if best is baseline:
        notes.append(
            "No tuned configuration beat the default Adam(lr=1e-3) on validation: keep the default."
        )
    elif d.mean < 0:
        notes.append(
            "Warning: the recommendation scores below the default Adam baseline on the test set "
            f"({d.mean * 100:+.2f} pp); the difference is "
            + ("significant." if difference["p_value"] < TIE_P_VALUE else "within noise.")
        )
    elif difference["p_value"] >= TIE_P_VALUE:
        notes.append("The recommendation is not significantly better than the default baseline.")
    counts = count_trials(search)
    elapsed = float(
        final.user_attrs.get("advisor_elapsed_s", search.user_attrs.get("advisor_elapsed_s", 0.0))
    )
    return TuneResult(
        recommendation=best,
        baseline=baseline,
        finalists=tuple(tuned),
        tied_with_best=tied,
        difference=difference,
        trials=counts,
        study_name=study_name,
        storage_display=storage_display,
        elapsed_s=elapsed,
        settings=settings,
        notes=tuple(notes),
        storage_url=storage_url,
    )


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
    """The result of a tuning run, rebuilt from its storage alone (``advisor report``).

    ``storage``: the Optuna URL the run used; without it, the journal file that
    ``tune(out=...)`` wrote in ``out`` (default ``advisor-runs/``). ``study``: its name
    (default: the newest search study there). With ``out``, the report files are (re)written
    there too.

    >>> result = load_result(out="runs/fmnist")  # doctest: +SKIP
    """
    from advisor.errors import StorageError
    from advisor.storage import open_storage
    from advisor.tuner import DEFAULT_OUT

    folder = Path(out) if out is not None else None
    path = (folder or DEFAULT_OUT) / "studies.journal"
    if storage is None and not path.exists():
        raise StorageError(
            f"no study file in {folder or DEFAULT_OUT}/; pass a storage URL, or the folder "
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
    result = build_result(store, study, storage_display=display, storage_url=storage)
    if folder is not None:
        from advisor.report import write_outputs

        write_outputs(result, folder)
    return result
