"""Does ``--probe-lr`` make tuning better at a fixed budget? (issue 6)

    python benchmarks/probe_lr.py                 # mnist-5k, budget 1m, seeds 0-4
    python benchmarks/probe_lr.py --seeds 3 --budget 2m

For each seed, ``advisor.tune`` runs twice, without and with the LR range test, on the
same budget; each run's recommendation is scored on the held-out test set over its own 5
fresh seeds. Prints the per-seed gains over the default Adam and their mean.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import advisor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--budget", default="1m")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    rows: dict[bool, list[float]] = {False: [], True: []}
    print(
        f"{'seed':>4}  {'probe':>5}  {'tuned test %':>12}  {'baseline %':>10}  {'gain pp':>7}  recommendation"
    )
    for seed in range(args.seeds):
        for probe in (False, True):
            with tempfile.TemporaryDirectory() as out:
                r = advisor.tune(
                    args.dataset, budget=args.budget, seed=seed, out=out, probe_lr=probe
                )
            tuned, base = r.recommendation.test_accuracy.mean, r.baseline.test_accuracy.mean
            rows[probe].append(tuned)
            print(
                f"{seed:>4}  {str(probe):>5}  {tuned * 100:12.2f}  {base * 100:10.2f}  {(tuned - base) * 100:+7.2f}  {r.recommendation.torch}, {r.recommendation.schedule}",
                flush=True,
            )
    for probe in (False, True):
        v = rows[probe]
        sd = statistics.stdev(v) * 100 if len(v) > 1 else 0.0
        print(
            f"probe_lr={probe!s:<5}: tuned test accuracy {statistics.mean(v) * 100:.2f} ± {sd:.2f} over {len(v)} tuning seeds"
        )
    diffs = [b - a for a, b in zip(rows[False], rows[True])]
    print(
        f"with minus without: {statistics.mean(diffs) * 100:+.2f} pp (per seed: {', '.join(f'{d * 100:+.2f}' for d in diffs)})"
    )


if __name__ == "__main__":
    main()
