"""A measured profile: what ``advisor`` can find out about a real model on real data.

:func:`profile_model` measures, on the training device:

- **params** — trainable parameters; **sparse_gradients** — whether an ``nn.Embedding`` or
  ``nn.EmbeddingBag`` has ``sparse=True`` (then the step time, and the LR range test, use
  the optimizers each candidate's printed code builds: :mod:`advisor.knowledge.sparse`);
  **memory** — the device's memory, and for every
  registered optimizer the training memory of weights + gradients + its state (registry
  ``memory_bytes``, tensor by tensor over the measured layout) and whether it fits;
- **layout** — each tensor's role (:func:`advisor.train.layout.model_layout`): the share
  of parameters in hidden 2-D weights (Muon's part) and in embeddings; **model kind** —
  mlp, cnn, transformer, rnn or embedding-heavy, from the modules;
- **samples** — training examples; **domain** — ``vision`` for the built-in image sets;
- **convexity** — from the model's graph (``torch.fx``): ``convex`` when the outputs are
  affine in the weights (one layer of ``Linear``/``Conv``, with only ``Flatten``,
  ``Identity``, ``Dropout``, reshapes and sums around it, possibly a final softmax or
  log-softmax) — cross-entropy and the squared error are convex in the outputs;
  ``nonconvex`` when a non-linearity (ReLU, Tanh, a normalization, max-pooling, ...) sits
  between parametrized layers, parametrized layers are stacked (products of weight
  matrices are not convex, even without a non-linearity), or a recurrent or attention
  module has trainable weights; ``unknown`` when an operation it does not recognise
  touches the weights' path, or the forward pass cannot be traced;
- **gradients** — per-layer gradient norms at initialization (mean over ``batches``
  minibatches), classified by :data:`GRADIENT_CHECKS`;
- **noise scale** — McCandlish et al. 2018, *An Empirical Model of Large-Batch Training*
  (arXiv:1812.06162), Appendix A: from the squared gradient norms at two batch sizes,
  unbiased estimates of ``|G|^2`` and ``tr(Sigma)``, and ``B_simple = tr(Sigma) / |G|^2``,
  about the critical batch size (measured at initialization, where it is smallest: it grows
  as training proceeds);
- **time per step** — one training step (Adam) at ``batch_size``; for the seed MLP also per
  member of a population; with a ``budget``, the ``trials`` of ``epochs`` epochs it allows.

The result converts to a :class:`~advisor.knowledge.profile.Profile` (:meth:`MeasuredProfile.to_profile`)
for :func:`advisor.recommend`, and :meth:`MeasuredProfile.to_dict` shows each measured value
with the rule conditions it was compared with (found by scanning the loaded rules).

>>> m = profile_model("advisor.models:mnist_mlp", "mnist-5k", device="cpu")
>>> m.params, m.convexity, m.to_profile().params
(118282, 'nonconvex', 118282)
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from advisor.core.checks import positive_int
from advisor.core.devices import device_memory_bytes, resolve_device
from advisor.core.errors import InvalidValueError, TrainingError
from advisor.core.units import format_duration, parse_duration
from advisor.data.datasets import as_dataset
from advisor.data.task import Task
from advisor.knowledge.layout import ParamLayout
from advisor.knowledge.optimizers import OPTIMIZERS
from advisor.knowledge.profile import FIELDS, Profile
from advisor.knowledge.rules import OPERATOR_SYMBOLS, load_rules
from advisor.knowledge.sparse import build_optimizers, sparse_embeddings
from advisor.probe.convexity import convexity_of
from advisor.train import MemberConfig, Population, default_population
from advisor.train.batches import minibatches, steps_per_epoch
from advisor.train.layout import model_kind, model_layout
from advisor.train.model_ref import build, resolve_model_arg, seeded, task_for
from advisor.train.task_check import check_model_task

if TYPE_CHECKING:
    import torch
    from torch import nn

    from advisor.data.dataset import Dataset
    from advisor.data.task import LossFn
    from advisor.knowledge.rules import Condition, RuleSet

#: Datasets whose domain is known.
_VISION = ("mnist", "mnist-5k", "fashion-mnist")
#: ``B_small = batch_size // NOISE_SPLIT`` for the noise scale (``B_big = batch_size``).
NOISE_SPLIT = 8
#: Optimizer the step time is measured with (the most common one; its step costs the most).
TIMED_OPTIMIZER = "adam"


@dataclass(frozen=True)
class GradientCheck:
    """One threshold on the gradient norms at initialization: ``quantity op threshold``.

    ``quantity``: ``ratio`` (first layer's norm / last layer's), ``max_norm``,
    ``nonfinite`` (1 if any norm is NaN or infinite). The first check that holds decides.
    """

    id: str
    verdict: str
    quantity: str
    op: str
    threshold: float
    text: str

    def holds(self, value: float) -> bool:
        return value > self.threshold if self.op == "gt" else value < self.threshold


_PASCANU = "Pascanu, Mikolov & Bengio 2013, On the difficulty of training recurrent neural networks (ICML), Sec. 2"
_GLOROT = "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks (AISTATS), Sec. 4.2"
#: The gradient-health thresholds, as data (heuristics: orders of magnitude, not tuned
#: values): exploding and vanishing gradients grow or shrink exponentially with depth.
GRADIENT_CHECKS: tuple[GradientCheck, ...] = (
    GradientCheck(
        "grad-nonfinite",
        "exploding",
        "nonfinite",
        "gt",
        0.0,
        f"a gradient norm is NaN or infinite [{_PASCANU}]",
    ),
    GradientCheck(
        "grad-norm-huge",
        "exploding",
        "max_norm",
        "gt",
        1e3,
        f"a layer's gradient norm exceeds 1e3 [{_PASCANU}]",
    ),
    GradientCheck(
        "grad-grow-to-input",
        "exploding",
        "ratio",
        "gt",
        1e3,
        f"the first layer's gradient norm is over 1e3 times the last layer's [{_PASCANU}; {_GLOROT}]",
    ),
    GradientCheck(
        "grad-shrink-to-input",
        "vanishing",
        "ratio",
        "lt",
        1e-3,
        f"the first layer's gradient norm is under 1e-3 times the last layer's [{_GLOROT}]",
    ),
    GradientCheck(
        "grad-norm-tiny",
        "vanishing",
        "max_norm",
        "lt",
        1e-6,
        f"every layer's gradient norm is under 1e-6 [{_GLOROT}]",
    ),
)


# ---------------------------------------------------------------- model and data arguments


# ---------------------------------------------------------------- gradients and noise scale


def _layers(model: nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """Trainable parameters by the module that owns them (each parameter once, registration
    order; :func:`_forward_order` puts them in the order of the forward pass)."""
    seen: set[int] = set()
    owned: dict[str, list[torch.nn.Parameter]] = {}
    for name, module in model.named_modules():
        params = [
            p for p in module.parameters(recurse=False) if p.requires_grad and id(p) not in seen
        ]
        seen.update(id(p) for p in params)
        if params:
            owned[name or type(model).__name__] = params
    return owned


def _fails(x: torch.Tensor, exc: Exception) -> TrainingError:
    """The model's forward failed on ``x``: one line naming the data it got."""
    return TrainingError(
        f"the model fails on a batch of the data (float32 {list(x.shape)}): "
        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )


