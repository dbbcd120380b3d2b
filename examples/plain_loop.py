"""Your own training loop, tuned through ``advisor.tune(objective=...)``.

    python examples/plain_loop.py
    PYTHONPATH=. advisor tune --objective examples.plain_loop:objective --trials 8 --epochs 3

A plain PyTorch loop with a ``DataLoader`` on scikit-learn's 8x8 digits (1,797 images).
advisor picks the optimizer, its hyperparameters and the schedule for every trial, prunes
the trials that ``trial.report`` shows to lag behind, and re-runs the best beside the
default Adam on fresh seeds (calling this function with ``trial.evaluate_test`` True).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import advisor


def splits() -> dict[str, TensorDataset]:
    """Train / validation / test, fixed (seeded) once: the test set is only for the finals."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    parts = {"train": order[:1200], "val": order[1200:1500], "test": order[1500:]}
    return {name: TensorDataset(x[idx], y[idx]) for name, idx in parts.items()}


def accuracy(model: nn.Module, data: TensorDataset) -> float:
    model.eval()
    with torch.no_grad():
        x, y = data.tensors
        return float((model(x).argmax(dim=1) == y).float().mean())


def objective(trial: advisor.Trial) -> dict[str, float]:
    """One trial: build, train ``trial.epochs`` epochs, report after each, return the metric."""
    data = splits()
    torch.manual_seed(trial.seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    loader = DataLoader(data["train"], batch_size=64, shuffle=True)
    optimizer = trial.optimizer(model.parameters())
    scheduler = trial.scheduler(optimizer, trial.epochs * len(loader))
    val = 0.0
    for epoch in range(1, trial.epochs + 1):
        model.train()
        if trial.train_eval:  # Schedule-Free AdamW: its train/eval modes follow the model's
            optimizer.train()  # type: ignore[attr-defined]
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            scheduler.step()
        if trial.train_eval:
            optimizer.eval()  # type: ignore[attr-defined]
        val = accuracy(model, data["val"])
        trial.report(epoch, val)  # raises optuna.TrialPruned when advisor prunes the trial
    test = accuracy(model, data["test"]) if trial.evaluate_test else None
    return {"value": val, "test": test} if test is not None else {"value": val}


def main() -> None:
    torch.set_num_threads(1)
    result = advisor.tune(
        objective=objective,
        optimizers=["adam", "nesterov"],
        trials=8,
        epochs=3,
        seeds=2,
        finalists=1,
        budget="2m",
        device="cpu",
    )
    print(result.recommendation.torch, result.recommendation.schedule)
    print(
        f"test accuracy {result.recommendation.test_accuracy.mean:.2%} "
        f"(default Adam {result.baseline.test_accuracy.mean:.2%})"
    )


if __name__ == "__main__":
    main()
