"""PNG figures of a tuning run (matplotlib, headless): where people would rather look than read."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from advisor.tuning.result import TuneResult


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(plt: Any, fig: Any, path: Path) -> None:
    """Save ``fig`` as ``path`` all at once (a temporary file renamed: a full disk leaves the
    previous figure, never half a new one) and close it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def write_plots(result: TuneResult, out_dir: Path) -> list[Path]:
    """Write the four figures; return their paths."""
    study = result.study
    return [
        plot_lr_vs_accuracy(study, out_dir / "lr_vs_accuracy.png"),
        plot_learning_curves(result, out_dir / "learning_curves.png"),
        plot_finalists(result, out_dir / "finalists.png"),
        plot_importance(study, result, out_dir / "importance.png"),
    ]


def plot_lr_vs_accuracy(study: Any, path: Path) -> Path:
    """Validation accuracy (last epoch reached) against learning rate, one colour per optimizer."""
    from optuna.trial import TrialState

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points: dict[str, list[tuple[float, float, bool]]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        opt = t.params.get("optimizer") or next((k.split(".")[0] for k in t.params), "?")
        lr = t.params.get(f"{opt}.lr")
        if lr is None or not t.intermediate_values:
            continue
        acc = (
            t.value
            if t.state == TrialState.COMPLETE
            else t.intermediate_values[max(t.intermediate_values)]
        )
        points.setdefault(str(opt), []).append(
            (float(lr), float(acc or 0.0), t.state == TrialState.COMPLETE)
        )
    for opt, pts in sorted(points.items()):
        done = [(x, y) for x, y, c in pts if c]
        pruned = [(x, y) for x, y, c in pts if not c]
        line = ax.scatter(*zip(*done), label=f"{opt} (complete)", s=28) if done else None
        color = line.get_facecolor()[0] if line is not None else None
        if pruned:
            ax.scatter(
                *zip(*pruned), s=14, marker="x", alpha=0.5, color=color, label=f"{opt} (pruned)"
            )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation accuracy (last epoch run)")
    ax.set_title("Search: validation accuracy against learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_png(plt, fig, path)
    return path


def plot_learning_curves(result: TuneResult, path: Path) -> Path:
    """Mean validation accuracy per epoch over the final seeds (band: min-max), finalists and baseline."""

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for f in (*result.finalists, result.baseline, *result.lr_free):
        curves = [c for c in f.curves if c]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves])
        epochs = np.arange(1, n + 1)
        style = "--" if f.is_baseline else "-"
        ax.plot(epochs, arr.mean(0), style, marker="o", label=f"{f.label} ({f.schedule})")
        ax.fill_between(epochs, arr.min(0), arr.max(0), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Finalists on {result.settings.seeds} fresh seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(plt, fig, path)
    return path


def plot_finalists(result: TuneResult, path: Path) -> Path:
    """Test accuracy of each finalist and the baseline with 95 % confidence intervals."""
    plt = _pyplot()
    items = [*result.finalists, result.baseline, *result.lr_free]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(items) + 1.5))
    for i, f in enumerate(items):
        s = f.test_accuracy
        err = [[(s.mean - s.ci95[0]) * 100], [(s.ci95[1] - s.mean) * 100]]
        color = (
            "tab:green"
            if f is result.recommendation
            else ("tab:gray" if f.is_baseline else "tab:blue")
        )
        ax.errorbar([s.mean * 100], [i], xerr=err, fmt="o", color=color, capsize=4)
        ax.scatter([v * 100 for v in s.values], [i] * len(s.values), s=8, color=color, alpha=0.4)
    ax.set_yticks(range(len(items)), [f"{f.label} ({f.schedule})" for f in items])
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy, % (mean, 95% CI, seeds as dots)")
    ax.set_title("Finalists against the defaults (Adam(lr=1e-3), learning-rate-free methods)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save_png(plt, fig, path)
    return path


def plot_importance(study: Any, result: TuneResult, path: Path) -> Path:
    """Optuna's hyperparameter importance (PED-ANOVA) over the winner's optimizer's trials."""
    from optuna.trial import TrialState

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    opt = result.recommendation.optimizer
    params = sorted(
        {
            k
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            for k in t.params
            if k.startswith(f"{opt}.")
        }
    )
    importances, message = _importances(study, params)
    if importances:
        names = list(importances)
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.invert_yaxis()
        ax.set_xlabel("importance (PED-ANOVA)")
    else:
        ax.text(
            0.5,
            0.5,
            message or "not enough complete trials to estimate importance",
            ha="center",
            va="center",
            wrap=True,
        )
        ax.set_axis_off()
    ax.set_title(f"Hyperparameter importance for {opt}")
    fig.tight_layout()
    save_png(plt, fig, path)
    return path


def _importances(study: Any, params: list[str]) -> tuple[dict[str, float], str]:
    """PED-ANOVA importances (fast, what optuna-dashboard uses), or why there are none."""

    import optuna

    if not params:
        return {}, ""
    evaluator_cls = getattr(optuna.importance, "PedAnovaImportanceEvaluator", None)
    try:
        with warnings.catch_warnings():  # "few trials in a regime" on small studies
            warnings.simplefilter("ignore", UserWarning)
            found = optuna.importance.get_param_importances(
                study, params=params, evaluator=evaluator_cls() if evaluator_cls else None
            )
        return dict(found), ""
    except (ValueError, RuntimeError) as exc:  # too few complete trials to tell
        return {}, str(exc).splitlines()[0]
