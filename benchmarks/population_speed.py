"""Seconds per model-epoch: the generic population against the sequential reference.

    PYTHONPATH=. python benchmarks/population_speed.py            # modest sizes, a few minutes
    PYTHONPATH=. python benchmarks/population_speed.py --full     # fashion-mnist, all 54k rows
    PYTHONPATH=. python benchmarks/population_speed.py --no-doc   # print only

For each model (the small CNN of ``examples/small_cnn.py``, a small transformer encoder and
the seed MLP) and each K it trains K Adam members for one epoch of ``--rows`` training rows
(batches of 128) and divides the time by K: the seconds one model-epoch costs. The
sequential reference is torch.optim on one ``nn.Module`` at a time (the reference
trainer's loop); for the seed MLP the hand-written population trainer is timed too. The
trainers take turns, one epoch each, for ``--rounds`` rounds, and each keeps its best
epoch. One warm-up step precedes every timing; evaluation and model building are not
timed. The populations keep freed host memory in the process
(:mod:`advisor.train.host_memory`), so the reference runs with that setting too. It then
profiles three CNN steps of each trainer (``torch.profiler``): under vmap the first
convolution (shared input, stacked kernels) becomes one convolution with K times the
output channels, the second a grouped convolution (groups = K), and the activations
between them live in a member-interleaved layout; the table shows what each kind of op
costs per member-step against the reference. The table goes into
docs/BENCHMARKS.md (``write_section``) and to stdout.

The machine is shared: compare the rows of one run, and read the load average printed
with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_files import write_section  # noqa: E402

from advisor.data.dataset import Dataset  # noqa: E402
from advisor.data.datasets import load_dataset  # noqa: E402
from advisor.knowledge.optimizers import create_optimizers  # noqa: E402
from advisor.train import MemberConfig  # noqa: E402
from advisor.train.batches import batch_bounds, epoch_permutation  # noqa: E402
from advisor.train.func_population import FuncPopulation  # noqa: E402
from advisor.train.models import mnist_mlp  # noqa: E402
from advisor.train.population import Population  # noqa: E402
from advisor.train.reference import build_model  # noqa: E402
from examples.small_cnn import small_cnn  # noqa: E402

BATCH = 128


class SmallEncoder(nn.Module):
    """16 tokens of 49 pixels, one ``nn.TransformerEncoderLayer`` (d=32, 2 heads), mean-pooled."""

    def __init__(self, d_model: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(49, d_model)
        self.encoder = nn.TransformerEncoderLayer(d_model, 2, 2 * d_model, batch_first=True)
        self.head = nn.Linear(d_model, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.view(x.shape[0], 16, 49))
        return self.head(self.encoder(tokens).mean(dim=1))  # type: ignore[no-any-return]


MODELS: dict[str, Callable[[], nn.Module]] = {
    "small CNN": small_cnn,
    "transformer encoder": SmallEncoder,
    "seed MLP": mnist_mlp,
}


def configs(k: int) -> list[MemberConfig]:
    return [MemberConfig("adam", {"lr": 1e-3 * (1 + i / k)}, init_seed=i, key=i) for i in range(k)]


def _batches(data: Dataset) -> list[torch.Tensor]:
    n, dev = data.x_train.shape[0], data.x_train.device
    perm = epoch_permutation(n, data_seed=0, epoch=1, device=dev)
    return [perm[a:b] for a, b in batch_bounds(data.x_train.shape[0], BATCH)]


def _reference_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]
    opt.step()


def reference_seconds(factory: Callable[[], nn.Module], data: Dataset, models: int = 2) -> float:
    """Seconds per model-epoch of torch.optim, one model at a time (best of ``models``)."""
    best = float("inf")
    x, y = data.x_train, data.y_train
    batches = _batches(data)
    for seed in range(models):
        model = build_model(MemberConfig("adam", init_seed=seed), data, factory).to(x.device)
        (opt,) = create_optimizers("adam", model, {"lr": 1e-3})
        _reference_step(model, opt, x[batches[0]], y[batches[0]])  # warm-up
        _sync(x.device)
        t0 = time.perf_counter()
        for idx in batches:
            _reference_step(model, opt, x.index_select(0, idx), y.index_select(0, idx))
        _sync(x.device)
        best = min(best, time.perf_counter() - t0)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def population_seconds(pop: FuncPopulation | Population, data: Dataset, k: int) -> float:
    """Seconds per model-epoch of a population of ``k`` members (one epoch, divided by k)."""
    batches = _batches(data)
    pop.train_mode()
    pop.train_step(data.x_train, data.y_train, batches[0], 0)  # warm-up
    t0 = time.perf_counter()
    for i, idx in enumerate(batches, 1):
        pop.train_step(data.x_train, data.y_train, idx, i)
    float(pop.loss_sum.sum())  # wait for the device
    return (time.perf_counter() - t0) / k


def func_population(factory: Callable[[], nn.Module], data: Dataset, k: int) -> FuncPopulation:
    steps = len(_batches(data)) + 4
    return FuncPopulation(
        configs(k),
        list(range(k)),
        model_factory=factory,
        data=data,
        total_steps=steps,
        device=data.x_train.device,
    )


def mlp_population(data: Dataset, k: int) -> Population:
    steps = len(_batches(data)) + 4
    return Population(
        configs(k),
        list(range(k)),
        n_features=784,
        n_classes=10,
        total_steps=steps,
        device=data.x_train.device,
    )


#: Profile categories: a label and the substrings of the op names it gathers.
CATEGORIES = (
    ("convolution (forward + backward)", ("conv",)),
    ("max-pooling", ("max_pool",)),
    ("ReLU (forward + backward)", ("clamp_min", "threshold", "relu")),
    ("copies and fills (layout changes, zeroed buffers)", ("copy_", "fill_", "zero_")),
)


def conv_profile(data: Dataset, k: int) -> str:
    """One CNN step of each trainer under torch.profiler: milliseconds per member-step."""
    from torch.profiler import profile

    idx = _batches(data)[0]
    pop = func_population(small_cnn, data, k)
    pop.train_mode()
    pop.train_step(data.x_train, data.y_train, idx, 0)
    with profile() as prof:
        for step in range(1, 4):
            pop.train_step(data.x_train, data.y_train, idx, step)
    mine = _categories(prof, 3 * k)
    model = build_model(MemberConfig("adam"), data, small_cnn).to(data.x_train.device)
    (opt,) = create_optimizers("adam", model, {"lr": 1e-3})
    x, y = data.x_train[idx], data.y_train[idx]
    _reference_step(model, opt, x, y)
    with profile() as prof:
        for _ in range(3):
            _reference_step(model, opt, x, y)
    theirs = _categories(prof, 3)
    lines = [
        f"Small CNN under torch.profiler (3 steps, batch {BATCH}, {torch.get_num_threads()} "
        "threads): CPU milliseconds per "
        f"member-step, generic population (K={k}) against the reference.",
        "",
        "| ops | population | reference | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label in [c[0] for c in CATEGORIES] + ["everything else", "total"]:
        a, b = mine[label], theirs[label]
        ratio = f"{a / b:.1f}x" if b > 0 else "-"
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {ratio} |")
    conv = CATEGORIES[0][0]
    lines += [
        "",
        f"Per member, the convolutions cost {mine[conv] / theirs[conv]:.1f}x the reference's "
        "and the whole step "
        f"{mine['total'] / theirs['total']:.1f}x (op time only: the reference also pays "
        "Python and autograd overhead per model, which the population shares).",
    ]
    return "\n".join(lines)


def _categories(prof: object, member_steps: int) -> dict[str, float]:
    """Self CPU milliseconds per member-step, by :data:`CATEGORIES`."""
    out = {label: 0.0 for label, _ in CATEGORIES}
    out["everything else"] = 0.0
    for event in prof.key_averages():  # type: ignore[attr-defined]
        name = event.key.lower()
        label = next((lb for lb, keys in CATEGORIES if any(k in name for k in keys)), None)
        out[label or "everything else"] += event.self_cpu_time_total / 1e3 / member_steps
    out["total"] = sum(out.values())
    return out


def run(
    data: Dataset,
    ks: list[int],
    progress: Callable[[str], None],
    models: list[str],
    rounds: int = 3,
) -> list[dict[str, object]]:
    """Per model and K: the best of ``rounds`` epochs of each trainer, taken in turns.

    The reference and the populations alternate epoch by epoch, so that a slow spell of
    the shared machine falls on all of them; the best epoch of each is kept (timeit's rule).
    """
    rows: list[dict[str, object]] = []
    for name in models:
        factory = MODELS[name]
        for k in ks:
            trainers: dict[str, FuncPopulation | Population] = {
                "func": func_population(factory, data, k)
            }
            if factory is mnist_mlp:
                trainers["mlp"] = mlp_population(data, k)
            best = dict.fromkeys(["reference", *trainers], float("inf"))
            for _ in range(rounds):
                best["reference"] = min(best["reference"], reference_seconds(factory, data, 1))
                for key, pop in trainers.items():
                    best[key] = min(best[key], population_seconds(pop, data, k))
            row: dict[str, object] = {"model": name, "k": k, **best}
            progress(f"{name} K={k}: {row}")
            rows.append(row)
    return rows


def table(rows: list[dict[str, object]], data: Dataset) -> str:
    n = data.x_train.shape[0]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [
        f"Seconds per model-epoch ({n:,} rows of {data.name}, batch {BATCH}, Adam, float32, "
        f"CPU, {torch.get_num_threads()} threads, load average {load}); speed-up = "
        "reference / population.",
        "",
        "| model | K | reference (s) | generic population (s) | speed-up | hand-written MLP (s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref, func = float(r["reference"]), float(r["func"])  # type: ignore[arg-type]
        mlp = r.get("mlp")
        tail = (
            f"{float(mlp):.4f} | {ref / float(mlp):.1f}x"  # type: ignore[arg-type]
            if mlp is not None
            else "| "
        )
        lines.append(
            f"| {r['model']} | {r['k']} | {ref:.4f} | {func:.4f} | {ref / func:.1f}x | {tail} |"
        )
    lines += ["", *verdicts(rows)]
    return "\n".join(lines)


def verdicts(rows: list[dict[str, object]]) -> list[str]:
    """The best speed-up of each model against the issue's target (2x; none for the CNN)."""
    out = []
    for model in dict.fromkeys(str(r["model"]) for r in rows):
        mine = [r for r in rows if r["model"] == model]
        best = max(mine, key=lambda r: float(r["reference"]) / float(r["func"]))  # type: ignore[arg-type]
        ratio = float(best["reference"]) / float(best["func"])  # type: ignore[arg-type]
        target = (
            ""
            if model == "small CNN"
            else (" (target 2x: met)" if ratio >= 2 else " (target 2x: missed)")
        )
        line = f"- {model}: best generic speed-up {ratio:.1f}x at K={best['k']}{target}"
        hand = [r for r in mine if "mlp" in r]
        if hand:
            ratios = ", ".join(
                f"{float(r['func']) / float(r['mlp']):.2f}x at K={r['k']}"  # type: ignore[arg-type]
                for r in hand
            )
            line += f"; the hand-written MLP trainer is faster than the generic one by {ratios}"
        out.append(line)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="fashion-mnist, every training row")
    parser.add_argument("--rows", type=int, default=1024, help="training rows (without --full)")
    parser.add_argument("--population", default="1,4,16,64", help="comma-separated K")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/BENCHMARKS.md")
    parser.add_argument(
        "--threads", help="torch threads, comma-separated: one table each (default: torch's choice)"
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, among {', '.join(MODELS)}"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the CNN profile")
    parser.add_argument(
        "--rounds", type=int, default=3, help="epochs of each trainer, in turns (best kept)"
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.full:
        data = load_dataset("fashion-mnist")
    else:
        full = load_dataset("mnist-5k")
        data = Dataset(
            "mnist-5k", full.x_train[: args.rows], full.y_train[: args.rows],
            full.x_val, full.y_val, full.x_test, full.y_test,
        )  # fmt: skip
    ks = [int(k) for k in args.population.split(",")]
    tables = []
    for threads in [int(t) for t in args.threads.split(",")] if args.threads else [None]:
        if threads:
            torch.set_num_threads(threads)
        rows = run(
            data, ks, lambda m: print(m, file=sys.stderr), args.models.split(","), args.rounds
        )
        tables.append(table(rows, data))
    profile = "" if args.no_profile else conv_profile(data, 16)
    text = "\n\n".join([*tables, profile]).strip()
    print(text)
    if not args.no_doc:
        command = "PYTHONPATH=. python benchmarks/population_speed.py " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        write_section(
            ROOT / "docs" / "BENCHMARKS.md",
            "population-speed",
            "benchmarks/population_speed.py",
            f"## Generic population: seconds per model-epoch\n\n`{command}`\n\n{text}",
        )


if __name__ == "__main__":
    main()
