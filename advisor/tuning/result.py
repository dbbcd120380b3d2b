"""What a tuning run found, and how it reads for people (text, Markdown) and machines (JSON).

:class:`TuneResult` holds the finalists of the multi-seed stage, the default baseline and the
second baselines (each learning-rate-free method at its defaults); :func:`judge` decides
the winner on validation accuracy, the ties on the test set, and the notes a reader must
see: among them, when a learning-rate-free method at its defaults ties the tuned winner,
that the tuning bought nothing over it. Rendering lives here with the values, as
:class:`~advisor.knowledge.recommender.Recommendation` does it; reading a study back is
:mod:`advisor.tuning.readback`, writing the report files :mod:`advisor.tuning.outputs`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.units import format_duration
from advisor.knowledge.optimizers import torch_line
from advisor.train.schedules import warmup_steps
from advisor.tuning.schema import BASELINE_LABEL, StudySettings, is_lr_free_baseline
from advisor.tuning.stats import Summary, paired_p_value, summarize
from advisor.tuning.storage import open_storage

if TYPE_CHECKING:
    import optuna

#: A finalist is "tied" with the best when a paired t-test cannot tell them apart at this level.
TIE_P_VALUE = 0.05


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

    @property
    def is_baseline(self) -> bool:
        """The default Adam or a learning-rate-free method at its defaults: nothing tuned."""
        return self.label == BASELINE_LABEL or is_lr_free_baseline(self.label)

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
class Verdict:
    """The winner among the finalists and the baseline, what ties it, and what to tell."""

    best: Finalist
    tied: tuple[str, ...]
    difference: Mapping[str, Any]  # best minus baseline, test accuracy: mean, ci95, p_value
    notes: tuple[str, ...]
    lr_free_tied: tuple[str, ...] = ()  # second baselines tied with a tuned best


def judge(finalists: Sequence[Finalist], settings: StudySettings | None = None) -> Verdict:
    """Choose the best of ``finalists`` (the baselines among them) on mean validation accuracy.

    Validation decides and the test set only reports; a baseline may win. A tuned
    finalist is tied with the best when a paired t-test on the test accuracies over the
    same seeds gives p >= :data:`TIE_P_VALUE`. Ties in validation go to the earlier finalist.
    A learning-rate-free method at its defaults that ties a tuned best gets a note: the
    tuning bought nothing over it. ``settings`` name the metric the notes quote (default:
    accuracy, in percent).
    """
    baseline = next(f for f in finalists if f.label == BASELINE_LABEL)
    best = max(finalists, key=lambda f: (f.val_accuracy.mean, -finalists.index(f)))
    tied = tuple(
        f.label
        for f in finalists
        if f is not best
        and not f.is_baseline
        and paired_p_value(best.test_accuracy.values, f.test_accuracy.values) >= TIE_P_VALUE
    )
    lr_free = [f for f in finalists if is_lr_free_baseline(f.label)]
    diffs = [a - b for a, b in zip(best.test_accuracy.values, baseline.test_accuracy.values)]
    d = summarize(diffs)
    p_value = paired_p_value(best.test_accuracy.values, baseline.test_accuracy.values)
    difference: dict[str, Any] = {"mean": d.mean, "ci95": list(d.ci95), "p_value": p_value}
    notes = []
    lr_free_tied: list[str] = []
    if best is baseline:
        notes.append(
            "No tuned configuration beat the default Adam(lr=1e-3) on validation: keep the default."
        )
    elif is_lr_free_baseline(best.label):
        notes.append(
            f"No tuned configuration beat {best.optimizer} at its defaults on validation: the "
            "tuning bought nothing over it; keep it (learning-rate-free: nothing to tune)."
        )
    elif d.mean < 0:
        notes.append(
            "Warning: the recommendation scores below the default Adam baseline on the test set "
            f"({_short(d.mean, settings, diff=True)}); the difference is "
            + ("significant." if p_value < TIE_P_VALUE else "within noise.")
        )
    elif p_value >= TIE_P_VALUE:
        notes.append("The recommendation is not significantly better than the default baseline.")
    if not best.is_baseline:
        for f in lr_free:
            p = paired_p_value(best.test_accuracy.values, f.test_accuracy.values)
            if p >= TIE_P_VALUE:
                lr_free_tied.append(f.label)
                notes.append(
                    f"The tuning bought nothing over {f.optimizer} at its defaults "
                    f"({_one_line(f.torch)}): it ties the tuned winner on the test set "
                    f"({_short(f.test_accuracy.mean, settings)} vs "
                    f"{_short(best.test_accuracy.mean, settings)}, "
                    f"paired t-test p = {p:.3g})."
                )
    return Verdict(best, tied, difference, tuple(notes), tuple(lr_free_tied))


def _one_line(code: str) -> str:
    """The constructor call of a torch line (without its import or comments)."""
    lines = [line for line in code.splitlines() if not line.startswith(("import ", "#"))]
    return lines[0].removeprefix("optimizer = ") if lines else code


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
    settings: StudySettings
    notes: tuple[str, ...] = ()
    storage_url: str | None = field(default=None, repr=False, compare=False)
    #: how the wall budget was spent (:func:`advisor.tuning.readback.budget_summary`)
    budget: Mapping[str, Any] = field(default_factory=dict)
    lr_free: tuple[Finalist, ...] = ()  # the second baselines: learning-rate-free at defaults
    lr_free_tied: tuple[str, ...] = ()

    @property
    def study(self) -> optuna.Study:
        """The Optuna study of the search (loaded on demand)."""
        import optuna

        journal = Path(self.storage_display.removeprefix("journal:"))
        storage, _ = open_storage(self.storage_url, journal)
        return optuna.load_study(study_name=self.study_name, storage=storage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendation": self.recommendation.to_dict(),
            "baseline": self.baseline.to_dict(),
            "finalists": [f.to_dict() for f in self.finalists],
            "tied_with_best": list(self.tied_with_best),
            "difference": dict(self.difference),
            "trials": dict(self.trials),
            "study": {"name": self.study_name, "storage": self.storage_display},
            "elapsed_s": self.elapsed_s,
            "settings": self.settings.to_dict(),
            "notes": list(self.notes),
            "budget": dict(self.budget),
            "lr_free_baselines": [f.to_dict() for f in self.lr_free],
            "lr_free_tied_with_best": list(self.lr_free_tied),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_text(self) -> str:
        """The report shown by ``advisor tune`` and ``advisor report``."""
        return tune_text(self)

    def to_markdown(self) -> str:
        """The same report as Markdown (``report.md``)."""
        return tune_markdown(self)


# ---------------------------------------------------------------- rendering


def schedule_line(schedule: str, settings: StudySettings) -> str:
    """How to reproduce the LR schedule in plain PyTorch (stepped once per batch)."""
    n_train, batch, epochs = settings.n_train, settings.batch_size, settings.epochs
    steps = epochs * math.ceil(n_train / batch) if n_train else None
    t = str(steps) if steps else "epochs * batches_per_epoch"
    if schedule == "cosine":
        return f"cosine decay to 0: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max={t}), stepped every batch"
    if schedule == "warmup_cosine":
        return f"linear warmup then cosine decay to 0 over {t} batches (advisor.train.schedules.lr_factor)"
    if schedule == "warmup_constant":
        warm = f"warmup_steps={warmup_steps(steps)}" if steps else "5% of the steps"
        return f"linear warmup over the first 5% of the steps, then constant ({warm})"
    return "constant learning rate"


def metric_label(settings: StudySettings) -> str:
    """How the report names its metric: ``accuracy`` (the seed task), else the task's metric."""
    return str(settings.task.get("metric") or "accuracy")