def _forward_order(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> list[str]:
    import torch

    order: list[str] = []
    modules = dict(model.named_modules())
    hooks = [
        modules.get(n, model).register_forward_pre_hook(lambda *_, n=n: order.append(n))
        for n in names
    ]
    try:
        with torch.no_grad():
            model(x)
    except Exception as exc:  # a shape or dtype mismatch: say which data the model got
        raise _fails(x, exc) from exc
    finally:
        for h in hooks:
            h.remove()
    first = list(dict.fromkeys(order))
    return first + [n for n in names if n not in first]


@dataclass(frozen=True)
class _GradientStats:
    norms: dict[str, float]  # layer -> mean gradient norm at init, forward order
    quantities: dict[str, float]  # ratio, max_norm, nonfinite
    noise: dict[str, float]  # b_small, b_big, grad_sq, trace_sigma (empty if not measured)


def _gradient_stats(
    model: nn.Module, data: Dataset, batch_size: int, batches: int, seed: int, loss_fn: LossFn
) -> _GradientStats:
    """Layer gradient norms of the ``batch_size`` gradients of ``loss_fn`` at init, and the
    statistics of McCandlish et al. 2018, Appendix A, from sub-batches of
    ``batch_size // NOISE_SPLIT``."""
    import torch

    layers = _layers(model)
    if not layers:
        raise InvalidValueError("the model has no trainable parameters to measure.")
    x_all, y_all = data.x_train, data.y_train
    n = x_all.shape[0]
    batch_size = min(batch_size, n)
    order = _forward_order(model, x_all[: min(n, 2)], list(layers))
    params = [p for name in order for p in layers[name]]
    sizes = [sum(p.numel() for p in layers[name]) for name in order]
    b_small = max(1, batch_size // NOISE_SPLIT)
    parts = batch_size // b_small
    sums = {name: 0.0 for name in order}
    e_small = e_big = 0.0
    count = 0
    model.train()
    for idx in minibatches(n, batch_size, seed, batches):
        idx = idx.to(x_all.device)
        total = torch.zeros(sum(sizes), dtype=torch.float64, device=x_all.device)
        small = 0.0
        for i in range(parts):
            sub = idx[i * b_small : (i + 1) * b_small]
            model.zero_grad(set_to_none=True)
            loss_fn(model(x_all[sub]), y_all[sub]).backward()  # type: ignore[no-untyped-call]
            g = torch.cat([_dense_grad(p).reshape(-1).double() for p in params])
            small += float(g.square().sum())
            total += g
        big = total / parts  # [P] the gradient of the whole batch of parts * b_small rows
        for name, chunk in zip(order, torch.split(big, sizes)):
            sums[name] += float(chunk.norm())
        e_small += small / parts
        e_big += float(big.square().sum())
        count += 1
    model.zero_grad(set_to_none=True)
    norms = {name: sums[name] / count for name in order}
    values = list(norms.values())
    finite = all(math.isfinite(v) for v in values)
    ratio = values[0] / values[-1] if finite and values[-1] > 0 else math.inf
    quantities = {
        "ratio": ratio,
        "max_norm": max(values) if finite else math.inf,
        "nonfinite": 0.0 if finite else 1.0,
    }
    noise: dict[str, float] = {}
    b_big = parts * b_small
    if parts >= 2:
        e_small, e_big = e_small / count, e_big / count
        noise = {
            "b_small": float(b_small),
            "b_big": float(b_big),
            "grad_sq": (b_big * e_big - b_small * e_small) / (b_big - b_small),
            "trace_sigma": (e_small - e_big) / (1.0 / b_small - 1.0 / b_big),
        }
    return _GradientStats(norms, quantities, noise)


def _dense_grad(p: torch.nn.Parameter) -> torch.Tensor:
    """``p``'s gradient as a dense tensor (zeros when it has none; sparse embeddings' made dense)."""
    import torch

    if p.grad is None:
        return torch.zeros_like(p)
    return p.grad.to_dense() if p.grad.is_sparse else p.grad


def classify_gradients(quantities: Mapping[str, float]) -> tuple[str, str]:
    """``(verdict, reason)`` from :data:`GRADIENT_CHECKS`: the first check that holds."""
    for check in GRADIENT_CHECKS:
        if check.holds(quantities[check.quantity]):
            return (
                check.verdict,
                f"{check.text} ({check.quantity} {quantities[check.quantity]:.3g})",
            )
    limits = " or ".join(
        f"{c.quantity} {'>' if c.op == 'gt' else '<'} {c.threshold:g}"
        for c in GRADIENT_CHECKS
        if c.quantity != "nonfinite"
    )
    return "healthy", (
        f"first/last layer norm ratio {quantities['ratio']:.3g}, largest norm "
        f"{quantities['max_norm']:.3g}: no check holds ({limits})"
    )


# ---------------------------------------------------------------- time per step


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _step_time(
    model: nn.Module, data: Dataset, batch_size: int, loss_fn: LossFn, reps: int = 10
) -> float:
    """Median seconds of one training step (forward, backward, Adam update) at ``batch_size``;
    sparse embeddings are updated as Adam's printed code for them says (SparseAdam)."""
    device = data.x_train.device
    x, y = data.x_train[:batch_size], data.y_train[:batch_size]
    optimizers = build_optimizers(model, TIMED_OPTIMIZER)
    times = []
    for _ in range(reps + 2):
        t0 = time.perf_counter()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()  # type: ignore[no-untyped-call]
        for optimizer in optimizers:
            optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def _member_step_time(data: Dataset, batch_size: int, reps: int = 10) -> float:
    """Median seconds per member of one population step (the seed MLP, Adam)."""
    import torch

    device = data.x_train.device
    k = default_population(device)
    configs = [MemberConfig(TIMED_OPTIMIZER, init_seed=i, key=i) for i in range(k)]
    pop = Population(
        configs,
        list(range(k)),
        n_features=data.n_features,
        n_classes=data.n_classes,
        total_steps=reps + 2,
        device=device,
    )
    idx = torch.arange(min(batch_size, data.x_train.shape[0]), device=device)
    times = []
    for step in range(reps + 2):
        t0 = time.perf_counter()
        pop.train_step(data.x_train, data.y_train, idx, step)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:]) / k


