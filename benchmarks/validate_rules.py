"""Check advisor's advice against the truth, measured by grid search (issue 7).

    python benchmarks/validate_rules.py                       # every scenario; writes docs/VALIDATION.md
    python benchmarks/validate_rules.py --only tiny-data-mlp --no-doc
    python benchmarks/validate_rules.py --from-json docs/benchmarks/validation.json   # re-judge, no training
    python benchmarks/validate_rules.py --optimizers muon,lion --merge   # add optimizers to the saved grids
    python benchmarks/validate_rules.py --smoke --threads 1 --only logistic-l2-digits --no-doc --json /tmp/smoke.json
    # issue 15's full run (tens of CPU hours; a scenario's grid is saved chunk by chunk in
    # docs/benchmarks/validation-progress/ and resumes when run again; --merge keeps the
    # other scenarios, so it can run in several sittings with different --only lists):
    python benchmarks/validate_rules.py --merge --prune 2 --threads 2 --only noisy-digits,logistic-l2-digits

For each scenario of ``scenarios/`` (a kind of model users bring), the profile is
measured by ``advisor.profile_model`` and given to ``advisor.recommend``. The truth comes
from a grid over every registered optimizer x learning rate (x momentum for SGD with
momentum and Nesterov; a learning-rate-free method at its defaults plus its one knob,
Prodigy's ``d_coef``, and its defaults again as a row of their own), each point trained on
the scenario's seeds (3 unless it says; weights and minibatch order; the same seeds for
every point, so comparisons are paired). Validation picks each optimizer's best grid
point (mean over the seeds); its test accuracy is the optimizer's score (picking and judging
on one set would favour optimizers with more grid points). Two questions:

1. Is the measured best optimizer, or one statistically tied with it (paired t-test over
   the seeds, p >= 0.05), among advisor's top 3?
2. Does each top-3 candidate's learning-rate range contain that optimizer's best grid
   learning rate, or one tied with it (same paired test)?

Under a tight budget (``lr_draws``) the question is what a few trials find, not what a full
grid finds: an optimizer's score is the expected test accuracy of the best (by validation)
of ``lr_draws`` learning rates drawn log-uniformly from its recommended range (other
hyperparameters at their defaults).

This script is the command line and the saved grids' file; the parts: ``validation_grid``
(the grid, trained chunk by chunk and resumable via ``validation_checkpoint``),
``validation_judge`` (scores, tie set, verdict), ``validation_stats`` (power, tie sets,
convergence), ``validation_report`` (docs/VALIDATION.md, its plots, the rules' ``validated``
lists).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any

import validation_checkpoint
import validation_grid
import validation_report
from machine import describe
from scenarios import SCENARIOS, Scenario
from validation_grid import Point, run_grid, scenario_data
from validation_judge import Verdict, judge, measure_profile, remember_test_size

import advisor

ROOT = validation_report.ROOT
RAW = ROOT / "docs" / "benchmarks" / "validation.json"


def training_key(s: Scenario) -> tuple[Any, ...]:
    """Scenarios with equal keys train the same grid (they differ in what the user says)."""
    return (
        s.data,
        s.model,
        s.epochs,
        s.batch_size,
        s.extra_lrs,
        s.seeds,
        s.task,
        s.full_batch_epochs,
        s.population,
    )


def validate(
    s: Scenario,
    progress: bool,
    optimizers: list[str] | None = None,
    kept: list[Point] | None = None,
    trained: dict[tuple[Any, ...], list[Point]] | None = None,
    wall_before: float = 0.0,
) -> tuple[Verdict, list[Point]]:
    """Measure the profile, train the grid (``optimizers`` only, beside the ``kept`` points
    of the others), judge. ``trained`` caches grids by :func:`training_key` within a run."""
    t0 = time.perf_counter()
    data = scenario_data(s)
    remember_test_size(s, data)
    profile = measure_profile(s, data)
    cache = {} if trained is None else trained
    key = training_key(s)
    earlier = 0.0  # seconds a resumed grid took in the processes before this one
    if key not in cache:
        cache[key], earlier = run_grid(s, data, progress, optimizers)
    points = [*(kept or []), *cache[key]]
    return judge(s, points, profile, wall_before + earlier + time.perf_counter() - t0), points


def unpaired(s: Scenario, kept: list[Point]) -> str | None:
    """Why new points cannot join the ``kept`` points of the other optimizers (trained on
    other seeds or for other epochs than the scenario asks now: no paired comparison), or
    None. Saved grids without curves (before issue 15) are checked for seeds only."""
    seeds = len(validation_grid.seeds_for(s))
    epochs = validation_grid.epochs_for(s)
    scored = [p for p in kept if not p.pruned]
    had = sorted({len(p.val) for p in scored})
    if had and had != [seeds]:
        return f"{'/'.join(map(str, had))} seed(s), the scenario asks {seeds}"
    longest = max(
        (
            len(c)
            for p in scored
            if not advisor.get_optimizer_info(p.optimizer).full_batch
            for c in p.curves
        ),
        default=0,
    )
    if longest and longest != epochs:
        return f"{longest} epochs, the scenario asks {epochs}"
    return None


def combine(files: list[dict[str, Any]]) -> dict[str, Any]:
    """Saved grids of several runs as one (runs in parallel write one file each): a
    scenario in a later file replaces the earlier files'; commands and machines are kept."""
    out: dict[str, Any] = {"machine": "", "commands": [], "verdicts": [], "points": {}}
    machines: list[str] = []
    for saved in files:
        names = {v["scenario"] for v in saved["verdicts"]}
        out["verdicts"] = [v for v in out["verdicts"] if v["scenario"] not in names]
        out["verdicts"] += saved["verdicts"]
        out["points"].update({k: saved["points"][k] for k in names})
        out["commands"] += [c for c in saved["commands"] if c not in out["commands"]]
        # a combined file already lists its machines, "; "-separated: each is kept once
        machines += saved["machine"].split("; ")
    out["machine"] = "; ".join(dict.fromkeys(m for m in machines if m))
    order = [s.name for s in SCENARIOS]
    out["verdicts"].sort(key=lambda v: order.index(v["scenario"]))
    return out


