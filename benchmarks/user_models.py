"""advisor tune on models other than the seed MLP: trials per minute, and the CNN against plain Optuna.

    python benchmarks/user_models.py                       # 60 s each on mnist-5k, seed 0
    python benchmarks/user_models.py --budget 2m --seeds 0,1 --no-doc

Each row is ``advisor.tune("mnist-5k", model=..., budget=B, seed=S)`` in this process:
the seed MLP (the hand-written population), the small CNN of ``examples/small_cnn.py`` as
advisor picks its trainer (one at a time on a CPU) and forced into the generic population
(``population=8``), and the small transformer encoder of ``benchmarks/population_speed.py``
(the generic population). Figures: finished trials (complete + pruned) per minute of wall
time, the population size, the wall time against the budget, and the recommendation's
test accuracy over the run's own final seeds. For the CNN, plain Optuna (the user's loop of
``benchmarks/tuning.py``, the CNN instead of the MLP) gets the same budget, and both
recommendations are trained on the same 3 scoring seeds and tested. Today's figures before
issue 13: the CNN finished 8 trials (3 complete) in 75 s of a 60 s budget. Nothing asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from budget import bound
from doc_files import write_section
from machine import describe
from population_speed import SmallEncoder
from tuning import _optuna_config, plain_optuna

import advisor
from advisor.core.units import parse_duration
from advisor.train import MemberConfig, train_members
from examples.small_cnn import small_cnn

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
SCORING_SEEDS = (20_000, 20_001, 20_002)
#: name -> (model factory or None for the seed MLP, population or None for advisor's pick)
RUNS: dict[str, tuple[Callable[[], Any] | None, int | None]] = {
    "seed MLP": (None, None),
    "small CNN": (small_cnn, None),
    "small CNN, population=8": (small_cnn, 8),
    "transformer encoder": (SmallEncoder, None),
}


def tune_row(name: str, budget: str, seed: int) -> dict[str, Any]:
    factory, population = RUNS[name]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = advisor.tune(
            "mnist-5k", model=factory, population=population, budget=budget, seed=seed, out=out
        )
    wall = time.perf_counter() - t0
    trials = int(result.trials.get("complete", 0)) + int(result.trials.get("pruned", 0))
    rec = result.recommendation
    return {
        "model": name,
        "seed": seed,
        "wall_s": wall,
        "trials": trials,
        "complete": int(result.trials.get("complete", 0)),
        "per_min": trials / wall * 60,
        "population": result.settings.population,
        "test": rec.test_accuracy.mean,
        "optimizer": rec.optimizer,
        "hyperparameters": dict(rec.hyperparameters),
        "schedule": rec.schedule,
    }


def scored(configs: list[tuple[str, dict[str, float], str]]) -> list[float]:
    """Mean test accuracy of each (optimizer, hyperparameters, schedule) for the CNN."""
    data = advisor.load_dataset("mnist-5k")
    tests: list[list[float]] = [[] for _ in configs]
    for s in SCORING_SEEDS:
        members = [MemberConfig(o, hp, schedule=sc, init_seed=s) for o, hp, sc in configs]
        results = train_members(
            members, data, epochs=5, data_seed=s, evaluate_test=True, model_factory=small_cnn
        )
        for i, r in enumerate(results):
            tests[i].append(r.test_accuracy if r.test_accuracy is not None else 0.1)
    return [statistics.mean(t) for t in tests]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="60s")
    parser.add_argument("--seeds", default="0", help="search seeds")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    budget_s = parse_duration(args.budget)
    rows = [tune_row(name, args.budget, s) for s in seeds for name in RUNS]
    lines = [
        "| model | search seed | population | trials (complete) | trials per minute | wall / "
        "budget | test % (its final seeds) | recommendation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        line = advisor.torch_line(r["optimizer"], r["hyperparameters"]).splitlines()
        line = next(x for x in line if "(" in x and not x.startswith("#"))  # the constructor
        lines.append(
            f"| {r['model']} | {r['seed']} | {r['population']} | {r['trials']} ({r['complete']}) "
            f"| {r['per_min']:.0f} | {r['wall_s']:.0f} s / {args.budget} | "
            f"{r['test'] * 100:.2f} | `{line}`, {r['schedule']} |"
        )
    # the CNN: advisor (as it picks its trainer) against plain Optuna at the same budget
    data = advisor.load_dataset("mnist-5k")
    cnn_rows = [r for r in rows if r["model"] == "small CNN"]
    versus = [
        "| search seed | advisor: test % (3 scoring seeds) | plain Optuna: test % | Optuna trials |",
        "|---|---|---|---|",
    ]
    for r in cnn_rows:
        params, n = plain_optuna(data, budget_s, r["seed"], model=small_cnn)
        name, hp = _optuna_config(params)
        ours, theirs = scored(
            [(r["optimizer"], r["hyperparameters"], r["schedule"]), (name, hp, "constant")]
        )
        versus.append(f"| {r['seed']} | {ours * 100:.2f} | {theirs * 100:.2f} | {n} |")
    over = [r["model"] for r in rows if r["wall_s"] > bound(budget_s)]
    note = (
        f"\n\nOver the bound B + max(5 s, 5 %): {', '.join(over)} (see its report's notes for why)."
        if over
        else ""
    )
    text = "\n".join(lines) + note + "\n\nThe small CNN against plain Optuna, same budget:\n\n"
    text += "\n".join(versus)
    print(text)
    if args.no_doc:
        return
    command = "python benchmarks/user_models.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_section(
        DOC,
        "user-models",
        "benchmarks/user_models.py",
        "## advisor tune on your model: trials per minute, and the CNN against plain Optuna\n\n"
        f"`{command.strip()}` on {describe()}. Before issue 13 the small CNN finished 8 trials "
        "(3 complete) in 75 s of a 60 s budget, one trial at a time.\n\n" + text,
    )


if __name__ == "__main__":
    main()