# ---------------------------------------------------------------- the measured profile

#: Where each profile field's value comes from when nothing overrides it.
_SOURCES = {
    "params": "measured",
    "samples": "measured",
    "memory": "measured",
    "convexity": "measured",
    "gradients": "measured",
    "trials": "measured",
    "device": "measured",
    "domain": "dataset",
    "sparse_gradients": "measured",
    "model_kind": "measured",
    "hidden_share": "measured",
    "embedding_share": "measured",
    "batch_size": "given",
    "budget": "given",
}


@dataclass(frozen=True)
class MeasuredProfile:
    """What :func:`profile_model` measured (sizes in counts, bytes and seconds).

    ``optimizer_memory``: training memory (weights, gradients, state) per registered
    optimizer; ``gradient_norms``: mean gradient norm per parametrized module at
    initialization, in forward order; ``noise_scale``: ``B_simple`` (None when the estimate
    is not positive and finite), from the statistics in ``noise``; ``step_s``: one training
    step of the model at ``batch_size``; ``member_step_s``: per member of a population (the
    seed MLP only); ``trials``: how many trials of ``epochs`` epochs ``budget`` allows.
    """

    model: str
    dataset: str
    device: str
    params: int
    samples: int
    memory: int | None
    optimizer_memory: Mapping[str, int]
    convexity: str
    convexity_reason: str
    gradients: str
    gradients_reason: str
    gradient_norms: Mapping[str, float]
    gradient_quantities: Mapping[str, float]
    noise_scale: float | None
    noise: Mapping[str, float]
    suggested_batch_size: int | None
    batch_size: int
    batches: int
    step_s: float
    member_step_s: float | None
    steps_per_epoch: int
    epochs: int
    budget: float | None
    trials: int | None
    domain: str
    sparse_gradients: bool = False
    layout: ParamLayout | None = None
    model_kind: str = "unknown"

    @property
    def trial_s(self) -> float:
        """Seconds of training steps in one trial (evaluation not counted)."""
        step = self.member_step_s if self.member_step_s is not None else self.step_s
        return self.epochs * self.steps_per_epoch * step

    def to_profile(self, overrides: Mapping[str, Any] | None = None) -> Profile:
        """The :class:`~advisor.knowledge.profile.Profile` for :func:`advisor.recommend`; ``overrides``
        (profile field -> value; ``None`` values ignored) replace measured values."""
        values: dict[str, Any] = {
            "params": self.params,
            "samples": self.samples,
            "convexity": self.convexity,
            "budget": self.budget,
            "memory": self.memory,
            "device": self.device,
            "batch_size": self.batch_size,
            "gradients": self.gradients,
            "trials": self.trials,
            "domain": self.domain,
            "sparse_gradients": self.sparse_gradients,
            "model_kind": self.model_kind,
        }
        if self.layout is not None:
            values["hidden_share"] = self.layout.hidden_share
            values["embedding_share"] = self.layout.embedding_share
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return Profile.from_dict(values)

    def comparisons(
        self, profile: Profile | None = None, rules_dirs: Sequence[str | Path] = ()
    ) -> dict[str, list[dict[str, Any]]]:
        """For every profile field (derived ones too): each rule condition on it, whether it
        holds for ``profile`` (default :meth:`to_profile`) and whether its rule fired."""

        profile = profile or self.to_profile()
        return _comparisons(load_rules(rules_dirs), profile)

    def to_dict(
        self, profile: Profile | None = None, rules_dirs: Sequence[str | Path] = ()
    ) -> dict[str, Any]:
        """JSON-ready: each profile field as ``{"value", "source", "compared_with"}`` (plus
        ``reason`` / ``checks`` where measured), then the measurements rules do not test."""
        profile = profile or self.to_profile()
        compared = self.comparisons(profile, rules_dirs)
        values = profile.values()
        out: dict[str, Any] = {"model": self.model, "dataset": self.dataset}
        for name in FIELDS:
            entry: dict[str, Any] = {"value": values[name], "source": self._source(name, profile)}
            if name == "convexity":
                entry["reason"] = self.convexity_reason
            if name == "gradients":
                entry["reason"] = self.gradients_reason
                entry["checks"] = [
                    {
                        "check": c.id,
                        "verdict": c.verdict,
                        "quantity": c.quantity,
                        "value": _json_float(self.gradient_quantities[c.quantity]),
                        "op": c.op,
                        "threshold": c.threshold,
                        "holds": c.holds(self.gradient_quantities[c.quantity]),
                    }
                    for c in GRADIENT_CHECKS
                ]
            entry["compared_with"] = compared.get(name, [])
            out[name] = entry
        memory = profile.memory
        out["optimizer_memory"] = {
            name: {"bytes": need, "fits": None if memory is None else need <= memory}
            for name, need in self.optimizer_memory.items()
        }
        out["layout"] = None if self.layout is None else self.layout.to_dict()
        out["gradient_norms"] = {k: _json_float(v) for k, v in self.gradient_norms.items()}
        out["noise_scale"] = {
            "value": self.noise_scale,
            "suggested_batch_size": self.suggested_batch_size,
            **{k: _json_float(v) for k, v in self.noise.items()},
            "batches": self.batches,
        }
        out["step_time"] = {
            "step_s": self.step_s,
            "member_step_s": self.member_step_s,
            "optimizer": TIMED_OPTIMIZER,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "trial_s": self.trial_s,
            "trials": self.trials,
        }
        return out

    def _source(self, name: str, profile: Profile) -> str:
        spec = FIELDS[name]
        if spec.derived:
            return "derived"
        mine = getattr(self.to_profile(), name)
        if getattr(profile, name) != mine:
            return "given"
        if name == "trials" and self.trials is None:
            return "default"
        return _SOURCES.get(name, "default")

    def to_text(self, profile: Profile | None = None, rules_dirs: Sequence[str | Path] = ()) -> str:
        """``field value (source) → rule: condition? yes/no`` lines, then the measurements."""
        profile = profile or self.to_profile()
        compared = self.comparisons(profile, rules_dirs)
        values = profile.values()
        rows: list[tuple[str, list[str]]] = []
        for name, spec in FIELDS.items():
            source = self._source(name, profile)
            if values[name] is None or source == "default":
                continue
            shown = f"{values[name]:,}" if spec.kind == "count" else spec.format(values[name])
            pairs = [
                f"{c['rule']}: {c['condition']}? {'yes' if c['holds'] else 'no'}"
                + (
                    ""
                    if c["holds"] == c["fired"]
                    else f" (rule {'fired' if c['fired'] else 'did not fire'})"
                )
                for c in compared.get(name, [])
            ]
            rows.append((f"  {name} {shown} ({source})", pairs))
        width = max(len(head) for head, _ in rows)
        lines = [f"Measured profile: {self.model} on {self.dataset} ({self.device})"]
        for head, pairs in rows:
            lines.append(f"{head.ljust(width)} → {pairs[0]}" if pairs else head)
            lines += [f"{' ' * width} → {p}" for p in pairs[1:]]
        lines.append(f"  convexity: {self.convexity_reason}")
        if self.layout is not None:
            lines.append(f"  layout ({self.model_kind}): {_layout_text(self.layout)}")
        norms = ", ".join(f"'{k}' {v:.3g}" for k, v in self.gradient_norms.items())
        lines.append(
            f"  gradient norms at init: {norms}; {self.gradients}: {self.gradients_reason}"
        )
        if self.noise_scale is not None:
            lines.append(
                f"  gradient noise scale B_simple ≈ {self.noise_scale:.3g} (B_small "
                f"{self.noise['b_small']:.0f}, B_big {self.noise['b_big']:.0f}) → critical "
                f"batch ≈ {self.suggested_batch_size} (you use {self.batch_size})"
            )
        else:
            lines.append(
                "  gradient noise scale: no positive estimate (too few or too noisy batches)"
            )
        timing = f"  step {self.step_s * 1e3:.3g} ms ({TIMED_OPTIMIZER}, batch {self.batch_size})"
        if self.member_step_s is not None:
            timing += f", {self.member_step_s * 1e3:.3g} ms per population member"
        trial = format_duration(self.trial_s) if self.trial_s >= 10 else f"{self.trial_s:.2g} s"
        timing += f"; a trial of {self.epochs} epochs ≈ {trial} of steps"
        if self.budget is not None and self.trials is not None:
            timing += f"; the budget {format_duration(self.budget)} allows ~{self.trials:,} trials"
        lines.append(timing)
        return "\n".join(lines)