def rejudge(saved: dict[str, Any], reprofile: Collection[str] = ()) -> list[Verdict]:
    """Judge saved grids again with the current rules (after a rule changed): no training.
    The scenarios in ``reprofile`` get their profile measured again (after the probe
    changed: the grid, the truth, does not depend on it); the others keep the saved one."""
    verdicts = []
    by_name = {s.name: s for s in SCENARIOS}
    for old in saved["verdicts"]:
        s = by_name[old["scenario"]]
        points = [Point(**p) for p in saved["points"][s.name]]
        if s.name in reprofile:
            profile = measure_profile(s, scenario_data(s))
        else:
            profile = advisor.Profile.from_dict(old["profile_fields"])
        verdicts.append(judge(s, points, profile, old["wall_s"]))
    return verdicts


def save(
    path: Path,
    machine: str,
    commands: list[str],
    verdicts: list[Verdict],
    points: dict[str, list[Point]],
) -> None:
    order = [s.name for s in SCENARIOS]
    verdicts = sorted(verdicts, key=lambda v: order.index(v.scenario))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "machine": machine,
                "commands": commands,
                "verdicts": [asdict(v) for v in verdicts],
                "points": {  # in scenario order, as the verdicts: stable diffs
                    k: [p.to_dict() for p in points[k]] for k in sorted(points, key=order.index)
                },
            },
            indent=1,
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [s.name for s in SCENARIOS]
    parser.add_argument("--only", default=None, help=f"comma-separated, from: {', '.join(names)}")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        metavar="FILE",
        help="judge saved grids again with the current rules (no training) and redraw; "
        "several files are combined (a scenario in a later file replaces an earlier one's)",
    )
    parser.add_argument(
        "--reprofile",
        default="",
        metavar="SCENARIOS",
        help="with --from-json: measure these scenarios' profiles again (comma-separated; "
        "after the probe changed) instead of using the saved ones; the grids stay",
    )
    parser.add_argument(
        "--write-validated",
        action="store_true",
        help="with --from-json: rewrite every rule's `validated` list in rules/*.toml from "
        "these grids (the scenarios where it fires and the top 3 holds the best or a tie)",
    )
    parser.add_argument("--json", type=Path, default=RAW, help="save the figures here")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the saved (--json) scenarios not run now (and, with --optimizers, the "
        "saved points of the other optimizers)",
    )
    parser.add_argument(
        "--optimizers",
        default=None,
        help="comma-separated: train only these optimizers' grid points (with --merge, added "
        "to the saved grids: the same seeds, so comparisons stay paired)",
    )
    parser.add_argument(
        "--progress",
        type=Path,
        default=None,
        metavar="DIR",
        help="save and resume each scenario's grid in progress here [default: next to --json, "
        "<its name>-progress/]; parallel runs can share one",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/VALIDATION.md")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny grid (2 lrs, 2 seeds, 1 epoch, 1,024 training rows): the pipeline end to end",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument(
        "--prune",
        type=int,
        default=None,
        metavar="K",
        help="after the first seed, train only each optimizer's K best grid points (by "
        "validation; per momentum) on the other seeds: ~2x less CPU at 5 seeds with K=3 "
        "(the others are saved with their first seed, marked pruned, not scored)",
    )
    args = parser.parse_args(argv)
    if args.prune is not None:
        validation_grid.PRUNE_KEEP = args.prune
    if args.smoke:
        validation_grid.smoke()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    command = " ".join(
        ["python benchmarks/validate_rules.py", *(sys.argv[1:] if argv is None else argv)]
    )
    reprofile = [n for n in args.reprofile.split(",") if n]
    if (reprofile or args.write_validated) and not args.from_json:
        parser.error("--reprofile and --write-validated go with --from-json")
    if args.from_json:
        saved = combine([json.loads(f.read_text()) for f in args.from_json])
        missing = sorted(set(reprofile) - {v["scenario"] for v in saved["verdicts"]})
        if missing:
            parser.error(f"--reprofile: no saved grid for {', '.join(missing)}")
        verdicts = rejudge(saved, reprofile)
        if args.write_validated:
            derived = validation_report.derived_validated(verdicts)
            changed = validation_report.write_validated(derived, ROOT / "rules")
            print(f"validated lists rewritten: {', '.join(changed) or 'none changed'}")
        points = {k: [Point(**p) for p in ps] for k, ps in saved["points"].items()}
        machine, commands = saved["machine"], saved["commands"]
        save(args.json, machine, commands, verdicts, points)
    else:
        chosen = names if args.only is None else args.only.split(",")
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            parser.error(
                f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(names)}"
            )
        machine, commands = describe(), [command]
        progress_dir = args.progress or args.json.parent / f"{args.json.stem}-progress"
        validation_grid.PROGRESS_DIR = progress_dir
        only = None if args.optimizers is None else args.optimizers.split(",")
        for name in only or []:
            advisor.get_optimizer_info(name)  # unknown name: a clear error now
        verdicts, points = [], {}
        saved_points: dict[str, list[Point]] = {}
        saved_wall: dict[str, float] = {}
        if args.merge and args.json.exists():
            saved = json.loads(args.json.read_text())
            commands = [*saved["commands"], command]
            verdicts = [Verdict(**v) for v in saved["verdicts"] if v["scenario"] not in chosen]
            saved_points = {k: [Point(**p) for p in ps] for k, ps in saved["points"].items()}
            saved_wall = {v["scenario"]: float(v["wall_s"]) for v in saved["verdicts"]}
            points = {k: ps for k, ps in saved_points.items() if k not in chosen}
        kept_by = {
            s.name: [p for p in saved_points.get(s.name, []) if only and p.optimizer not in only]
            for s in SCENARIOS
            if s.name in chosen
        }
        for s in SCENARIOS:  # before any training: a mismatch found late would waste hours
            why = unpaired(s, kept_by[s.name]) if s.name in kept_by else None
            if why:
                parser.error(
                    f"--optimizers --merge: the saved grid of {s.name} was trained with {why}; "
                    "new points would not pair with it. Run the whole scenario again "
                    "(without --optimizers)."
                )
        trained: dict[tuple[Any, ...], list[Point]] = {}
        for s in SCENARIOS:
            if s.name not in chosen:
                continue
            kept = kept_by[s.name]
            try:
                v, pts = validate(
                    s, True, only, kept, trained, saved_wall.get(s.name, 0.0) if kept else 0.0
                )
            except FileNotFoundError as e:
                print(f"{s.name}: skipped: {e}", file=sys.stderr, flush=True)
                continue
            verdicts.append(v)
            points[s.name] = pts
            print(
                f"{s.name}: top {v.top}, best {v.best}, tied {v.tied} ({validation_report.tie_size(v)}), "
                f"MDD {validation_report.score(v, v.mdd)}, converged {v.converged}, hit {v.hit}, "
                f"lr {v.lr_checks}",
                flush=True,
            )
            save(args.json, machine, commands, verdicts, points)
            validation_checkpoint.finish(progress_dir, s.name)
        verdicts.sort(key=lambda v: names.index(v.scenario))
    print(validation_report.summary_table(verdicts))
    if not args.no_doc:
        validation_report.write_doc(verdicts, points, machine, commands)
        print(
            f"wrote {validation_report.DOC.relative_to(ROOT)} and "
            f"{validation_report.PLOT.relative_to(ROOT)}"
        )


if __name__ == "__main__":
    main()
