"""docs/VALIDATION.md, drawn from the verdicts (validation_judge): the summary and detail
tables, the learning-rate plot, and what issue 15 added (per-scenario plots, the power
table, the generalization check on the held-out scenarios, the list of unvalidated rules);
and the rules' ``validated`` lists derived from the same verdicts.

The doc's part below its marker is written by hand and kept (doc_files).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import validation_grid
import validation_stats
from doc_files import commands_line, commands_section, write_keeping_hand_part
from scenarios import HELD_OUT, SCENARIOS
from validation_grid import Point
from validation_judge import DEFAULTS_SUFFIX, TIED_P, Verdict, holds_best_lr

import advisor
from advisor.knowledge.rules import load_rules
from advisor.tuning.stats import summarize

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "VALIDATION.md"
PLOT = ROOT / "docs" / "benchmarks" / "validation.png"
PLOTS = ROOT / "docs" / "benchmarks" / "validation"


def _pp(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 100:.2f}"


def score(v: Any, x: float) -> str:
    """A score or a difference in the scenario's unit: accuracy in % (pp), a regression's
    negative MSE (of standardized targets) as it is."""
    if getattr(v, "task", "classification") == "regression":
        return "-" if x is None or math.isnan(x) else f"{x:.4f}"
    return _pp(x)


def tied_optimizers(v: Any) -> list[str]:
    """The optimizers tied with the best (a ``-defaults`` row repeats its optimizer: left out)."""
    return [n for n in v.tied if not n.endswith(DEFAULTS_SUFFIX)]


def tie_size(v: Any) -> int:
    """How many optimizers are tied with the best (:func:`tied_optimizers`)."""
    return len(tied_optimizers(v))


def tie_gap(v: Any) -> float:
    """How far below the best the weakest of :func:`tied_optimizers` scores (its unit: pp,
    or MSE for a regression). Below 0.5 pp, every optimizer 0.5 pp or more behind the best
    was told apart from it: issue 15's power goal, read off the data."""
    best = v.scores[v.best]["mean_test"]
    return max(best - v.scores[n]["mean_test"] for n in tied_optimizers(v))


def stopped_runs(points: Sequence[Point]) -> str:
    """One sentence on the runs a ``stop_converged`` grid stopped early ("" when none did)."""
    runs = [(at, len(curve)) for p in points for at, curve in zip(p.stopped_at, p.curves)]
    stopped = [(at, n) for at, n in runs if at]
    if not stopped:
        return ""
    share = sum(at for at, _ in stopped) / sum(n for _, n in stopped)
    return (
        f" Runs stopped once converged: {len(stopped)} of {len(runs)}, after "
        f"{100 * share:.0f} % of their epochs on average."
    )