def _as_accuracy(settings: StudySettings) -> bool:
    return metric_label(settings) == "accuracy"


def _sign(settings: StudySettings) -> float:
    """Values are stored to be maximized; a minimized metric is shown as itself again."""
    return -1.0 if settings.task.get("direction") == "minimize" else 1.0


def _pct(s: Summary, settings: StudySettings | None = None) -> str:
    if s.seeds == 0:
        return "n/a"
    if settings is not None and not _as_accuracy(settings):
        k = _sign(settings)
        lo, hi = sorted((k * s.ci95[0], k * s.ci95[1]))
        return f"{k * s.mean:.4g} ± {s.std:.3g} (95% CI {lo:.4g}–{hi:.4g}, {s.seeds} seeds)"
    lo, hi = s.ci95
    return f"{s.mean * 100:.2f}% ± {s.std * 100:.2f} (95% CI {lo * 100:.2f}–{hi * 100:.2f}, {s.seeds} seeds)"


def _difference(d: Mapping[str, Any], settings: StudySettings | None = None) -> str:
    lo, hi = d["ci95"]
    if settings is not None and not _as_accuracy(settings):
        k = _sign(settings)
        lo, hi = sorted((k * lo, k * hi))
        return (
            f"{k * d['mean']:+.4g} (95% CI {lo:+.4g} to {hi:+.4g}, "
            f"paired t-test p = {d['p_value']:.3g})"
        )
    return (
        f"{d['mean'] * 100:+.2f} pp (95% CI {lo * 100:+.2f} to {hi * 100:+.2f}, "
        f"paired t-test p = {d['p_value']:.3g})"
    )


