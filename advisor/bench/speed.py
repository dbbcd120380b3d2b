"""``advisor bench``: how fast each trainer runs the seed MLP, against the machine's GEMM roofline.

Rows (each trains ``epochs`` epochs of the seed MLP with Adam and evaluates the validation
split after every epoch):

- ``dataloader``: the textbook loop — ``TensorDataset`` + ``DataLoader(shuffle=True)`` +
  ``nn.Module`` + ``torch.optim.Adam``;
- ``reference``: :func:`advisor.train.train_reference` (tensor indexing, no DataLoader);
- ``population``: :func:`advisor.train.train_members` with K Adam members (learning rates
  spread log-uniformly around 1e-3), for each K asked.

``s_per_model_epoch`` is wall time / (epochs * K), validation included. The roofline is the
GEMM work of one model-epoch (:func:`advisor.train.models.mlp_flops_per_sample` over the training
split, plus the forward pass over the validation split) divided by the fastest fp32 GEMM
measured on the machine: ``torch.mm`` (MKL) and oneDNN, each on a 2048 square and on the
trainer's layer-1 shape (so the fraction is not flattered by a slow BLAS: on AMD CPUs MKL
runs at about half of oneDNN's speed). ``peak_rss_mb`` is the peak resident memory of a
fresh process that ran only that row (interpreter, torch, dataset and training included);
with ``isolate=False`` rows run in this process and the figure is this process's peak so
far, which only grows. Timings on a shared machine are noisy: ``repeats`` keeps the fastest.

>>> result = run_bench("mnist-5k", [2], epochs=1, isolate=False, train_limit=512)
>>> sorted(result.to_dict())
['batch_size', 'dataset', 'device', 'epochs', 'flop_per_model_epoch', 'gemm', 'gemm_gflops', ...]
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from advisor.core.checks import positive_int
from advisor.core.devices import resolve_device
from advisor.core.errors import InvalidValueError, TrainingError
from advisor.data.datasets import load_dataset
from advisor.train import MemberConfig, default_population, train_members, train_reference
from advisor.train.models import mlp_flops_per_sample, mnist_mlp

if TYPE_CHECKING:
    import torch

    from advisor.data.dataset import Dataset

TRAINERS = ("dataloader", "reference", "population")
#: Base learning rate of the benchmark's Adam members (the registry default).
_LR = 1e-3


@dataclass(frozen=True)
class BenchRow:
    trainer: str
    population: int
    s_per_model_epoch: float
    roofline_fraction: float
    peak_rss_mb: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "trainer": self.trainer,
            "population": self.population,
            "s_per_model_epoch": self.s_per_model_epoch,
            "roofline_fraction": self.roofline_fraction,
            "peak_rss_mb": self.peak_rss_mb,
        }


@dataclass(frozen=True)
class BenchResult:
    dataset: str
    device: str
    threads: int
    epochs: int
    batch_size: int
    n_train: int
    n_val: int
    gemm_gflops: float
    gemm: str
    flop_per_model_epoch: float
    isolated: bool
    gemm_all: tuple[tuple[str, float], ...] = ()
    rows: tuple[BenchRow, ...] = field(default_factory=tuple)

    @property
    def best_population(self) -> BenchRow | None:
        rows = [r for r in self.rows if r.trainer == "population"]
        return min(rows, key=lambda r: r.s_per_model_epoch) if rows else None

    def row(self, trainer: str) -> BenchRow | None:
        return next((r for r in self.rows if r.trainer == trainer), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "device": self.device,
            "threads": self.threads,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "gemm_gflops": self.gemm_gflops,
            "gemm": self.gemm,
            "gemm_measured": dict(self.gemm_all),
            "flop_per_model_epoch": self.flop_per_model_epoch,
            "roofline_s_per_model_epoch": self.flop_per_model_epoch / (self.gemm_gflops * 1e9),
            "isolated": self.isolated,
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_text(self) -> str:
        limit = self.flop_per_model_epoch / (self.gemm_gflops * 1e9)
        lines = [
            f"{self.dataset}: {self.n_train:,} train + {self.n_val:,} validation samples, "
            f"{self.epochs} epoch(s), batch {self.batch_size}, {self.device} ({self.threads} threads)",
            f"GEMM roofline: {self.gemm_gflops:.0f} GFLOP/s, the fastest fp32 GEMM measured "
            f"({self.gemm}; all: "
            + ", ".join(f"{name} {value:.0f}" for name, value in self.gemm_all)
            + ")",
            f"{self.flop_per_model_epoch / 1e9:.1f} GFLOP per model-epoch (training + validation "
            f"forward) -> {limit:.3f} s per model-epoch at the roofline",
            "",
            f"{'trainer':<12}{'K':>4}{'s/model-epoch':>15}{'roofline':>10}{'peak RSS':>11}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.trainer:<12}{r.population:>4}{r.s_per_model_epoch:>15.3f}"
                f"{r.roofline_fraction:>9.0%}{r.peak_rss_mb:>8.0f} MB"
            )
        best, ref = self.best_population, self.row("reference")
        if best is not None:
            lines.append("")
            speedup = f"{ref.s_per_model_epoch / best.s_per_model_epoch:.1f}x" if ref else "n/a"
            lines.append(
                f"population K={best.population}: {speedup} the reference trainer, "
                f"{best.roofline_fraction:.0%} of roofline"
            )
        return "\n".join(lines)


def measure_gemm_gflops(
    device: str | torch.device = "cpu",
    *,
    size: int = 2048,
    shape: tuple[int, int, int] | None = None,
) -> dict[str, float]:
    """fp32 GEMM throughput in GFLOP/s of every backend and shape tried (best of three).

    Times ``torch.mm`` (MKL on the CPU) and, where available, oneDNN's matmul (which the
    population trainer uses for its first layer), each on a ``size`` square and on
    ``shape`` = ``(m, k, n)``. Keys read like ``"oneDNN 2048x784x128"`` (m x k x n).
    """
    import torch

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    onednn = dev.type == "cpu" and bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]
    shapes = [(size, size, size)] + ([shape] if shape is not None else [])
    measured: dict[str, float] = {}
    for m, k, n in shapes:
        a = torch.randn(m, k, device=dev)
        b = torch.randn(k, n, device=dev)
        bt = b.t().contiguous()
        out = torch.empty(m, n, device=dev)
        kernels: list[tuple[str, Callable[[], object]]] = [
            ("torch.mm", functools.partial(torch.mm, a, b, out=out))
        ]
        if onednn:
            linear = torch.ops.mkldnn._linear_pointwise
            kernels.append(("oneDNN", functools.partial(linear, a, bt, None, "none", [], "")))
        reps = max(2, int(2e9 / (2 * m * k * n)))  # ~2 GFLOP per timing
        for name, kernel in kernels:
            kernel()
            best = 0.0
            for _ in range(3):
                _sync(dev)
                t = time.perf_counter()
                for _ in range(reps):
                    kernel()
                _sync(dev)
                best = max(best, 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9)
            measured[f"{name} {m}x{k}x{n}"] = best
    return measured


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load(name: str, data_dir: str | None, train_limit: int | None) -> Dataset:
    import torch

    data = load_dataset(name, data_dir=data_dir)
    if train_limit is not None:  # a seeded random subset: splits may be sorted by class
        g = torch.Generator().manual_seed(0)
        n_val = max(1, min(data.x_val.shape[0], train_limit // 10))
        train = torch.randperm(data.x_train.shape[0], generator=g)[:train_limit]
        val = torch.randperm(data.x_val.shape[0], generator=g)[:n_val]
        data = replace(
            data,
            x_train=data.x_train[train],
            y_train=data.y_train[train],
            x_val=data.x_val[val],
            y_val=data.y_val[val],
        )
    return data


def _dataloader_loop(data: Dataset, epochs: int, batch_size: int, device: torch.device) -> None:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = mnist_mlp(n_features=data.n_features, n_classes=data.n_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=_LR)
    train = DataLoader(
        TensorDataset(data.x_train, data.y_train), batch_size=batch_size, shuffle=True
    )
    val = DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=1000)
    for _ in range(epochs):
        model.train()
        for xb, yb in train:
            optimizer.zero_grad()
            loss: torch.Tensor = F.cross_entropy(model(xb), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val:
                correct += int((model(xb).argmax(1) == yb).sum())


def _population_configs(k: int) -> list[Any]:

    spread = [0.0] if k == 1 else [-0.5 + i / (k - 1) for i in range(k)]
    return [MemberConfig("adam", {"lr": _LR * 10**s}, key=i) for i, s in enumerate(spread)]


def _train_row(
    trainer: str, k: int, data: Dataset, epochs: int, batch_size: int, device: torch.device
) -> None:

    if trainer == "dataloader":
        _dataloader_loop(data, epochs, batch_size, device)
    elif trainer == "reference":
        train_reference(
            MemberConfig("adam", {"lr": _LR}),
            data,
            epochs=epochs,
            batch_size=batch_size,
            device=device,
        )
    else:
        configs = _population_configs(k)
        train_members(
            configs, data, epochs=epochs, batch_size=batch_size, device=device, max_population=k
        )


def run_row(spec: dict[str, Any]) -> dict[str, float]:
    """Time one row in this process: ``{"seconds": ..., "peak_rss_mb": ...}``."""
    import resource

    device = resolve_device(spec["device"])
    data = _load(spec["dataset"], spec["data_dir"], spec["train_limit"]).to(device)
    warm = replace(
        data,
        x_train=data.x_train[: 4 * spec["batch_size"]],
        y_train=data.y_train[: 4 * spec["batch_size"]],
    )
    _train_row(spec["trainer"], spec["population"], warm, 1, spec["batch_size"], device)
    best = math.inf
    for _ in range(spec["repeats"]):
        _sync(device)
        t = time.perf_counter()
        _train_row(
            spec["trainer"], spec["population"], data, spec["epochs"], spec["batch_size"], device
        )
        _sync(device)
        best = min(best, time.perf_counter() - t)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20
    return {"seconds": best, "peak_rss_mb": rss_mb}


def _row_child(spec: dict[str, Any], conn: Any) -> None:
    try:
        conn.send(("ok", run_row(spec)))
    except BaseException:  # report anything to the parent, which raises
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _run_isolated(spec: dict[str, Any]) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_row_child, args=(spec, child), daemon=True)
    process.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        status, payload = "error", f"the benchmark process died (exit code {process.exitcode})"
    process.join()
    if status != "ok":
        raise TrainingError(
            f"benchmark row {spec['trainer']} K={spec['population']} failed:\n{payload}"
        )
    result: dict[str, float] = payload
    return result


def run_bench(
    dataset: str = "fashion-mnist",
    populations: Sequence[int] = (1, 4, 16, 64),
    *,
    epochs: int = 1,
    batch_size: int = 128,
    device: str = "auto",
    data_dir: str | None = None,
    trainers: Sequence[str] = TRAINERS,
    isolate: bool = True,
    repeats: int = 1,
    train_limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Benchmark the trainers on ``dataset``; see the module docstring.

    ``populations``: the K of each population row. ``isolate``: run every row in a fresh
    process (honest peak RSS per row; adds a few seconds of start-up per row, not timed).
    ``repeats``: time each row this many times and keep the fastest. ``train_limit``:
    train on the first N training rows only (for quick checks).
    """
    import torch

    for name in trainers:
        if name not in TRAINERS:
            raise InvalidValueError(
                f"unknown trainer {name!r}; choose among {', '.join(TRAINERS)}."
            )
    ks = [positive_int("population size", k) for k in populations]
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("repeats", repeats)):
        positive_int(name, value)
    dev = resolve_device(device)
    say = progress or (lambda message: None)
    data = _load(dataset, data_dir, train_limit)
    n_train, n_val = data.x_train.shape[0], data.x_val.shape[0]
    n_features, n_classes = data.n_features, data.n_classes
    train_flop = mlp_flops_per_sample(n_features=n_features, n_classes=n_classes)
    eval_flop = mlp_flops_per_sample(n_features=n_features, n_classes=n_classes, backward=False)
    flop = n_train * train_flop + n_val * eval_flop
    del data
    say("measuring GEMM throughput ...")
    k_shape = max(ks + [default_population(dev)])
    gemms = measure_gemm_gflops(dev, shape=(k_shape * 128, n_features, batch_size))
    gemm_label, gemm = max(gemms.items(), key=lambda item: item[1])
    plan = [(t, 1) for t in trainers if t != "population"]
    if "population" in trainers:
        plan += [("population", k) for k in ks]
    rows = []
    for trainer, k in plan:
        say(f"timing {trainer}" + (f" K={k}" if trainer == "population" else "") + " ...")
        spec = {
            "trainer": trainer,
            "population": k,
            "dataset": dataset,
            "data_dir": data_dir,
            "train_limit": train_limit,
            "epochs": epochs,
            "batch_size": batch_size,
            "device": str(dev),
            "repeats": repeats,
        }
        measured = _run_isolated(spec) if isolate else run_row(spec)
        per_model_epoch = measured["seconds"] / (epochs * k)
        rows.append(
            BenchRow(
                trainer=trainer,
                population=k,
                s_per_model_epoch=per_model_epoch,
                roofline_fraction=flop / (gemm * 1e9) / per_model_epoch,
                peak_rss_mb=measured["peak_rss_mb"],
            )
        )
    return BenchResult(
        dataset=dataset,
        device=str(dev),
        threads=torch.get_num_threads(),
        epochs=epochs,
        batch_size=batch_size,
        n_train=n_train,
        n_val=n_val,
        gemm_gflops=gemm,
        gemm=gemm_label,
        gemm_all=tuple(gemms.items()),
        flop_per_model_epoch=float(flop),
        isolated=isolate,
        rows=tuple(rows),
    )
