"""advisor tune against what users would otherwise do, at equal wall-clock budgets (issue 7).

    python benchmarks/tuning.py                      # everything; writes docs/BENCHMARKS.md
    python benchmarks/tuning.py --datasets mnist-5k --budgets 1m
    python benchmarks/tuning.py --from-json docs/benchmarks/tuning.json   # redraw the doc only

Three ways to pick an optimizer for the seed MLP (784-128-128-10, 5 epochs, batch 128):

- ``default``: ``torch.optim.Adam(lr=1e-3)``, no search;
- ``optuna``: plain Optuna as a user writes it, in the style of Optuna's own PyTorch
  example (``pytorch/pytorch_simple.py`` in optuna-examples): TPE over the optimizer
  (Adam, RMSprop, SGD), the learning rate (log 1e-5..1e-1) and SGD's momentum; one trial is one
  ``DataLoader`` training loop; ``MedianPruner`` on the per-epoch validation accuracy;
  ``study.optimize(timeout=budget)``; the winner is the trial with the best single-seed
  validation accuracy;
- ``advisor``: ``advisor.tune(dataset, budget=budget)`` (search and its own finalist stage
  both inside the budget).

Each recommendation is then trained on the same 5 scoring seeds (initialisation and
minibatch order; seeds neither method saw while searching) and scored on the held-out test
set. Wall times are measured and printed; nothing is asserted (the machine is shared).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
import torch.nn.functional as F
from doc_files import commands_line, commands_section, write_keeping_hand_part
from machine import describe
from torch.utils.data import DataLoader, TensorDataset

import advisor
from advisor.core.units import parse_duration
from advisor.train import MemberConfig, train_members

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
README = ROOT / "README.md"
RAW = ROOT / "docs" / "benchmarks" / "tuning.json"
PLOT = ROOT / "docs" / "benchmarks" / "tuning.png"

EPOCHS = 5
BATCH_SIZE = 128
SCORING_SEEDS = (20_000, 20_001, 20_002, 20_003, 20_004)
BUDGETS = ("1m", "2m", "5m")
DATASETS = ("mnist-5k", "fashion-mnist")
METHODS = ("default", "optuna", "advisor")

#: plain Optuna's optimizer names -> advisor registry names (for scoring)
OPTUNA_OPTIMIZERS = {"Adam": "adam", "RMSprop": "rmsprop", "SGD": "momentum"}


@dataclass
class Row:
    dataset: str
    budget: str
    method: str
    search_seed: int
    wall_s: float
    optimizer: str
    hyperparameters: dict[str, float]
    schedule: str
    trials: int
    test: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.mean(self.test)

    @property
    def std(self) -> float:
        return statistics.stdev(self.test) if len(self.test) > 1 else 0.0


# --- plain Optuna, as in Optuna's PyTorch example ---------------------------------------


def plain_optuna(
    data: advisor.Dataset,
    budget_s: float,
    seed: int,
    model: Callable[[], torch.nn.Module] | None = None,
) -> tuple[dict[str, Any], int]:
    """Return the best trial's params and the number of trials run (``model``: a factory
    of the network to train instead of the seed MLP)."""
    train_loader = DataLoader(
        TensorDataset(data.x_train, data.y_train), batch_size=BATCH_SIZE, shuffle=True
    )
    valid_loader = DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=1000)

    def define_model() -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Linear(784, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, 10),
        )

    def objective(trial: optuna.Trial) -> float:
        net = (model or define_model)()
        optimizer_name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        if optimizer_name == "SGD":
            momentum = trial.suggest_float("momentum", 0.0, 0.99)
            optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        else:
            optimizer = getattr(torch.optim, optimizer_name)(net.parameters(), lr=lr)
        accuracy = 0.0
        for epoch in range(EPOCHS):
            net.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(net(x), y)
                loss.backward()
                optimizer.step()
            net.eval()
            correct = 0
            with torch.no_grad():
                for x, y in valid_loader:
                    correct += int((net(x).argmax(dim=1) == y).sum())
            accuracy = correct / len(valid_loader.dataset)  # type: ignore[arg-type]
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.exceptions.TrialPruned()
        return accuracy

    torch.manual_seed(seed)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(objective, timeout=budget_s)
    return dict(study.best_trial.params), len(study.trials)


def _optuna_config(params: dict[str, Any]) -> tuple[str, dict[str, float]]:
    name = OPTUNA_OPTIMIZERS[params["optimizer"]]
    hps = {"lr": float(params["lr"])}
    if name == "momentum":
        hps["momentum"] = float(params["momentum"])
    return name, hps


# --- the three methods -----------------------------------------------------------------


def run_method(method: str, dataset: str, budget: str, seed: int) -> Row:
    budget_s = parse_duration(budget) if method != "default" else 0.0
    t0 = time.perf_counter()
    if method == "default":
        name, hps, schedule, trials = "adam", {"lr": 1e-3}, "constant", 0
    elif method == "optuna":
        data = advisor.load_dataset(dataset)
        params, trials = plain_optuna(data, budget_s, seed)
        name, hps = _optuna_config(params)
        schedule = "constant"
    else:
        with tempfile.TemporaryDirectory() as out:
            result = advisor.tune(dataset, budget=budget, seed=seed, out=out)
        rec = result.recommendation
        name, hps, schedule = rec.optimizer, dict(rec.hyperparameters), rec.schedule
        trials = int(result.trials.get("complete", 0)) + int(result.trials.get("pruned", 0))
    wall = time.perf_counter() - t0
    return Row(dataset, budget, method, seed, round(wall, 1), name, hps, schedule, trials)


def score(rows: list[Row]) -> None:
    """Train every row's recommendation on the scoring seeds; fill ``row.test``."""
    by_dataset: dict[str, list[Row]] = {}
    for r in rows:
        by_dataset.setdefault(r.dataset, []).append(r)
    for dataset, group in by_dataset.items():
        data = advisor.load_dataset(dataset)
        for s in SCORING_SEEDS:
            configs = [
                MemberConfig(r.optimizer, r.hyperparameters, schedule=r.schedule, init_seed=s)
                for r in group
            ]
            results = train_members(
                configs, data, epochs=EPOCHS, batch_size=BATCH_SIZE, data_seed=s, evaluate_test=True
            )
            for r, res in zip(group, results):
                # a diverged run scores as a guess, as in the rule validation
                r.test.append(
                    res.test_accuracy if res.test_accuracy is not None else 1.0 / data.n_classes
                )