def _short(v: float, settings: StudySettings | None, diff: bool = False) -> str:
    """A value in a note: percent (points for a difference) for accuracy, else the metric."""
    if settings is None or _as_accuracy(settings):
        return f"{v * 100:+.2f} pp" if diff else f"{v * 100:.2f}%"
    return f"{_sign(settings) * v:+.4g}" if diff else f"{_sign(settings) * v:.4g}"


def _value(v: float, settings: StudySettings) -> str:
    return f"{v * 100:.2f}" if _as_accuracy(settings) else f"{_sign(settings) * v:.4g}"


def _spend(b: Mapping[str, Any]) -> str:
    """``1m00s asked, 58.1s used: search 40.2s (Optuna 3.1s), finalists 14.0s on 5 seeds;
    adam 310 trials 20.1s, lbfgs 3 trials 9.2s``."""
    per = ", ".join(
        f"{opt} {d['trials']} trials {format_duration(d['seconds'])}"
        for opt, d in b.get("by_optimizer", {}).items()
    )
    return (
        f"{format_duration(b['budget_s'])} asked, {format_duration(b['elapsed_s'])} used: "
        f"search {format_duration(b['search_s'])} (Optuna {format_duration(b['optuna_s'])}), "
        f"finalists {format_duration(b['finals_s'])} on {b['final_seeds']} seeds"
        + (f"; {per}" if per else "")
    )


def _counts(t: Mapping[str, int]) -> str:
    kinds = ("complete", "pruned", "diverged", "failed")
    return ", ".join(f"{t.get(k, 0)} {k}" for k in kinds)


def _hp(f: Finalist, name: str) -> str:
    v = f.hyperparameters.get(name)
    return "-" if v is None else f"{v:.3g}"


def _momentum(f: Finalist) -> str:
    for name in ("momentum", "beta1"):
        if name in f.hyperparameters:
            return f"{f.hyperparameters[name]:.3g}"
    return "-"


def _rows(result: TuneResult) -> list[list[str]]:
    rows = []
    tied = set(result.tied_with_best) | set(result.lr_free_tied)
    for f in (*result.finalists, result.baseline, *result.lr_free):
        best = f is result.recommendation
        rows.append(
            [
                ("* " if best else "  ") + f.label,
                f.optimizer,
                _hp(f, "lr"),
                _momentum(f),
                _hp(f, "weight_decay"),
                f.schedule,
                _value(f.val_accuracy.mean, result.settings),
                f"{_value(f.test_accuracy.mean, result.settings)} ± "
                + (
                    f"{f.test_accuracy.std * 100:.2f}"
                    if _as_accuracy(result.settings)
                    else f"{f.test_accuracy.std:.3g}"
                ),
                "best"
                if best
                else ("tied" if f.label in tied else ("baseline" if f.is_baseline else "")),
            ]
        )
    return rows


_HEAD = ["finalist", "optimizer", "lr", "mom/β1", "wd", "schedule", "val %", "test %", ""]


def _head(settings: StudySettings | None) -> list[str]:
    if settings is None or _as_accuracy(settings):
        return _HEAD
    return [*_HEAD[:6], "val", "test", ""]


def _table(rows: list[list[str]], settings: StudySettings | None = None) -> str:
    head = _head(settings)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    return "\n".join(lines)


def _header(s: StudySettings) -> str:
    if s.n_train == 0 and s.model.startswith("objective "):  # the objective reads its data
        return f"advisor tune: your {s.model}, {s.epochs} epochs, {s.device}"
    return (
        f"advisor tune: {s.dataset} ({s.n_train} train / {s.n_val} val / "
        f"{s.n_test} test), {s.epochs} epochs, batch {s.batch_size}, {s.device}"
    )