def plot_scenario(v: Any, path: Path) -> Path:
    """Each optimizer's test score (mean over the seeds, its 95 % t-interval), best first;
    advisor's top 3 in orange with their rank, the tie set with the best in bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(v.scores, key=lambda n: v.scores[n]["mean_test"])
    sums = [summarize(v.scores[n]["test"]) for n in names]
    scale = 1.0 if getattr(v, "task", "classification") == "regression" else 100.0
    means = [s.mean * scale for s in sums]
    low = [(s.mean - s.ci95[0]) * scale for s in sums]
    high = [(s.ci95[1] - s.mean) * scale for s in sums]
    colors = ["tab:orange" if n in v.top else "tab:blue" for n in names]
    fig, ax = plt.subplots(figsize=(6.0, 0.32 * len(names) + 1.2))
    ys = range(len(names))
    ax.errorbar(means, ys, xerr=[low, high], fmt="none", ecolor="gray", capsize=2)
    ax.scatter(means, ys, c=colors, zorder=3)
    labels = [f"{n} (#{v.top.index(n) + 1})" if n in v.top else n for n in names]
    ax.set_yticks(list(ys), labels, fontsize=8)
    for tick, n in zip(ax.get_yticklabels(), names):
        if n in v.tied:
            tick.set_fontweight("bold")
    finite = [m for m in means if math.isfinite(m)]
    if finite:
        top = max(finite)
        span = top - max(min(finite), top - (40 if scale == 100 else abs(top) * 4 + 1))
        ax.set_xlim(left=top - 1.05 * span - 0.1)
    ax.set_xlabel("test accuracy %" if scale == 100 else "test metric")
    ax.set_title(f"{v.scenario}: orange = advisor's top 3, bold = tied with the best", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def power_table(verdicts: Sequence[Any]) -> str:
    """Per scenario: MDD, tie-set size and widest gap, convergence and the planner's seeds
    / test size."""
    lines = [
        "| scenario | seeds | MDD at 80 % power (pp; a regression: MSE) | tie-set size | widest gap in the tie set (pp; MSE) | converged | seeds for 0.5 pp | test examples for 0.5 pp (have) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        seeds = len(v.scores[v.best]["test"])
        conv = {None: "-", True: "yes", False: "NO"}[v.converged]
        p = v.plan
        need = "-" if not p else (str(p["seeds"]) if p["seeds"] else f"> {50}")
        test = "-" if not p else f"{p['test_examples']:,} ({p['test_size']:,})"
        lines.append(
            f"| {v.scenario} | {seeds} | {score(v, v.mdd)} | {tie_size(v)} | {score(v, tie_gap(v))} | {conv} | {need} | {test} |"
        )
    return "\n".join(lines)


def generalization(verdicts: Sequence[Any], held_out: Sequence[str]) -> str:
    """The top-3 criterion on the held-out scenarios and on the others, apart."""
    out = []
    for label, group in (
        ("held out (no rule changed on them)", [v for v in verdicts if v.scenario in held_out]),
        ("used to adjust rules", [v for v in verdicts if v.scenario not in held_out]),
    ):
        hits = sum(v.hit for v in group)
        names = ", ".join(v.scenario for v in group) or "none run"
        out.append(f"- **{label}:** best or tied in top 3 in {hits} of {len(group)} ({names}).")
    missing = [n for n in held_out if n not in {v.scenario for v in verdicts}]
    if missing:
        out.append(f"- Held out but not in these grids yet: {', '.join(missing)}.")
    return "\n".join(out)


def rule_coverage(verdicts: Sequence[Any], rules_dirs: Sequence[str] = ()) -> str:
    """The rules no scenario validates (``validated = []`` in rules/*.toml), and every
    rule's ``validated`` claim checked against these grids (did it fire there?)."""
    fired = {v.scenario: set(v.fired) for v in verdicts}
    unvalidated, stale = [], []
    for r in load_rules(tuple(rules_dirs)):
        if not r.enabled:
            continue
        if not r.validated:
            unvalidated.append(f"`{r.id}` ({Path(r.file).name})")
        for name in r.validated:
            if name in fired and r.id not in fired[name]:
                stale.append(f"`{r.id}` names {name}, where it no longer fires")
    lines = [
        f"**Unvalidated rules** ({len(unvalidated)}: no validation scenario exercises them; "
        "`advisor rules show` marks them UNVALIDATED): " + (", ".join(unvalidated) or "none") + ".",
    ]
    if stale:
        lines += ["", "**Stale `validated` claims:** " + "; ".join(stale) + "."]
    return "\n".join(lines)


def judged_ranges(rule_id: str, v: Any, rec: advisor.Recommendation) -> list[bool]:
    """For each of advisor's top 3 in scenario ``v`` (``rec``: its recommendation) whose
    learning-rate range ``rule_id`` changed: whether that range holds the optimizer's best
    learning rate or one tied with it (the top 3's ranges are what ``advisor tune``
    searches)."""
    out = []
    for c in rec.candidates[: len(v.top)]:
        knob = advisor.get_optimizer_info(c.optimizer).knob
        changed = any(r.rule == rule_id and r.detail.startswith(f"{knob} ") for r in c.reasons)
        if changed and c.optimizer in v.scores:
            out.append(holds_best_lr(c.search_space[knob], v.scores[c.optimizer]))
    return out


def derived_validated(
    verdicts: Sequence[Any], rules_dirs: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Each enabled rule's ``validated`` list as the grids say it, in the verdicts' order:
    the scenarios where it fires and what it changes holds. Its scores, or its advice
    alone, hold when advisor's top 3 holds the best or a tie with it. Its learning-rate
    ranges hold when each range it changed among the top 3 holds that optimizer's best
    learning rate or one tied with it. A rule that only moves ranges is judged by those
    alone (the ranking does not depend on it), and only where it moved a top-3 range."""
    recs = [
        advisor.recommend(advisor.Profile(**v.profile_fields), rules_dirs=rules_dirs)
        for v in verdicts
    ]
    out = {}
    for r in load_rules(tuple(rules_dirs)):
        if not r.enabled:
            continue
        names = []
        for v, rec in zip(verdicts, recs):
            if r.id not in v.fired:
                continue
            ranges = judged_ranges(r.id, v, rec) if r.search_space else []
            if r.search_space and not r.scores:
                holds = bool(ranges) and all(ranges)
            else:
                holds = v.hit and all(ranges)
            if holds:
                names.append(v.scenario)
        out[r.id] = names
    return out


def write_validated(derived: dict[str, list[str]], rules_dir: Path) -> list[str]:
    """Rewrite the ``validated = [...]`` line under each rule's ``id`` in ``rules_dir``'s
    TOML files to ``derived``; return the ids whose list changed."""
    changed = []
    for path in sorted(rules_dir.glob("*.toml")):
        text = path.read_text()

        def put(m: re.Match[str]) -> str:
            rid = m.group(1)
            if rid not in derived:
                return m.group(0)
            new = "validated = [" + ", ".join(f'"{n}"' for n in derived[rid]) + "]"
            if new != m.group(2):
                changed.append(rid)
            return f'id = "{rid}"\n{new}'

        new_text = re.sub(r'^id = "([^"]+)"\n(validated = \[[^\]\n]*\])$', put, text, flags=re.M)
        if new_text != text:
            path.write_text(new_text)
    return changed


def hit_rate(verdicts: Sequence[Any]) -> float:
    return statistics.mean(v.hit for v in verdicts) if verdicts else math.nan


# ---------------------------------------------------------------------------- the doc


def _lrs(score: dict[str, Any]) -> str:
    """The best lr, and the span of the lrs tied with it."""
    tied = score["tied_lrs"]
    span = f" (tied {tied[0]:g}..{tied[-1]:g})" if len(tied) > 1 else ""
    return f"{score['best_lr']:g}{span}"


def summary_table(verdicts: list[Verdict]) -> str:
    lines = [
        "| scenario | advisor's top 3 | measured best (test %; a regression: -MSE) | tied with it (p >= 0.05) | MDD at 80 % power (pp; a regression: MSE) | tie-set size | best or tied in top 3? | lr range holds the best lr? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lr = ", ".join(
            f"{n} {'yes' if ok else 'NO'} ({_lrs(v.scores[n])} vs {v.ranges[n][0]:.2g}..{v.ranges[n][1]:.2g})"
            for n, ok in v.lr_checks.items()
        )
        lines.append(
            f"| {v.scenario} | {', '.join(v.top)} | {v.best} ({score(v, v.scores[v.best]['mean_test'])}) | "
            f"{', '.join(v.tied)} | {score(v, v.mdd)} | {tie_size(v)} | "
            f"{'yes' if v.hit else 'NO'} | {lr} |"
        )
    return "\n".join(lines)


def detail_table(v: Verdict) -> str:
    rank = {n: i + 1 for i, n in enumerate(v.top)}
    unit = "-MSE" if v.task == "regression" else "%"
    lines = [
        f"| optimizer | advisor rank (top 3) | test {unit} (mean of the seeds) | val {unit} | best lr (tied) | best momentum | recommended lr range |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sorted(v.scores, key=lambda n: -v.scores[n]["mean_test"]):
        sc = v.scores[n]
        mark = " (best)" if n == v.best else (" (tied)" if n in v.tied else "")
        mom = "-" if sc["best_momentum"] is None else f"{sc['best_momentum']:g}"
        span = f"{v.ranges[n][0]:.2g}..{v.ranges[n][1]:.2g}" if n in v.ranges else "-"
        lines.append(
            f"| {n}{mark} | {rank.get(n, '-')} | {score(v, sc['mean_test'])} | {score(v, sc['mean_val'])} | "
            f"{_lrs(sc)} | {mom} | {span} |"
        )
    return "\n".join(lines)


def plot(verdicts: list[Verdict], all_points: dict[str, list[Point]], path: Path) -> None:
    """Test accuracy against learning rate per optimizer (best momentum by validation), one
    panel per scenario. Points --prune dropped after the first seed show that seed, hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = (len(verdicts) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, v in zip(axes.flat, verdicts):
        for name in advisor.list_optimizers():
            mine = [p for p in all_points[v.scenario] if p.optimizer == name]
            by_lr: dict[float, Point] = {}
            for p in mine:  # the momentum validation picks at each lr (a scored point first)
                q = by_lr.get(p.lr)
                if q is None or (q.pruned, -q.mean_val) > (p.pruned, -p.mean_val):
                    by_lr[p.lr] = p
            xs = sorted(by_lr)
            style = "-" if name in v.top else ":"
            ys = [statistics.mean(by_lr[x].test) * 100 for x in xs]
            (line,) = ax.plot(xs, ys, style, marker=".", label=name)
            first_seed_only = [(x, y) for x, y in zip(xs, ys) if by_lr[x].pruned]
            if first_seed_only:
                ax.plot(*zip(*first_seed_only), "o", mfc="none", ms=4, color=line.get_color())
        ax.set_xscale("log")
        ax.set_title(v.scenario, fontsize=10)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("test accuracy %")
        ax.set_ylim(bottom=max(0.0, min(ax.get_ylim()[1] - 40, ax.get_ylim()[0])))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(verdicts) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=10, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_doc(
    verdicts: list[Verdict], points: dict[str, list[Point]], machine: str, commands: list[str]
) -> None:
    """Write the generated part of the doc (the part written by hand is kept) and the plot."""
    plot(verdicts, points, PLOT)
    extra = "".join(
        f", plus {', '.join(f'{x:g}' for x in s.extra_lrs)} in {s.name}"
        for s in SCENARIOS
        if s.extra_lrs
    )
    parts = [
        "# Rule validation: advisor's advice against grid-searched truth",
        "",
        f"Generated by {commands_line(commands)} (raw figures: [`benchmarks/validation.json`](benchmarks/validation.json); "
        "redraw without re-running: `python benchmarks/validate_rules.py --from-json docs/benchmarks/validation.json`).",
        "",
        f"**Machine:** {machine}.",
        "",
        "**Method.** Each scenario's profile is measured by `advisor.profile_model` (what "
        "`advisor tune` does) and given to `advisor.recommend`. The truth: a grid over every "
        f"registered optimizer x learning rate ({', '.join(f'{x:g}' for x in validation_grid.LRS)}{extra}; L-BFGS "
        f"{', '.join(f'{x:g}' for x in validation_grid.LBFGS_LRS)}; Muon {', '.join(f'{x:g}' for x in validation_grid.MUON_LRS)}) "
        f"x momentum ({', '.join(f'{x:g}' for x in validation_grid.MOMENTA)}; "
        f"SGD with momentum and Nesterov); learning-rate-free Prodigy at its defaults (lr 1) x its "
        f"one knob d_coef ({', '.join(f'{x:g}' for x in validation_grid.KNOB_VALUES)}; shown in the lr columns); "
        "Schedule-Free AdamW with its own warmup-then-constant schedule, every other point with a "
        "constant learning rate; Muon only where the model has a hidden 2-D weight (elsewhere it "
        "would hand every tensor to AdamW). Every point trained on the scenario's seeds (the "
        f"power table's count; {len(validation_grid.SEEDS)} in issue 7's grids; weights "
        "and minibatch order, shared by all points: comparisons are paired; with `--prune`, "
        "only each optimizer's best points after the first seed). Validation picks "
        "each optimizer's best point (mean over the seeds), as a user would; the held-out test "
        "set judges it (picking and judging on the same numbers would favour optimizers with "
        "more grid points). A diverged run counts as a guess. *Tied* means a paired t-test "
        f"over the seeds cannot tell it from the best (p >= {TIED_P}). Under a tight budget an "
        "optimizer's score is instead the expected test accuracy of the best (by validation) "
        "of 3 learning rates drawn from its recommended range, other hyperparameters at their "
        "defaults: what 3 trials find.",
        "",
        summary_table(verdicts),
        "",
        f"![test accuracy against learning rate]({PLOT.relative_to(DOC.parent).as_posix()})",
        "",
        "Solid lines: advisor's top 3; dotted: the others. Hollow circles: points that "
        "`--prune` trained on the first seed only (not scored; that seed's test accuracy).",
        "",
        "**Power** (issue 15). *MDD*: the minimal paired difference the seeds detect at 80 % "
        "power (paired t-test, two-sided alpha 0.05, s_d: the median over the best against each "
        "other optimizer). *Widest gap*: how far below the best the weakest member of the tie "
        "set scores (mean test score; `-defaults` rows aside): under 0.5 pp, every optimizer 0.5 pp "
        "or more behind the best was told apart from it. *Converged*: the best of the best "
        f"configuration's last {validation_stats.CONVERGED_K} mean validation scores beat the best "
        f"before them by less than {validation_stats.CONVERGED_TOL * 100:g} pp "
        "('-': a fixed-budget scenario, or a grid saved without curves). *Seeds for 0.5 pp*: "
        "the least seeds with MDD <= 0.5 pp at this s_d; *test examples*: the test-set size at "
        "which the test set's own sampling noise of a difference (binomial, independent errors: "
        "an upper bound) allows 0.5 pp (validation_stats.plan). `-defaults` rows: a "
        "learning-rate-free method at its defaults.",
        "",
        power_table(verdicts),
        "",
        "**Generalization.** Held out from rule changes, chosen before their results existed "
        f"(benchmarks/scenarios, HELD_OUT): {', '.join(HELD_OUT)}.",
        "",
        generalization(verdicts, HELD_OUT),
        "",
        rule_coverage(verdicts),
        "",
    ]
    for v in verdicts:
        image = PLOTS / f"{v.scenario}.png"
        plot_scenario(v, image)
        parts += [
            f"## {v.scenario}",
            "",
            f"![{v.scenario}: test score per optimizer with 95 % CI]({image.relative_to(DOC.parent).as_posix()})",
            "",
            f"{v.what[0].upper()}{v.what[1:]}. Profile: {v.profile}. Rules fired: {', '.join(f'`{r}`' for r in v.fired)}. "
            f"Wall: {v.wall_s:.0f} s.{stopped_runs(points.get(v.scenario, []))}",
            "",
            detail_table(v),
            "",
        ]
    parts.append(commands_section(commands))
    write_keeping_hand_part(DOC, "\n".join(parts))
