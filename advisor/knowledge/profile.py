"""What is known about a training problem: the four classic selection criteria and a few more.

A :class:`Profile` holds model size (``params``), data size (``samples``), loss convexity,
the compute budget (wall time, memory, device, training precision), the batch size, whether
gradients are sparse and how they behave, the kind of model (and, measured by
``advisor recommend --model``, the share of its parameters in hidden 2-D weights and in
embeddings), whether it trains from scratch or is fine-tuned, and whether the training
length is open-ended. Sizes are accepted in human form (``118k``, ``1.5M``, ``1e9``,
``10m``, ``2h``, ``8GB``) and stored as numbers: counts as ``int``, the budget in seconds,
memory in bytes. Anything unknown is ``None``; a rule condition on an unknown field never fires.

>>> p = Profile(params="118k", samples=55_000, convexity="nonconvex", budget="10m")
>>> p.params, p.budget, p.derived()["samples_per_param"]
(118000, 600.0, 0.4661)

:data:`FIELDS` is the schema the rules engine validates conditions against: every field a
rule may test, with its kind, its allowed values and whether it is derived.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from advisor.core.devices import DEVICE_CHOICES
from advisor.core.errors import InvalidValueError, did_you_mean
from advisor.core.units import (
    format_bytes,
    format_count,
    format_duration,
    parse_bytes,
    parse_count,
    parse_duration,
)
from advisor.knowledge.optimizers import PRECISION_BYTES

CONVEXITY_CHOICES = ("convex", "nonconvex", "unknown")
GRADIENTS_CHOICES = ("healthy", "exploding", "vanishing", "unknown")
DOMAIN_CHOICES = ("vision", "language", "tabular", "audio", "other", "unknown")
MODEL_KIND_CHOICES = ("mlp", "cnn", "transformer", "rnn", "embedding-heavy", "unknown")
TRAINING_CHOICES = ("from-scratch", "fine-tuning", "unknown")
PRECISION_CHOICES = tuple(PRECISION_BYTES)

#: Kinds of field values; the numeric ones allow the ordering operators.
NUMERIC_KINDS = ("count", "duration", "bytes", "ratio")
#: Accepted spellings that are not canonical choices.
_ALIASES = {
    "non-convex": "nonconvex",
    "non_convex": "nonconvex",
    "from_scratch": "from-scratch",
    "fine_tuning": "fine-tuning",
    "finetuning": "fine-tuning",
    "embedding_heavy": "embedding-heavy",
    "float32": "fp32",
    "bfloat16": "bf16",
}

Count = int | float | str | None


@dataclass(frozen=True)
class FieldSpec:
    """One field rule conditions may test: ``kind`` is count, duration (seconds), bytes,
    ratio (a float), choice, bool or device; derived fields are computed from the others."""

    name: str
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    derived: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS

    def format(self, value: Any) -> str:
        """A value of this field for people: ``118k``, ``10m00s``, ``8GB``, ``0.466``."""
        if value is None:
            return "unknown"
        if self.kind == "count":
            return format_count(value)
        if self.kind == "duration":
            return format_duration(value)
        if self.kind == "bytes":
            return format_bytes(value)
        if self.kind == "ratio":
            return f"{value:.3g}"
        if isinstance(value, bool):
            return str(value).lower()
        return str(value)


_SPECS = (
    FieldSpec("params", "count", "trainable parameters of the model (118k, 1.5M, 1e9)"),
    FieldSpec("samples", "count", "training examples (55k)"),
    FieldSpec("convexity", "choice", "shape of the loss", CONVEXITY_CHOICES),
    FieldSpec("budget", "duration", "wall-clock budget for training and tuning (90s, 10m, 2h)"),
    FieldSpec("memory", "bytes", "memory available for training (8GB, 16GiB)"),
    FieldSpec("device", "device", "where training runs", DEVICE_CHOICES),
    FieldSpec("batch_size", "count", "minibatch size"),
    FieldSpec("sparse_gradients", "bool", "gradients are sparse (embeddings, sparse features)"),
    FieldSpec("gradients", "choice", "observed gradient behaviour", GRADIENTS_CHOICES),
    FieldSpec("trials", "count", "tuning budget in trials (training runs)"),
    FieldSpec("domain", "choice", "kind of data", DOMAIN_CHOICES),
    FieldSpec(
        "precision",
        "choice",
        "number format of weights, gradients and optimizer state in training",
        PRECISION_CHOICES,
    ),
    FieldSpec("model_kind", "choice", "kind of model", MODEL_KIND_CHOICES),
    FieldSpec("training", "choice", "trained from scratch or fine-tuned", TRAINING_CHOICES),
    FieldSpec(
        "hidden_share", "ratio", "share of parameters in hidden 2-D weights (Muon's part, 0..1)"
    ),
    FieldSpec("embedding_share", "ratio", "share of parameters in embedding tables (0..1)"),
    FieldSpec("open_ended", "bool", "training length unknown in advance (no schedule can end it)"),
    FieldSpec("memory_per_param", "ratio", "memory / params, in bytes per parameter", derived=True),
    FieldSpec(
        "state_room",
        "ratio",
        "optimizer-state tensors per parameter that fit beside the weights and gradients",
        derived=True,
    ),
    FieldSpec(
        "samples_per_param", "ratio", "samples / params (< 1: over-parameterized)", derived=True
    ),
    FieldSpec("batch_fraction", "ratio", "batch_size / samples (>= 1: full batch)", derived=True),
)

#: The schema of every field rule conditions may test (profile fields, then derived fields).
FIELDS: Mapping[str, FieldSpec] = MappingProxyType({s.name: s for s in _SPECS})


def _choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    text = _ALIASES.get(text, text)
    if not isinstance(value, str) or text not in choices:
        raise InvalidValueError(
            f"{name} must be one of {', '.join(choices)}; got {value!r}."
            f"{did_you_mean(text, choices)}"
        )
    return text


def _device(value: object) -> str:
    text = str(value).strip().lower()
    if not isinstance(value, str) or not (
        text in DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", text)
    ):
        raise InvalidValueError(
            f"device must be one of {', '.join(DEVICE_CHOICES)} or cuda:N; got {value!r}."
        )
    return text


def _share(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidValueError(f"{name} is a share between 0 and 1; got {value!r}.")
    return float(value)


def _optional(parse: Any, value: object, name: str) -> Any:
    return None if value is None else parse(value, name)


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None:
        return None
    return float(f"{num / den:.4g}")


@dataclass(frozen=True, init=False)
class Profile:
    """What is known about the problem; every argument is optional and keyword-only.

    ``params``, ``samples``, ``batch_size`` and ``trials`` take counts (``118k``, ``1e9``);
    ``budget`` a duration (``10m``; stored in seconds); ``memory`` a size (``8GB``; stored in
    bytes). ``convexity`` is convex, nonconvex or unknown; ``gradients`` healthy, exploding,
    vanishing or unknown; ``domain`` vision, language, tabular, audio, other or unknown;
    ``precision`` fp32 or bf16 (the number format of weights, gradients and optimizer
    state); ``model_kind`` mlp, cnn, transformer, rnn, embedding-heavy or unknown;
    ``training`` from-scratch, fine-tuning or unknown; ``hidden_share`` and
    ``embedding_share`` are shares (0..1) of the parameters; ``open_ended``: the training
    length is not known in advance.
    A bad value raises :class:`~advisor.core.errors.InvalidValueError` naming the field.
    """

    params: int | None = None
    samples: int | None = None
    convexity: str = "unknown"
    budget: float | None = None
    memory: int | None = None
    device: str = "auto"
    batch_size: int | None = None
    sparse_gradients: bool = False
    gradients: str = "unknown"
    trials: int | None = None
    domain: str = "unknown"
    precision: str = "fp32"
    model_kind: str = "unknown"
    training: str = "unknown"
    hidden_share: float | None = None
    embedding_share: float | None = None
    open_ended: bool = False

    def __init__(
        self,
        *,
        params: Count = None,
        samples: Count = None,
        convexity: str = "unknown",
        budget: Count = None,
        memory: Count = None,
        device: str = "auto",
        batch_size: Count = None,
        sparse_gradients: bool = False,
        gradients: str = "unknown",
        trials: Count = None,
        domain: str = "unknown",
        precision: str = "fp32",
        model_kind: str = "unknown",
        training: str = "unknown",
        hidden_share: float | None = None,
        embedding_share: float | None = None,
        open_ended: bool = False,
    ) -> None:
        for name, flag in (("sparse_gradients", sparse_gradients), ("open_ended", open_ended)):
            if not isinstance(flag, bool):
                raise InvalidValueError(f"{name} must be true or false; got {flag!r}.")
        values = {
            "params": _optional(parse_count, params, "params"),
            "samples": _optional(parse_count, samples, "samples"),
            "convexity": _choice(convexity, "convexity", CONVEXITY_CHOICES),
            "budget": _optional(parse_duration, budget, "budget"),
            "memory": _optional(parse_bytes, memory, "memory"),
            "device": _device(device),
            "batch_size": _optional(parse_count, batch_size, "batch_size"),
            "sparse_gradients": sparse_gradients,
            "gradients": _choice(gradients, "gradients", GRADIENTS_CHOICES),
            "trials": _optional(parse_count, trials, "trials"),
            "domain": _choice(domain, "domain", DOMAIN_CHOICES),
            "precision": _choice(precision, "precision", PRECISION_CHOICES),
            "model_kind": _choice(model_kind, "model_kind", MODEL_KIND_CHOICES),
            "training": _choice(training, "training", TRAINING_CHOICES),
            "hidden_share": _optional(_share, hidden_share, "hidden_share"),
            "embedding_share": _optional(_share, embedding_share, "embedding_share"),
            "open_ended": open_ended,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Build a profile from a mapping (e.g. a rule example or :meth:`to_dict` output).

        Unknown keys are an error; a ``derived`` key (as :meth:`to_dict` writes) is ignored.
        """
        names = [f.name for f in fields(cls)]
        for key in data:
            if key not in names and key != "derived":
                raise InvalidValueError(
                    f"unknown profile field {key!r}.{did_you_mean(key, names)} "
                    f"Choose from: {', '.join(names)}."
                )
        return cls(**{k: v for k, v in data.items() if k != "derived"})

    @property
    def bytes_per_number(self) -> int:
        """Bytes of one weight, gradient or state number in the training ``precision``."""
        return PRECISION_BYTES[self.precision]

    def derived(self) -> dict[str, float | None]:
        """Fields computed from the others (the one place they are computed)."""
        room = None
        if self.memory is not None and self.params:
            b = self.bytes_per_number
            room = _ratio(self.memory - 2 * self.params * b, self.params * b)
        return {
            "memory_per_param": _ratio(self.memory, self.params),
            "state_room": room,
            "samples_per_param": _ratio(self.samples, self.params),
            "batch_fraction": _ratio(self.batch_size, self.samples),
        }

    def values(self) -> dict[str, Any]:
        """Every field rules may test, derived ones included (``None`` when unknown)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(self.derived())
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields (seconds, bytes, counts) and ``derived``: the derived ones."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["derived"] = self.derived()
        return out

    def describe(self) -> str:
        """A one-line summary of the known fields: ``params 118k, samples 55k, ...``."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            spec = FIELDS[f.name]
            if value is None or value == f.default:
                continue
            if spec.kind == "bool":
                parts.append(f.name.replace("_", " "))
            else:
                parts.append(f"{f.name.replace('_', ' ')} {spec.format(value)}")
        return ", ".join(parts) if parts else "nothing known (defaults only)"