def tune_text(result: TuneResult) -> str:
    """The report shown by ``advisor tune`` and ``advisor report``."""
    s = result.settings
    rec, base = result.recommendation, result.baseline
    d = result.difference
    t = result.trials
    space = s.space
    lines = [
        _header(s),
        "",
        f"Recommendation: {rec.optimizer}"
        + (f" (trial #{rec.trial})" if rec.trial is not None else " (the default)"),
        *(f"  {line}" for line in rec.torch.splitlines()),
        f"  schedule: {schedule_line(rec.schedule, s)}",
        f"  test {metric_label(s)}: {_pct(rec.test_accuracy, s)}",
        f"Baseline: {base.torch}, constant learning rate",
        f"  test {metric_label(s)}: {_pct(base.test_accuracy, s)}",
    ]
    for f in result.lr_free:
        lines += [
            f"Second baseline (learning-rate-free, at its defaults): {_one_line(f.torch)}",
            f"  test {metric_label(s)}: {_pct(f.test_accuracy, s)}",
        ]
    lines += [
        f"Difference: {_difference(d, s)}",
    ]
    lines += [f"  note: {n}" for n in result.notes]
    lines += [
        "",
        f"Finalists, re-run on {s.seeds} fresh seeds (chosen on validation, reported on test):",
        _table(_rows(result), s),
        "",
        f"Search: {_counts(t)} trials in {format_duration(result.elapsed_s)}",
        *([f"  budget: {_spend(result.budget)}"] if result.budget else []),
        f"  candidates (rules): {', '.join(s.chosen)}",
        f"  tuned: {', '.join(space.get('dimensions', []))} — {space.get('reason', '')}",
        f"  sampler: {s.sampler}",
        f"  pruner: {s.pruner}",
        f"Study: {result.study_name} in {result.storage_display}",
        f"  rebuild this report: advisor report --study {result.study_name} --storage {result.storage_display}",
    ]
    return "\n".join(lines)


def tune_markdown(result: TuneResult) -> str:
    """The same report as Markdown (``report.md``)."""
    s = result.settings
    rec, base = result.recommendation, result.baseline
    d = result.difference
    rows = _rows(result)
    md = [
        f"# advisor tune — {s.dataset}",
        "",
        f"**Recommendation: `{rec.optimizer}`** — {schedule_line(rec.schedule, s)}.",
        "",
        "```python",
        rec.torch,
        "```",
        "",
        f"- Test {metric_label(s)}: {_pct(rec.test_accuracy, s)}",
        f"- Baseline `{base.torch}` (constant): {_pct(base.test_accuracy, s)}",
        *(
            f"- Second baseline `{_one_line(f.torch)}` (learning-rate-free, at its defaults): "
            f"{_pct(f.test_accuracy, s)}"
            for f in result.lr_free
        ),
        f"- Difference: {_difference(d, s)}",
    ]
    md += [f"- **Note:** {n}" for n in result.notes]
    md += [
        "",
        "## Finalists",
        "",
        "| " + " | ".join(h or "status" for h in _head(s)) + " |",
        "|" + "---|" * len(_head(s)),
    ]
    md += ["| " + " | ".join(c.strip() for c in r) + " |" for r in rows]
    t = result.trials
    space = s.space
    md += [
        "",
        "## Search",
        "",
        f"- Trials: {_counts(t)}; {format_duration(result.elapsed_s)} in all.",
        *([f"- Budget: {_spend(result.budget)}"] if result.budget else []),
        f"- Candidates from the rules: {', '.join(s.chosen)}",
        f"- Tuned dimensions: {', '.join(space.get('dimensions', []))} — {space.get('reason', '')}",
        f"- Sampler: {s.sampler}",
        f"- Pruner: {s.pruner}",
        f"- Study `{result.study_name}` in `{result.storage_display}`",
        "",
        "## Figures",
        "",
        "![validation accuracy against learning rate](lr_vs_accuracy.png)",
        "![learning curves of the finalists](learning_curves.png)",
        "![finalists against the baseline](finalists.png)",
        "![hyperparameter importance](importance.png)",
    ]
    return "\n".join(md) + "\n"
