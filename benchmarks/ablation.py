"""Where advisor's gain over plain Optuna comes from: each part switched off in turn (issue 14).

    python benchmarks/ablation.py                                  # fashion-mnist, 1m, seeds 0,1,2
    python benchmarks/ablation.py --dataset mnist-5k --budget 30s --seeds 0 --no-doc

Variants of ``advisor.tune(dataset, budget=B, seed=S)``, one part off in each:

- ``full``: advisor as shipped;
- ``no-schedule-search``: every schedule search space is ``constant`` (schedule-free
  AdamW keeps the warmup it needs);
- ``no-extra-dims``: weight decay, epsilon and beta2 are never tuned (the learning rate
  and momentum/beta1 still are);
- ``no-population``: every trial trains alone on ``torch.optim`` (the reference trainer),
  as a plain loop would: fewer trials in the budget;
- ``single-seed-selection``: one finalist, the search's best trial on its one seed,
  instead of the best of three re-run on fresh seeds;
- ``no-rules``: every optimizer of the registry is searched instead of the rules'
  candidates;
- ``plain-optuna``: not a switch but the reference, plain Optuna at the same budget
  (``benchmarks/tuning.py``'s user loop): its "gain" is advisor's whole gain over it.

The switches are the module constants and registry entries the parts read, set for the
variant's run and restored after it (a benchmark, not the product: nothing here is an
option of ``advisor tune``). Each recommendation is scored like ``benchmarks/tuning.py``'s
rows: trained on its 5 scoring seeds and tested on the held-out test set. The gain a part
carries is ``full`` minus the variant, per search seed; the table gives its mean and its
spread (min..max over seeds). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from doc_files import write_section
from machine import describe
from tuning import Row, run_method, score

import advisor
from advisor.knowledge import optimizers as registry
from advisor.tuning import space

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
RAW = ROOT / "docs" / "benchmarks" / "ablation.json"
VARIANTS = (
    "full",
    "no-schedule-search",
    "no-extra-dims",
    "no-population",
    "single-seed-selection",
    "no-rules",
    "plain-optuna",
)


@contextlib.contextmanager
def switched_off(variant: str) -> Iterator[dict[str, object]]:
    """Set the variant's switches; yield extra ``tune`` arguments; restore on exit."""
    saved_space = {n: getattr(space, n) for n in dir(space) if n.isupper() or n.startswith("_SC")}
    saved_registry = dict(registry._REGISTRY)
    extra: dict[str, object] = {}
    try:
        if variant == "no-schedule-search":
            for name in ("_SCHEDULES_SMALL", "_SCHEDULES", "_SCHEDULES_LARGE"):
                setattr(space, name, ("constant",))
        elif variant == "no-extra-dims":
            space.TRIALS_FOR_WD_EPS = space.TRIALS_FOR_BETA2 = 10**12
        elif variant == "no-population":
            for name, info in saved_registry.items():
                registry._REGISTRY[name] = dataclasses.replace(info, population=False)
        elif variant == "single-seed-selection":
            extra["finalists"] = 1
        elif variant == "no-rules":
            extra["optimizers"] = advisor.list_optimizers()
        elif variant not in ("full", "plain-optuna"):
            raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        yield extra
    finally:
        for name, value in saved_space.items():
            setattr(space, name, value)
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved_registry)


def run(variant: str, dataset: str, budget: str, seed: int) -> Row:
    if variant == "plain-optuna":
        return dataclasses.replace(run_method("optuna", dataset, budget, seed), method=variant)
    t0 = time.perf_counter()
    with switched_off(variant) as extra, tempfile.TemporaryDirectory() as out:
        result = advisor.tune(dataset, budget=budget, seed=seed, out=out, **extra)  # type: ignore[arg-type]
    rec = result.recommendation
    trials = int(result.trials.get("complete", 0)) + int(result.trials.get("pruned", 0))
    wall = round(time.perf_counter() - t0, 1)
    return Row(
        dataset, budget, variant, seed, wall, rec.optimizer, dict(rec.hyperparameters),
        rec.schedule, trials,
    )  # fmt: skip


def table(rows: list[Row]) -> str:
    """Per variant: test accuracy (mean of seeds), trials, and the gain ``full`` has over it."""
    by = {(r.method, r.search_seed): r for r in rows}
    seeds = sorted({r.search_seed for r in rows})
    lines = [
        "| variant (part off) | test % (mean over search seeds) | trials | gain of the part, pp "
        "(mean, min..max) | picks |",
        "|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        mine = [by[(v, s)] for s in seeds if (v, s) in by]
        if not mine:
            continue
        acc = statistics.mean(r.mean for r in mine) * 100
        trials = statistics.mean(r.trials for r in mine)
        gains = [
            (by[("full", s)].mean - by[(v, s)].mean) * 100
            for s in seeds
            if ("full", s) in by and (v, s) in by
        ]
        gain = (
            "-"
            if v == "full" or not gains
            else f"{statistics.mean(gains):+.2f} ({min(gains):+.2f}..{max(gains):+.2f})"
        )
        picks = ", ".join(sorted({r.optimizer for r in mine}))
        lines.append(f"| {v} | {acc:.2f} | {trials:.0f} | {gain} | {picks} |")
    return "\n".join(lines)


def save(path: Path, rows: list[Row], commands: list[str]) -> None:
    """The scored rows and the commands that made them, as ``--from-json`` reads them."""
    saved = {"commands": commands, "rows": [dataclasses.asdict(r) for r in rows]}
    path.write_text(json.dumps(saved, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--budget", default="1m")
    parser.add_argument("--seeds", default="0,1,2", help="search seeds")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, default=RAW, help="save the scored rows here")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="write the doc from saved rows (several files: together, e.g. two processes' halves)",
    )
    parser.add_argument("--conditions", default="", help="how the runs shared the machine")
    args = parser.parse_args(argv)
    command = "python benchmarks/ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        rows, commands = [], []
        for path in args.from_json:
            saved = json.loads(path.read_text())
            saved = saved if isinstance(saved, dict) else {"commands": [], "rows": saved}
            rows += [Row(**r) for r in saved["rows"]]
            commands += saved["commands"]
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
        variants = args.variants.split(",")
        rows = [run(v, args.dataset, args.budget, s) for s in seeds for v in variants]
        score(rows)
        commands = [command.strip()]
        save(args.json, rows, commands)
    text = table(rows)
    print(text)
    if args.no_doc:
        return
    if args.from_json:  # the figures the doc shows become the saved ones
        save(RAW, rows, commands)
    dataset, budget = rows[0].dataset, rows[0].budget
    seeds_run = ",".join(str(s) for s in sorted({r.search_seed for r in rows}))
    conditions = f" ({args.conditions})" if args.conditions else ""
    write_section(
        DOC,
        "ablation",
        "benchmarks/ablation.py",
        "## Ablation: where advisor's gain comes from\n\n"
        f"{', '.join(f'`{c}`' for c in commands)} on {describe()}{conditions}: {dataset}, "
        f"budget {budget}, search seeds {seeds_run}; each recommendation tested on 5 scoring "
        "seeds. The gain of a "
        "part is the full advisor's test accuracy minus the variant without it (positive: "
        "the part helps); the `plain-optuna` row's is advisor's whole gain over plain Optuna "
        "at the same budget, for comparison with the parts'.\n\n" + text,
    )


if __name__ == "__main__":
    main()
