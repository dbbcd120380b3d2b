"""Model references: what a user may pass as ``model``, resolved to a factory of fresh models.

A reference is ``None`` (the seed MLP), a factory, an ``nn.Module`` (copied for every run)
or ``"module:factory"``. The seed MLP resolves to ``None``: the population trainer serves
it, every other model trains on the reference trainer.

>>> resolve_model(SEED_MODEL) is None
True
>>> model_name(None)
'advisor.models:mnist_mlp'
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from advisor.core.errors import InvalidValueError, TrainingError
from advisor.core.refs import import_callable
from advisor.data.task import Task
from advisor.train.models import mnist_mlp

if TYPE_CHECKING:
    import torch
    from torch import nn

    from advisor.data.dataset import Dataset

#: How studies and reports name the seed MLP (the name it had before the layered packages,
#: kept so that saved studies and scripts still read the same).
SEED_MODEL = "advisor.models:mnist_mlp"
#: Every reference that means the seed MLP.
_SEED_ALIASES = (SEED_MODEL, "advisor.train.models:mnist_mlp", "advisor:mnist_mlp")


def resolve_model(
    model: Callable[[], nn.Module] | str | None,
) -> Callable[[], nn.Module] | None:
    """``None`` (the seed MLP), a factory, or ``"module:attribute"`` naming a factory."""
    if model is None or model is mnist_mlp or model in _SEED_ALIASES:
        return None  # the seed MLP: the population trainer handles it
    if callable(model):
        return model
    if not isinstance(model, str) or ":" not in model:
        raise InvalidValueError(
            "a model must be a callable or 'module:factory' "
            f"(e.g. 'examples.small_cnn:small_cnn'), got {model!r}."
        )
    return import_callable(model, "model", TrainingError)


def model_name(model: object) -> str:
    """How a report names ``model``: ``module:factory``, or the class name of a module."""
    if model is None or model is mnist_mlp or model in _SEED_ALIASES:
        return SEED_MODEL
    if isinstance(model, str):
        return model
    if not callable(model) or isinstance(model, type):
        return getattr(model, "__name__", type(model).__name__)
    return f"{getattr(model, '__module__', '?')}:{getattr(model, '__qualname__', repr(model))}"


def resolve_model_arg(
    model: nn.Module | Callable[[], nn.Module] | str | None,
) -> tuple[Callable[[], nn.Module] | None, str]:
    """``(factory, name)``; the factory is ``None`` for the seed MLP (population trainer).

    ``model``: ``None`` or :func:`advisor.train.models.mnist_mlp` (the seed MLP), an
    ``nn.Module`` (deep-copied by the factory, so the caller's model is never touched), a
    factory, or ``"module:factory"`` (:func:`resolve_model`; an import failure raises
    :class:`~advisor.core.errors.TrainingError`).
    """
    from torch import nn

    if isinstance(model, nn.Module):
        return (lambda: copy.deepcopy(model)), type(model).__name__
    if model is not None and not isinstance(model, str) and not callable(model):
        raise InvalidValueError(
            f"a model must be an nn.Module, a factory or 'module:factory', got {model!r}."
        )
    return resolve_model(model), model_name(model)


def task_for(factory: Callable[[], nn.Module] | None, task: Task | None) -> Task:
    """``task`` (classification by default); a task other than classification needs the
    user's model (``factory``), since the seed MLP (``None``) is a classifier."""
    task = task or Task("classification")
    if factory is None and task.kind != "classification":
        raise InvalidValueError(
            f"the seed MLP is a classifier; a {task.kind} needs your model (model=...)."
        )
    return task


def build(factory: Callable[[], nn.Module] | None, data: Dataset, seed: int) -> nn.Module:
    """A fresh model: ``torch.manual_seed(seed)``, then the factory (or the seed MLP)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if factory is None:
            return mnist_mlp(n_features=data.n_features, n_classes=data.n_classes)
        return factory()


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Random draws inside (dropout masks) come from ``seed``; the caller's generators are
    restored afterwards."""
    import torch

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
