"""Print the trainer benchmark table (the same as ``advisor bench``).

    python benchmarks/trainers.py                      # fashion-mnist, K = 1,4,16,64
    python benchmarks/trainers.py --population 2,4,8,16,32,64 --repeats 3
    python benchmarks/trainers.py --json > bench.json

The machine is shared: other processes inflate single timings, so compare rows of one run
and use ``--repeats`` (fastest of N) for figures worth quoting.
"""

from __future__ import annotations

import argparse
import json
import sys

from advisor.bench.speed import run_bench


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--population", default="1,4,16,64", help="comma-separated K")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--in-process", action="store_true", help="do not isolate rows")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    result = run_bench(
        args.dataset,
        [int(k) for k in args.population.split(",")],
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        isolate=not args.in_process,
        repeats=args.repeats,
        progress=lambda message: print(message, file=sys.stderr),
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.to_text())


if __name__ == "__main__":
    main()