# --- report ------------------------------------------------------------------------------


def torch_line(r: Row) -> str:
    line = advisor.torch_line(r.optimizer, r.hyperparameters)
    return line if r.schedule == "constant" else f"{line}, {r.schedule}"


def _order(r: Row) -> tuple[str, float, int, int]:
    return (r.dataset, _seconds(r.budget), METHODS.index(r.method), r.search_seed)


def table(rows: list[Row]) -> str:
    """Every run: one row per dataset, budget, method and search seed."""
    head = "| dataset | budget | method | search seed | test accuracy % (5 seeds) | vs default Adam | trials | wall | recommendation |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    base = {r.dataset: r.mean for r in rows if r.method == "default"}
    for r in sorted(rows, key=_order):
        gain = (r.mean - base[r.dataset]) * 100 if r.dataset in base else float("nan")
        budget, seed = ("-", "-") if r.method == "default" else (r.budget, str(r.search_seed))
        lines.append(
            f"| {r.dataset} | {budget} | {r.method} | {seed} | {r.mean * 100:.2f} ± {r.std * 100:.2f} | "
            f"{gain:+.2f} pp | {r.trials} | {r.wall_s:.0f} s | `{torch_line(r)}` |"
        )
    return "\n".join(lines)


def cells(rows: list[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """Rows grouped by (dataset, budget, method): one entry per search seed."""
    out: dict[tuple[str, str, str], list[Row]] = {}
    for r in sorted(rows, key=_order):
        out.setdefault(
            (r.dataset, "-" if r.method == "default" else r.budget, r.method), []
        ).append(r)
    return out


def summary(rows: list[Row]) -> str:
    """Gain over the default Adam per dataset and budget, averaged over the search seeds."""
    grouped = cells(rows)
    budgets = sorted({b for (_, b, m) in grouped if m != "default"}, key=_seconds)
    datasets = sorted({d for (d, _, _) in grouped})
    head = (
        "| dataset | default Adam test % | "
        + " | ".join(f"optuna {b} | advisor {b}" for b in budgets)
        + " |"
    )
    lines = [head, "|---|---|" + "---|---|" * len(budgets)]
    for d in datasets:
        base = grouped.get((d, "-", "default"))
        if not base:
            continue
        b0 = base[0].mean
        cols = [f"{b0 * 100:.2f}"]
        for b in budgets:
            for m in ("optuna", "advisor"):
                runs = grouped.get((d, b, m), [])
                gains = [(r.mean - b0) * 100 for r in runs]
                cols.append(f"{statistics.mean(gains):+.2f} pp" if gains else "-")
        lines.append(f"| {d} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def _seconds(budget: str) -> float:
    return 0.0 if budget == "-" else parse_duration(budget)


def time_to_quality(rows: list[Row]) -> str:
    """Per dataset and method: test accuracy at each budget (mean over the search seeds,
    their range) and its distance to the method's result at the largest budget."""
    grouped = cells(rows)
    budgets = sorted({b for (_, b, m) in grouped if m != "default"}, key=_seconds)
    if not budgets:
        return ""
    last = budgets[-1]
    head = "| dataset | method | " + " | ".join(budgets) + f" | 30s to {last} |"
    lines = [head, "|---|---|" + "---|" * (len(budgets) + 1)]
    for d in sorted({d for (d, _, _) in grouped}):
        for m in ("optuna", "advisor"):
            means = {
                b: [r.mean * 100 for r in grouped.get((d, b, m), [])]
                for b in budgets
                if grouped.get((d, b, m))
            }
            if not means:
                continue
            cols = []
            for b in budgets:
                v = means.get(b)
                cols.append(f"{statistics.mean(v):.2f} ({min(v):.2f}..{max(v):.2f})" if v else "-")
            gap = "-"
            if "30s" in means and last in means:
                gap = f"{statistics.mean(means['30s']) - statistics.mean(means[last]):+.2f} pp"
            lines.append(f"| {d} | {m} | " + " | ".join(cols) + f" | {gap} |")
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r.dataset for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        group = [r for r in rows if r.dataset == dataset]
        for r in group:
            if r.method == "default":
                ax.axhline(r.mean * 100, color="grey", ls="--", label="default Adam(1e-3)")
                ax.axhspan((r.mean - r.std) * 100, (r.mean + r.std) * 100, color="grey", alpha=0.15)
        for method, marker in (("optuna", "s"), ("advisor", "o")):
            runs = sorted((r for r in group if r.method == method), key=_order)
            if not runs:
                continue
            xs = sorted({_seconds(r.budget) / 60 for r in runs})
            means = [
                statistics.mean(r.mean * 100 for r in runs if _seconds(r.budget) / 60 == x)
                for x in xs
            ]
            (line,) = ax.plot(xs, means, marker=marker, label=f"{method} (mean over search seeds)")
            for r in runs:  # each search seed: mean ± sd over the 5 scoring seeds
                ax.errorbar(
                    _seconds(r.budget) / 60,
                    r.mean * 100,
                    yerr=r.std * 100,
                    color=line.get_color(),
                    alpha=0.35,
                    capsize=2,
                    fmt=".",
                )
        ax.set_title(dataset)
        ax.set_xlabel("wall-clock budget (log scale)")
        ax.set_ylabel("test accuracy % (mean ± sd, 5 seeds)")
        ticks = sorted({_seconds(r.budget) / 60 for r in group if r.method != "default"})
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t * 60:.0f}s" if t < 1 else f"{t:g}m" for t in ticks])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_doc(rows: list[Row], machine: str, commands: list[str], conditions: str = "") -> None:
    """Write the generated part of the doc (the part written by hand is kept) and the plot."""
    plot(rows, PLOT)
    generated = DOC_TEMPLATE.format(
        machine=machine + (f"; {conditions}" if conditions else ""),
        quality=time_to_quality(rows),
        command=commands_line(commands),
        runs=commands_section(commands),
        table=table(rows),
        summary=summary(rows),
        plot=PLOT.relative_to(DOC.parent).as_posix(),
        raw=RAW.relative_to(DOC.parent).as_posix(),
    )
    write_keeping_hand_part(DOC, generated)
    _readme_summary(rows)


def _readme_summary(rows: list[Row]) -> None:
    """The gain table, also in README.md between its ``benchmarks-summary`` markers."""
    start = "<!-- benchmarks-summary: written by benchmarks/tuning.py -->"
    end = "<!-- /benchmarks-summary -->"
    text = README.read_text()
    if start not in text or end not in text:
        return
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    intro = "Gain in test accuracy over the default Adam (mean over the search seeds):"
    README.write_text(f"{head}{start}\n{intro}\n\n{summary(rows)}\n{end}{tail}")


DOC_TEMPLATE = """# Benchmarks: advisor tune against the default Adam and plain Optuna

Generated by {command} (raw figures: [`{raw}`]({raw});
redraw without re-running: `python benchmarks/tuning.py --from-json docs/{raw}`).

**Machine:** {machine}.

**Task:** the seed MLP (784-128-128-10, ReLU, softmax cross-entropy), 5 epochs, batch 128.
**Budgets** are wall-clock time for the whole selection: for `optuna` the
`study.optimize(timeout=...)` loop (a running trial finishes after the timeout, so its wall
can overshoot by one trial); for `advisor` the whole `advisor.tune` call, search and its
own 5-seed finalist stage included.

**Methods**
- `default`: `torch.optim.Adam(lr=1e-3)`, nothing tuned.
- `optuna`: plain Optuna as a user writes it, after Optuna's PyTorch example: TPE over
  the optimizer (Adam, RMSprop, SGD), the learning rate (log 1e-5..1e-1) and SGD's
  momentum; a `DataLoader` training loop per trial; `MedianPruner` on per-epoch
  validation accuracy; winner = best single-seed validation accuracy.
- `advisor`: `advisor.tune(dataset, budget=...)` with its defaults.

**Scoring:** every recommendation is retrained on the same 5 seeds (weights and
minibatch order; seeds 20000-20004, which neither search used) and evaluated once on the
held-out test set (mnist-5k: 1,000 digits; fashion-mnist: 10,000 images). `± ` is the
standard deviation over those 5 seeds: training noise. The noise of the search itself
shows between search seeds (`--seeds`).

Gain in test accuracy over the default Adam, mean over the search seeds:

{summary}

**Time to quality:** test accuracy of the recommendation against the budget, mean over the
search seeds (min..max), and how far each budget's mean is from the method's own 5-minute
result. Issue 14's target: advisor at 30 s within 0.3 pp of its 5-minute result.

{quality}

Every run:

{table}

![test accuracy against budget]({plot})

{runs}
"""


def save(path: Path, rows: list[Row], machine: str, conditions: str, commands: list[str]) -> None:
    """The figures, as ``--from-json`` reads them back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {"machine": machine, "conditions": conditions, "commands": commands}
    path.write_text(json.dumps({**saved, "rows": [asdict(r) for r in rows]}, indent=2))


def _key(r: Row) -> tuple[str, str, str, int]:
    return (r.dataset, r.budget, r.method, r.search_seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--budgets", default=",".join(BUDGETS))
    parser.add_argument("--seeds", default="0", help="seeds of the searches, comma-separated")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="redraw from saved figures (several files: their rows together)",
    )
    parser.add_argument(
        "--conditions",
        default="",
        help="how the runs shared the machine, for the doc (e.g. one thread each, side by side)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RAW,
        help=f"save the figures here (default {RAW.relative_to(ROOT)})",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/BENCHMARKS.md")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the saved rows (--json) of the cells not re-run now",
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.from_json:
        rows, commands, machine, conditions = [], [], "", ""
        for path in args.from_json:
            saved = json.loads(path.read_text())
            rows += [Row(**r) for r in saved["rows"]]
            commands += [c for c in saved["commands"] if c not in commands]
            machine = machine or saved["machine"]
            conditions = conditions or saved.get("conditions", "")
        conditions = args.conditions or conditions
        if args.from_json != [args.json]:  # the figures the doc shows become the saved ones
            save(args.json, rows, machine, conditions, commands)
    else:
        machine, conditions = describe(), args.conditions
        given = sys.argv[1:] if argv is None else argv
        commands = [" ".join(["python benchmarks/tuning.py", *given])]
        rows = []
        seeds = [int(x) for x in args.seeds.split(",")]
        for dataset in args.datasets.split(","):
            rows.append(run_method("default", dataset, "-", 0))
            for budget, seed, method in itertools.product(
                args.budgets.split(","), seeds, ("optuna", "advisor")
            ):
                row = run_method(method, dataset, budget, seed)
                print(
                    f"{dataset} {budget} seed {seed} {method}: {row.wall_s:.0f} s, {torch_line(row)}",
                    flush=True,
                )
                rows.append(row)
        score(rows)
        if args.merge and args.json.exists():
            saved = json.loads(args.json.read_text())
            commands = [*saved["commands"], *commands]
            fresh = {_key(r) for r in rows}
            rows = [r for r in (Row(**d) for d in saved["rows"]) if _key(r) not in fresh] + rows
        save(args.json, rows, machine, conditions, commands)
    print(table(rows))
    print(time_to_quality(rows))
    if not args.no_doc:
        write_doc(rows, machine, commands, conditions)
        print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
