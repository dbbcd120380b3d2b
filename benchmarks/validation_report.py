"""The parts of docs/VALIDATION.md added by issue 15: per-scenario plots, the power table,
the generalization check on the held-out scenarios and the list of unvalidated rules.

Each function takes validate_rules' verdicts (anything with the same attributes: this
module does not import validate_rules, which imports it).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advisor.knowledge.rules import load_rules
from advisor.tuning.stats import summarize


def _pp(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 100:.2f}"


def score(v: Any, x: float) -> str:
    """A score or a difference in the scenario's unit: accuracy in % (pp), a regression's
    negative MSE (of standardized targets) as it is."""
    if getattr(v, "task", "classification") == "regression":
        return "-" if x is None or math.isnan(x) else f"{x:.4f}"
    return _pp(x)


def tie_size(v: Any) -> int:
    """The optimizers tied with the best (a ``-defaults`` row repeats its optimizer: not counted)."""
    return len([n for n in v.tied if not n.endswith("-defaults")])


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
    """Per scenario: MDD, tie-set size, convergence and the planner's seeds / test size."""
    lines = [
        "| scenario | seeds | MDD at 80 % power (pp; a regression: MSE) | tie-set size | converged | seeds for 0.5 pp | test examples for 0.5 pp (have) |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        seeds = len(v.scores[v.best]["test"])
        conv = {None: "-", True: "yes", False: "NO"}[v.converged]
        p = v.plan
        need = "-" if not p else (str(p["seeds"]) if p["seeds"] else f"> {50}")
        test = "-" if not p else f"{p['test_examples']:,} ({p['test_size']:,})"
        lines.append(
            f"| {v.scenario} | {seeds} | {score(v, v.mdd)} | {tie_size(v)} | {conv} | {need} | {test} |"
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


def derived_validated(
    verdicts: Sequence[Any], rules_dirs: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Each enabled rule's ``validated`` list as the grids say it: the scenarios where it
    fires and advisor's top 3 holds the best or a tie with it (in the verdicts' order)."""
    return {
        r.id: [v.scenario for v in verdicts if r.id in v.fired and v.hit]
        for r in load_rules(tuple(rules_dirs))
        if r.enabled
    }


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
