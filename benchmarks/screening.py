"""Would successive halving have kept the truth? Early stopping of a validation grid, replayed.

    python benchmarks/screening.py docs/benchmarks/screening/regression-co2-seed0.json
    python benchmarks/screening.py docs/benchmarks/validation-progress/seed-mlp-fashion.json
    python benchmarks/screening.py docs/benchmarks/validation.json --scenario cnn-fashion

The screen: train every grid point of the first seed for a fraction of the epochs, then
finish only each optimizer's (and momentum's) ``keep`` best points by validation at that
epoch. Replayed on first-seed validation curves that were trained in full, it reports how
many points the screen would have stopped and which optimizers would have lost their best
point (by final validation score), and by how much. A scenario's first seed is whole in a
progress file written during its first seed (``specs`` and ``current``), or in a grid saved
with its pruned points (validate_rules keeps their first seed since 2026-11-30).
docs/VALIDATION.md quotes the figures.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

#: (optimizer, momentum) -> [(knob value, final validation score, validation curve)]
Groups = dict[tuple[str, Any], list[tuple[float, float, list[float]]]]


def first_seed(saved: dict[str, Any], scenario: str | None) -> Groups:
    """The first seed's curves, from a progress file or a saved grid's scenario."""
    groups: Groups = defaultdict(list)
    if "specs" in saved and saved.get("seed_index", 0) == 0:  # a progress file, first seed
        for (name, h), run in zip(saved["specs"], saved["current"]):
            knob = h.get("lr", h.get("d_coef"))
            ok = run["ok"] and run["curve"]
            groups[(name, h.get("momentum"))].append(
                (knob, run["val"] if ok else float("-inf"), run["curve"] if ok else [])
            )
        return groups
    if "specs" in saved:  # a progress file past its first seed: its points hold that seed
        points = saved["points"]
    elif scenario is None:
        raise SystemExit("a saved grid holds several scenarios: say which with --scenario")
    else:
        points = saved["points"][scenario]
    for p in points:
        knob = p["lr"] if p.get("d_coef") is None else p["d_coef"]
        curve = p["curves"][0] if p["curves"] else []  # empty: diverged, or saved before curves
        groups[(p["optimizer"], p["momentum"])].append((knob, p["val"][0], curve))
    return groups


def replay(groups: Groups, at_epoch: int, keep: int) -> tuple[int, int, list[str]]:
    """Points stopped, points in all, and each group that loses its best point."""
    stopped = total = 0
    lost = []
    for (name, momentum), points in sorted(groups.items(), key=str):
        if len(points) <= keep:
            continue

        def early(p: tuple[float, float, list[float]]) -> float:
            curve = p[2]
            return curve[min(at_epoch, len(curve)) - 1] if curve else float("-inf")

        kept = sorted(points, key=early, reverse=True)[:keep]
        best = max(points, key=lambda p: p[1])
        kept_best = max(kept, key=lambda p: p[1])
        total += len(points)
        stopped += len(points) - keep
        if kept_best[1] < best[1]:
            who = name if momentum is None else f"{name} (momentum {momentum:g})"
            lost.append(
                f"{who}: best {best[0]:g} lost, kept {kept_best[0]:g}, "
                f"{best[1] - kept_best[1]:.4g} worse"
            )
    return stopped, total, lost


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a progress file or a saved grid (JSON)")
    parser.add_argument("--scenario", default=None, help="with a saved grid: which scenario")
    parser.add_argument(
        "--fractions", default="0.1,0.2,0.25", help="when the screen looks: fractions of the epochs"
    )
    parser.add_argument("--keep", default="3,4", help="how many points of each kind it finishes")
    args = parser.parse_args(argv)
    groups = first_seed(json.loads(args.file.read_text()), args.scenario)
    epochs = max((len(c) for points in groups.values() for _, _, c in points), default=0)
    if not epochs:
        raise SystemExit(f"{args.file}: no validation curves to replay")
    print(
        f"{args.file}: {sum(map(len, groups.values()))} points, {len(groups)} kinds, {epochs} epochs"
    )
    for fraction in (float(f) for f in args.fractions.split(",")):
        at = max(1, round(epochs * fraction))
        for keep in (int(k) for k in args.keep.split(",")):
            stopped, total, lost = replay(groups, at, keep)
            print(
                f"  look at epoch {at}, finish the best {keep}: {stopped} of {total} points "
                f"stopped; {len(lost)} kinds lose their best"
            )
            for line in lost:
                print(f"    {line}")


if __name__ == "__main__":
    main()
