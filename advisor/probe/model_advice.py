"""Advice for a real model: measure its profile, recommend, and optionally probe the LR range.

What ``advisor recommend --model`` prints, as a Python API:

>>> advice = recommend_model("advisor.models:mnist_mlp", "mnist-5k", device="cpu", top=3)
>>> advice.profile.params, advice.measured.convexity, len(advice.recommendation.candidates)
(118282, 'nonconvex', 3)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.data.dataset import Dataset
from advisor.data.datasets import as_dataset
from advisor.data.task import Task
from advisor.knowledge.optimizers import get_optimizer_info
from advisor.knowledge.profile import Profile
from advisor.knowledge.recommender import Recommendation, recommend
from advisor.probe.lr_range import LRRangeResult, apply_lr_range, lr_range_test, results_text
from advisor.probe.measure import MeasuredProfile, profile_model

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelAdvice:
    """A recommendation for a measured model, with what was measured and probed."""

    recommendation: Recommendation
    measured: MeasuredProfile
    profile: Profile
    lr_range: Mapping[str, LRRangeResult]
    rules_dirs: tuple[str | Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        doc = self.recommendation.to_dict()
        doc["profile"]["measured"] = self.measured.to_dict(self.profile, self.rules_dirs)
        if self.lr_range:
            doc["lr_range_test"] = {name: r.to_dict() for name, r in self.lr_range.items()}
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        parts = [self.measured.to_text(self.profile, self.rules_dirs), ""]
        if self.lr_range:
            probe = results_text(self.lr_range)
            parts += [f"LR range test (range = [lr_min / 100, lr_min])\n{probe}", ""]
        return "\n".join([*parts, self.recommendation.to_text()])

    def to_markdown(self) -> str:
        measured = self.measured.to_text(self.profile, self.rules_dirs)
        parts = [self.recommendation.to_markdown(), "## Measured profile", "", "```", measured]
        parts.append("```")
        if self.lr_range:
            parts += ["", "## LR range test", "", "```", results_text(self.lr_range), "```"]
        return "\n".join(parts) + "\n"


def recommend_model(
    model: nn.Module | Callable[[], nn.Module] | str | None,
    data: Dataset | str = "mnist-5k",
    *,
    given: Mapping[str, Any] | None = None,
    device: str = "auto",
    batch_size: int = 128,
    budget: str | float | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    probe_lr: bool = False,
    plot: str | Path | None = None,
    rules_dirs: Sequence[str | Path] = (),
    top: int | None = None,
    task: Task | None = None,
) -> ModelAdvice:
    """Measure a model, recommend for what was measured, and optionally probe its LR ranges.

    ``model`` is measured on ``data`` by :func:`advisor.profile_model`; what you state in
    ``given`` (profile fields) wins over what was measured. With ``probe_lr`` each
    candidate's learning-rate range is narrowed by the LR range test (its loss curves drawn
    to ``plot``); full-batch L-BFGS and learning-rate-free Prodigy have no range to probe.
    ``task``: what the model learns; the measurement and the LR range test use its loss
    (a regression: ``Task("regression")``). Default: classification with cross-entropy.
    """
    ds = as_dataset(data, seed, data_dir)
    measured = profile_model(
        model, ds, device=device, batch_size=batch_size, budget=budget, seed=seed, task=task
    )
    profile = measured.to_profile(dict(given or {}))
    rec = recommend(profile, rules_dirs=rules_dirs, top=top, layout=measured.layout)
    results: dict[str, LRRangeResult] = {}
    names = [
        c.optimizer
        for c in rec.candidates
        if not (
            get_optimizer_info(c.optimizer).full_batch or get_optimizer_info(c.optimizer).lr_free
        )
    ]
    if probe_lr and names:
        results = lr_range_test(
            names,
            ds,
            model=model,
            batch_size=batch_size,
            seed=seed,
            device=device,
            plot=plot,
            task=task,
        )
        rec = apply_lr_range(rec, results)
    return ModelAdvice(rec, measured, profile, results, tuple(rules_dirs))
