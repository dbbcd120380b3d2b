"""Check both population trainers on a CUDA GPU, in one command; exit 1 on any mismatch.

    PYTHONPATH=. python benchmarks/gpu_check.py                 # exactness, then K up to 1024
    PYTHONPATH=. python benchmarks/gpu_check.py --max-k 256 --rows 4096

On a machine without CUDA it prints that CUDA is absent and exits 0 (CI runs it so).
``--device cpu`` runs the same checks on the CPU (to try the script itself; slow).

1. Exactness, float64 on the GPU: every member of the hand-written seed-MLP population and
   of the generic population (a small CNN, an MLP with BatchNorm, a transformer encoder,
   a GRU) against the reference trainer (``torch.optim`` on one ``nn.Module``) on the same
   GPU, from the same init and the same minibatches; relative error at most
   ``--tolerance`` (1e-9, the CPU tests' bound) on every parameter and buffer.
2. Throughput, float32: seconds per model-epoch of the MLP (both population trainers) and
   of the small CNN (generic population) at K = 1, 4, 16, 64, 256, 1024 (up to
   ``--max-k``), against the sequential reference, with the peak GPU memory of each row.
   A K that does not fit is reported as out of memory and the next K is skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from population_speed import (  # noqa: E402
    SmallEncoder,
    func_population,
    mlp_population,
    population_seconds,
    reference_seconds,
)

from advisor.data.dataset import Dataset  # noqa: E402
from advisor.data.datasets import load_dataset  # noqa: E402
from advisor.train import MemberConfig, train_population, train_reference  # noqa: E402
from advisor.train.models import mnist_mlp  # noqa: E402
from advisor.train.population_loop import train_func_population  # noqa: E402
from examples.small_cnn import small_cnn  # noqa: E402

KS = (1, 4, 16, 64, 256, 1024)
CONFIGS = [
    MemberConfig("sgd", {"lr": 0.05}, key="sgd"),
    MemberConfig("momentum", {"lr": 0.02, "momentum": 0.9}, "cosine", 1, key="momentum"),
    MemberConfig("nesterov", {"lr": 0.02}, key="nesterov"),
    MemberConfig("adagrad", {"lr": 0.01}, key="adagrad"),
    MemberConfig("rmsprop", {"lr": 1e-3}, key="rmsprop"),
    MemberConfig("adam", {"lr": 3e-3, "beta1": 0.8}, "warmup_cosine", key="adam"),
    MemberConfig("adamw", {"lr": 1e-3}, init_seed=2, key="adamw"),
    MemberConfig("nadam", {"lr": 2e-3}, key="nadam"),
    MemberConfig("radam", {"lr": 1e-3}, key="radam"),
    MemberConfig("adafactor", {"lr": 1e-2}, key="adafactor"),
    MemberConfig("lion", {"lr": 1e-4}, key="lion"),
    MemberConfig("schedulefree", {"lr": 2.5e-3}, "warmup_constant", key="schedulefree"),
    MemberConfig("prodigy", key="prodigy"),
]


def batchnorm_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
    )


def exact_encoder() -> nn.Module:
    """The benchmark's encoder without dropout or biases (masks and the key bias's
    zero gradient would part any two implementations)."""
    model = SmallEncoder()
    model.encoder = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True, bias=False)
    return model


class CellGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(28, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.view(x.shape[0], 28, 28)
        h = x.new_zeros(x.shape[0], 16)
        for t in range(0, 28, 7):
            h = self.cell(rows[:, t], h)
        return self.head(h)  # type: ignore[no-any-return]


GENERIC: dict[str, Callable[[], nn.Module]] = {
    "small CNN": small_cnn,
    "BatchNorm MLP": batchnorm_mlp,
    "transformer encoder": exact_encoder,
    "GRU (cells)": CellGRU,
}


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    if not b.is_floating_point():
        return 0.0 if torch.equal(a, b) else float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


def exactness(data: Dataset, device: torch.device, tolerance: float) -> list[str]:
    """Mismatches (one line each) of both population trainers against the reference."""
    kw = {"epochs": 2, "batch_size": 32, "device": device, "dtype": torch.float64}
    failures: list[str] = []

    def compare(label: str, configs: list[MemberConfig], run: object, factory: object) -> None:
        worst = 0.0
        for config in configs:
            ref = train_reference(config, data, model_factory=factory, **kw)  # type: ignore[arg-type]
            mine = run.population.state_dict(config.key)  # type: ignore[attr-defined]
            for name, tensor in ref.model.state_dict().items():
                err = relative_error(mine[name], tensor)
                worst = max(worst, err)
                if err > tolerance:
                    failures.append(f"{label} {config.key} {name}: relative error {err:.2e}")
        print(f"  {label}: {len(configs)} members, worst relative error {worst:.1e}")

    mlp = [c for c in CONFIGS]
    compare("seed MLP (hand-written)", mlp, train_population(mlp, data, **kw), None)  # type: ignore[arg-type]
    for name, factory in GENERIC.items():
        configs = CONFIGS if name == "small CNN" else CONFIGS[:7]
        if name == "BatchNorm MLP":
            configs = [c for c in configs if c.optimizer != "schedulefree"]
        run = train_func_population(configs, data, model_factory=factory, **kw)  # type: ignore[arg-type]
        compare(f"{name} (generic)", configs, run, factory)
    return failures


def throughput(data: Dataset, max_k: int) -> None:
    """Seconds per model-epoch and peak memory, K up to ``max_k``."""
    device = data.x_train.device
    print(f"\nThroughput (float32, {data.x_train.shape[0]:,} rows, batch 128, Adam):")
    print("| model | trainer | K | s per model-epoch | speed-up | peak GPU memory |")
    print("|---|---|---:|---:|---:|---:|")
    runs: list[tuple[str, str, Callable[[], nn.Module], Callable[[Dataset, int], object]]] = [
        ("seed MLP", "hand-written", mnist_mlp, mlp_population),
        ("seed MLP", "generic", mnist_mlp, lambda d, k: func_population(mnist_mlp, d, k)),
        ("small CNN", "generic", small_cnn, lambda d, k: func_population(small_cnn, d, k)),
    ]
    for model, trainer, factory, build in runs:
        ref = reference_seconds(factory, data)
        print(f"| {model} | reference | 1 | {ref:.4f} | 1.0x | |")
        for k in [k for k in KS if k <= max_k]:
            cuda = device.type == "cuda"
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:
                seconds = population_seconds(build(data, k), data, k)  # type: ignore[arg-type]
            except torch.cuda.OutOfMemoryError:
                print(f"| {model} | {trainer} | {k} | out of memory | | |")
                break
            peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB" if cuda else "-"
            speedup = ref / seconds
            print(f"| {model} | {trainer} | {k} | {seconds:.5f} | {speedup:.1f}x | {peak} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="a CUDA device (cuda, cuda:1, ...)")
    parser.add_argument("--max-k", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=8192, help="training rows for throughput")
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is absent (torch.cuda.is_available() is False): no GPU check to run.")
        return 0
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True  # one convolution algorithm in both trainers
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    full = load_dataset("mnist-5k")
    small = Dataset(
        "mnist-5k", full.x_train[:320], full.y_train[:320], full.x_val[:100],
        full.y_val[:100], full.x_test[:100], full.y_test[:100],
    ).to(device)  # fmt: skip
    print(f"Exactness (float64 on {device}, tolerance {args.tolerance:g}):")
    failures = exactness(small, device, args.tolerance)
    rows = min(args.rows, full.x_train.shape[0])
    data = Dataset(
        "mnist-5k", full.x_train[:rows], full.y_train[:rows], full.x_val, full.y_val,
        full.x_test, full.y_test,
    ).to(device)  # fmt: skip
    throughput(data, args.max_k)
    if failures:
        print(f"\n{len(failures)} mismatches:", *failures, sep="\n  ")
        return 1
    print("\nAll members match the reference trainer.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