def _layout_text(layout: ParamLayout) -> str:
    """``hidden 2-D weights 16,384 (13.9%): 2.weight; input layer ...``, per role."""
    labels = {
        "hidden": "hidden 2-D weights",
        "input": "input layer",
        "head": "output head",
        "embedding": "embeddings",
        "other": "other",
        "vector": "biases and norms",
    }
    parts = []
    for role, label in labels.items():
        names = layout.names(role)
        if not names:
            continue
        shown = ", ".join(names) if len(names) <= 3 else f"{len(names)} tensors"
        share = layout.share(role) or 0.0
        parts.append(f"{label} {layout.count(role):,} ({share:.1%}): {shown}")
    return "; ".join(parts)


def _json_float(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _condition_text(c: Condition) -> str:
    """``>= 1M``, ``>= 1,024``, ``in [10, 25]``: counts below 100k in full."""
    spec = FIELDS[c.field]

    def one(v: Any) -> str:
        return f"{v:,}" if spec.kind == "count" and v < 100_000 else spec.format(v)

    shown = (
        "[" + ", ".join(one(v) for v in c.value) + "]"
        if isinstance(c.value, tuple)
        else one(c.value)
    )
    return f"{OPERATOR_SYMBOLS[c.op]} {shown}"


def _comparisons(rules: RuleSet, profile: Profile) -> dict[str, list[dict[str, Any]]]:
    values = profile.values()
    fired = {f.id for f in rules.evaluate(profile)}
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        if not rule.enabled:
            continue
        for when in ("all", "any", "none"):
            for c in getattr(rule.when, when):
                threshold = list(c.value) if isinstance(c.value, tuple) else c.value
                out.setdefault(c.field, []).append(
                    {
                        "rule": rule.id,
                        "when": when,
                        "op": c.op,
                        "threshold": threshold,
                        "condition": _condition_text(c),
                        "holds": c.holds(values),
                        "fired": rule.id in fired,
                    }
                )
    return out


def profile_model(
    model: nn.Module | Callable[[], nn.Module] | str | None,
    data: Dataset | str,
    *,
    device: str = "auto",
    batch_size: int = 128,
    budget: str | float | None = None,
    batches: int = 8,
    seed: int = 0,
    epochs: int = 5,
    data_dir: str | None = None,
    task: Task | None = None,
) -> MeasuredProfile:
    """Measure ``model`` on ``data`` (see the module docstring for what and how).

    ``model``: an ``nn.Module`` (never modified: a copy is measured), a factory,
    ``"module:factory"``, or ``None`` for the seed MLP; ``data``: a
    :class:`~advisor.data.dataset.Dataset` or a dataset name (``mnist-5k``, ...). ``batch_size``:
    the batch you train with (the noise scale splits it into ``NOISE_SPLIT`` sub-batches);
    ``batches``: how many minibatches the gradient statistics average over; ``budget``
    (``"10m"``, seconds): turned into the trials of ``epochs`` epochs it allows. Every
    random source is seeded by ``seed``; the model is built fresh under it. ``task``: what
    the model learns (:class:`~advisor.data.task.Task`); the gradient statistics and the
    step time use its loss. Default: classification with cross-entropy.
    """

    for name, value in (("batch_size", batch_size), ("batches", batches), ("epochs", epochs)):
        positive_int(name, value)
    budget_s = None if budget is None else parse_duration(budget, "budget")
    factory, model_name = resolve_model_arg(model)
    dev = resolve_device(device)
    ds = as_dataset(data, seed, data_dir).to(dev)
    net = build(factory, ds, seed).to(dev)
    task = task_for(factory, task)
    check_model_task(net, ds, task)
    loss_fn = task.loss_fn()
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    sparse = bool(sparse_embeddings(net))
    convexity, convexity_reason = convexity_of(net)
    with seeded(seed, dev):  # dropout draws from the global generator: fork it
        stats = _gradient_stats(net, ds, batch_size, batches, seed, loss_fn)
        layout = model_layout(net, ds.x_train[:2])  # after the stats: they check the forward
    gradients, gradients_reason = classify_gradients(stats.quantities)
    noise_scale = None
    if stats.noise:
        b = (
            stats.noise["trace_sigma"] / stats.noise["grad_sq"]
            if stats.noise["grad_sq"] > 0
            else -1.0
        )
        noise_scale = float(f"{b:.4g}") if math.isfinite(b) and b > 0 else None
    samples = int(ds.x_train.shape[0])
    suggested = None
    if noise_scale is not None:
        suggested = int(min(max(1, 2 ** round(math.log2(noise_scale))), samples))
    with seeded(seed, dev):
        step_s = _step_time(build(factory, ds, seed).to(dev), ds, min(batch_size, samples), loss_fn)
    member_s = _member_step_time(ds, batch_size) if factory is None else None
    steps = steps_per_epoch(samples, batch_size)
    trial_s = epochs * steps * (member_s if member_s is not None else step_s)
    # a Profile holds counts >= 1: a budget too short for one trial still says "1"
    trials = None if budget_s is None else max(1, int(budget_s // max(trial_s, 1e-9)))
    sizes = {n: info.memory_bytes(params, layout) for n, info in OPTIMIZERS.items()}
    return MeasuredProfile(
        model=model_name,
        dataset=ds.name,
        device=str(dev),
        params=params,
        samples=samples,
        memory=device_memory_bytes(dev),
        optimizer_memory=MappingProxyType(sizes),
        convexity=convexity,
        convexity_reason=convexity_reason,
        gradients=gradients,
        gradients_reason=gradients_reason,
        gradient_norms=MappingProxyType(stats.norms),
        gradient_quantities=MappingProxyType(stats.quantities),
        noise_scale=noise_scale,
        noise=MappingProxyType(stats.noise),
        suggested_batch_size=suggested,
        batch_size=batch_size,
        batches=batches,
        step_s=step_s,
        member_step_s=member_s,
        steps_per_epoch=steps,
        epochs=epochs,
        budget=budget_s,
        trials=trials,
        domain="vision" if ds.name in _VISION else "unknown",
        sparse_gradients=sparse,
        layout=layout,
        model_kind=model_kind(net, layout),
    )
