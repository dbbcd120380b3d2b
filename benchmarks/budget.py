"""The wall budget kept, and the trials it buys (issue 14).

    python benchmarks/budget.py                          # budgets 20s, 1m, 5m; 5 seeds at 1m
    python benchmarks/budget.py --budgets 20s,30m --seeds 0 --dataset fashion-mnist
    python benchmarks/budget.py --budgets 30m --seeds "" --merge   # add a row to the saved ones

Each run is ``advisor tune --budget B --seed S`` in a fresh process, with its defaults
(mnist-5k: the rules' candidates, population, 5 epochs). Its wall time is measured from
outside, from starting the process to its exit, against the bound ``B + max(5 s, 5 %)``.
Each row: finished trials, trials per minute of budget, Optuna's share of the wall time,
the trial estimate after the first batch, and the time each optimizer used. Nothing is
asserted: the figures go to docs/BENCHMARKS.md (its ``budget`` block) and stdout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from doc_files import write_section
from machine import describe

from advisor.core.units import format_duration, parse_duration

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"
RAW = ROOT / "docs" / "benchmarks" / "budget.json"


def bound(budget_s: float) -> float:
    """The promise: wall time at most ``B + max(5 s, 5 % of B)``."""
    return budget_s + max(5.0, 0.05 * budget_s)


def run(dataset: str, budget: str, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "advisor",
            "tune",
            "--dataset",
            dataset,
            "--budget",
            budget,
            "--seed",
            str(seed),
            "--out",
            out,
            "--quiet",
            "--format",
            "json",
        ]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    row: dict[str, Any] = {"dataset": dataset, "budget": budget, "seed": seed, "wall_s": wall}
    if done.returncode != 0:
        row["error"] = (done.stderr.strip().splitlines() or ["?"])[-1]
        return row
    result = json.loads(done.stdout)
    t = result["trials"]
    b = result["budget"]
    finished = t["complete"] + t["pruned"] + t["diverged"]
    row.update(
        finished=finished,
        per_min=finished / (parse_duration(budget) / 60),
        optuna_share=b["optuna_s"] / wall,
        expected=b.get("expected_trials"),
        by_optimizer=b["by_optimizer"],
        final_seeds=b["final_seeds"],
        recommendation=result["recommendation"]["torch"],
        test=result["recommendation"]["test_accuracy"]["mean"],
    )
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | budget | seed | wall (outside) | bound | kept? | finished trials | per minute "
        "| estimate after batch 1 | Optuna share | finalist seeds | time per optimizer "
        "| conditions |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = parse_duration(r["budget"])
        if "error" in r:
            lines.append(
                f"| {r['dataset']} | {r['budget']} | {r['seed']} | "
                f"{format_duration(r['wall_s'])} | {format_duration(bound(b))} | "
                f"{'yes' if r['wall_s'] <= bound(b) else 'NO'} | error: {r['error']} |"
                " | | | | | |"
            )
            continue
        per = ", ".join(
            f"{o} {d['trials']} / {format_duration(d['seconds'])}"
            for o, d in r["by_optimizer"].items()
        )
        lines.append(
            f"| {r['dataset']} | {r['budget']} | {r['seed']} | {format_duration(r['wall_s'])} "
            f"| {format_duration(bound(b))} | {'yes' if r['wall_s'] <= bound(b) else 'NO'} "
            f"| {r['finished']} | {r['per_min']:.0f} | {r['expected']} "
            f"| {r['optuna_share'] * 100:.1f} % | {r['final_seeds']} | {per} "
            f"| {r.get('conditions', '')} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    ok = [r for r in rows if "error" not in r]
    kept = sum(r["wall_s"] <= bound(parse_duration(r["budget"])) for r in rows)
    per_min = [r["per_min"] for r in ok if parse_duration(r["budget"]) == 60]
    text = f"Budget kept in {kept} of {len(rows)} runs."
    if per_min:
        text += (
            f" Finished trials per minute at 1m: median {statistics.median(per_min):.0f}, "
            f"range {min(per_min):.0f}-{max(per_min):.0f} over {len(per_min)} search seeds."
        )
    shares = {}
    for r in ok:
        shares.setdefault(r["budget"], []).append(r["optuna_share"] * 100)
    if shares:
        text += (
            " Optuna's share of the wall time (median): "
            + ", ".join(
                f"{statistics.median(v):.1f} % at {b}"
                for b, v in sorted(shares.items(), key=lambda kv: parse_duration(kv[0]))
            )
            + " (issue 14's target: at most 10 % with thousands of trials)."
        )
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--budgets", default="20s,5m", help="budgets run with seed 0")
    parser.add_argument("--throughput-budget", default="1m")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="search seeds at --throughput-budget")
    parser.add_argument(
        "--no-doc", action="store_true", help="save the figures only, not the doc section"
    )
    parser.add_argument(
        "--conditions",
        default="",
        help="how these runs shared the machine (shown beside their rows)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the saved rows (and commands) of the budgets and seeds not run now",
    )
    parser.add_argument(
        "--doc-only", action="store_true", help="write the doc section from the saved figures"
    )
    args = parser.parse_args(argv)
    if args.doc_only:
        saved = json.loads(RAW.read_text())
        write_doc(saved["rows"], saved["commands"])
        print(table(saved["rows"]))
        return
    plan = [(b, 0) for b in args.budgets.split(",") if b]
    plan += [(args.throughput_budget, int(s)) for s in args.seeds.split(",") if s]
    rows = []
    for budget, seed in plan:
        rows.append(run(args.dataset, budget, seed))
        if args.conditions:
            rows[-1]["conditions"] = args.conditions
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(summary(rows))
    command = "python benchmarks/budget.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    commands = [command.strip()]
    if args.merge and RAW.exists():
        saved = json.loads(RAW.read_text())
        if isinstance(saved, list):  # the first format: rows only
            saved = {"commands": [], "rows": saved}
        fresh = {(r["dataset"], r["budget"], r["seed"]) for r in rows}
        kept = [r for r in saved["rows"] if (r["dataset"], r["budget"], r["seed"]) not in fresh]
        rows = sorted(
            kept + rows, key=lambda r: (r["dataset"], parse_duration(r["budget"]), r["seed"])
        )
        commands = [*saved["commands"], *commands]
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps({"commands": commands, "rows": rows}, indent=2) + "\n")
    if args.no_doc:  # the figures are saved (a later --merge run writes them into the doc)
        return
    write_doc(rows, commands)


def write_doc(rows: list[dict[str, Any]], commands: list[str]) -> None:
    """docs/BENCHMARKS.md's ``budget`` section, from these rows and the commands that made them."""
    text = (
        "## The wall budget kept, and the trials it buys\n\n"
        f"Generated by {', then '.join(f'`{c}`' for c in commands)} on {describe()} "
        f"(raw: [`benchmarks/budget.json`](benchmarks/budget.json)). Wall time measured from "
        "outside the process, from its start to its exit; the bound is B + max(5 s, 5 %). "
        "*Time per optimizer*: trials / training seconds.\n\n"
        f"{table(rows)}\n\n{summary(rows)}\n"
    )
    write_section(DOC, "budget", "benchmarks/budget.py", text)


if __name__ == "__main__":
    main()
