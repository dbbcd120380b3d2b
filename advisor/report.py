"""Reports of a tuning run for people (text, Markdown) and the files written with ``--out``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import AdvisorError
from advisor.units import format_duration

if TYPE_CHECKING:
    from advisor.results import Finalist, TuneResult
    from advisor.stats import Summary


def schedule_line(schedule: str, settings: Mapping[str, Any]) -> str:
    """How to reproduce the LR schedule in plain PyTorch (stepped once per batch)."""
    n_train = int(settings.get("n_train") or 0)
    batch = int(settings.get("batch_size") or 128)
    epochs = int(settings.get("epochs") or 5)
    steps = epochs * math.ceil(n_train / batch) if n_train else None
    t = str(steps) if steps else "epochs * batches_per_epoch"
    if schedule == "cosine":
        return f"cosine decay to 0: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max={t}), stepped every batch"
    if schedule == "warmup_cosine":
        return f"linear warmup then cosine decay to 0 over {t} batches (advisor.train.schedules.lr_factor)"
    return "constant learning rate"


def _pct(s: Summary) -> str:
    if s.seeds == 0:
        return "n/a"
    lo, hi = s.ci95
    return f"{s.mean * 100:.2f}% ± {s.std * 100:.2f} (95% CI {lo * 100:.2f}–{hi * 100:.2f}, {s.seeds} seeds)"


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
    tied = set(result.tied_with_best)
    for f in (*result.finalists, result.baseline):
        best = f is result.recommendation
        rows.append(
            [
                ("* " if best else "  ") + f.label,
                f.optimizer,
                _hp(f, "lr"),
                _momentum(f),
                _hp(f, "weight_decay"),
                f.schedule,
                f"{f.val_accuracy.mean * 100:.2f}",
                f"{f.test_accuracy.mean * 100:.2f} ± {f.test_accuracy.std * 100:.2f}",
                "best"
                if best
                else ("tied" if f.label in tied else ("" if f.label != "baseline" else "baseline")),
            ]
        )
    return rows


_HEAD = ["finalist", "optimizer", "lr", "mom/β1", "wd", "schedule", "val %", "test %", ""]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [_HEAD, *rows]) for i in range(len(_HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [_HEAD, *rows]]
    return "\n".join(lines)


def tune_text(result: TuneResult) -> str:
    """The report shown by ``advisor tune`` and ``advisor report``."""
    s = dict(result.settings)
    rec, base = result.recommendation, result.baseline
    d = result.difference
    t = result.trials
    space = s.get("space", {})
    lines = [
        f"advisor tune: {s.get('dataset')} ({s.get('n_train')} train / {s.get('n_val')} val / "
        f"{s.get('n_test')} test), {s.get('epochs')} epochs, batch {s.get('batch_size')}, {s.get('device')}",
        "",
        f"Recommendation: {rec.optimizer}"
        + (f" (trial #{rec.trial})" if rec.trial is not None else " (the default)"),
        f"  {rec.torch}",
        f"  schedule: {schedule_line(rec.schedule, s)}",
        f"  test accuracy: {_pct(rec.test_accuracy)}",
        f"Baseline: {base.torch}, constant learning rate",
        f"  test accuracy: {_pct(base.test_accuracy)}",
        f"Difference: {d['mean'] * 100:+.2f} pp (95% CI {d['ci95'][0] * 100:+.2f} to {d['ci95'][1] * 100:+.2f}, "
        f"paired t-test p = {d['p_value']:.3g})",
    ]
    lines += [f"  note: {n}" for n in result.notes]
    lines += [
        "",
        f"Finalists, re-run on {s.get('seeds')} fresh seeds (chosen on validation, reported on test):",
        _table(_rows(result)),
        "",
        f"Search: {t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, {t.get('diverged', 0)} diverged, "
        f"{t.get('failed', 0)} failed trials in {format_duration(result.elapsed_s)}",
        f"  candidates (rules): {', '.join(s.get('chosen', []))}",
        f"  tuned: {', '.join(space.get('dimensions', []))} — {space.get('reason', '')}",
        f"  sampler: {s.get('sampler', '')}",
        f"  pruner: {s.get('pruner', '')}",
        f"Study: {result.study_name} in {result.storage_display}",
        f"  rebuild this report: advisor report --study {result.study_name} --storage {result.storage_display}",
    ]
    return "\n".join(lines)


def tune_markdown(result: TuneResult) -> str:
    """The same report as Markdown (``report.md``)."""
    s = dict(result.settings)
    rec, base = result.recommendation, result.baseline
    d = result.difference
    rows = _rows(result)
    md = [
        f"# advisor tune — {s.get('dataset')}",
        "",
        f"**Recommendation: `{rec.optimizer}`** — `{rec.torch}`, {schedule_line(rec.schedule, s)}.",
        "",
        f"- Test accuracy: {_pct(rec.test_accuracy)}",
        f"- Baseline `{base.torch}` (constant): {_pct(base.test_accuracy)}",
        f"- Difference: {d['mean'] * 100:+.2f} pp (95% CI {d['ci95'][0] * 100:+.2f} to {d['ci95'][1] * 100:+.2f}, paired t-test p = {d['p_value']:.3g})",
    ]
    md += [f"- **Note:** {n}" for n in result.notes]
    md += [
        "",
        "## Finalists",
        "",
        "| " + " | ".join(h or "status" for h in _HEAD) + " |",
        "|" + "---|" * len(_HEAD),
    ]
    md += ["| " + " | ".join(c.strip() for c in r) + " |" for r in rows]
    t = result.trials
    space = s.get("space", {})
    md += [
        "",
        "## Search",
        "",
        f"- Trials: {t.get('complete', 0)} complete, {t.get('pruned', 0)} pruned, {t.get('diverged', 0)} diverged, {t.get('failed', 0)} failed; {format_duration(result.elapsed_s)} in all.",
        f"- Candidates from the rules: {', '.join(s.get('chosen', []))}",
        f"- Tuned dimensions: {', '.join(space.get('dimensions', []))} — {space.get('reason', '')}",
        f"- Sampler: {s.get('sampler', '')}",
        f"- Pruner: {s.get('pruner', '')}",
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


def write_outputs(result: TuneResult, out_dir: Path) -> list[Path]:
    """Write ``report.md``, ``result.json`` and the PNG plots into ``out_dir``; return the paths."""
    from advisor.plots import write_plots

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "result.json", out_dir / "report.md"]
        paths[0].write_text(result.to_json() + "\n")
        paths[1].write_text(tune_markdown(result))
    except OSError as exc:
        raise AdvisorError(
            f"cannot write the report into {str(out_dir)!r}: {exc.strerror or exc}. "
            "The study is saved; rebuild the report elsewhere with "
            f"`advisor report --study {result.study_name} --out DIR`."
        ) from exc
    return paths + write_plots(result, out_dir)
