"""Rules as data: load ``rules/*.toml``, validate them against a schema, evaluate conditions.

A rule says when it fires (``when.all`` / ``when.any`` / ``when.none`` lists of
``{field, op, value}`` over :data:`advisor.knowledge.profile.FIELDS`), what it does (``scores`` per
optimizer, ``over_memory``, ``search_space`` changes, ``advice``), why (``reason``) and where
that comes from (``source``); ``examples.match`` / ``examples.no_match`` are its own test
cases. Nothing is ever ``eval``-ed: operators come from a closed set. The format is described
in ``docs/rules.md`` and at the top of ``rules/defaults.toml``.

>>> rules = load_rules()
>>> fired = rules.evaluate(Profile(params=650, samples=1797, convexity="convex"))
>>> "convex-small-full-batch" in [f.id for f in fired]
True
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import advisor
from advisor.core.errors import (
    AdvisorError,
    InvalidValueError,
    RuleError,
    did_you_mean,
    unknown_name,
)
from advisor.core.units import parse_bytes, parse_count, parse_duration
from advisor.knowledge.optimizers import OPTIMIZERS, Range, list_optimizers
from advisor.knowledge.profile import FIELDS, FieldSpec, Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "between")
_ORDERING = ("lt", "le", "gt", "ge", "between")
#: How each operator reads in explanations.
OPERATOR_SYMBOLS = {
    "eq": "=",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "in": "in",
    "not_in": "not in",
    "between": "in",
}
#: Topics of advice, in the order they are shown.
ADVICE_TOPICS = (
    "tuning",
    "lr_schedule",
    "warmup",
    "batch_size",
    "weight_decay",
    "gradient_clipping",
    "initialization",
    "memory",
    "problem",
)
#: Search-space operations, in the order they are applied (all rules' ``set``, then ...).
SPACE_OPS = ("set", "scale", "scale_with", "narrow", "fix")
#: Hyperparameters a rule may change: the registry's search-space keys.
SPACE_PARAMS = tuple(sorted({k for info in OPTIMIZERS.values() for k in info.search_space}))
FAMILIES = tuple(sorted({info.family for info in OPTIMIZERS.values()}))

_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_RULE_KEYS = (
    "id",
    "enabled",
    "when",
    "scores",
    "over_memory",
    "search_space",
    "advice",
    "reason",
    "source",
    "examples",
    "validated",
)
_SPACE_KEYS = ("optimizer", "param", *SPACE_OPS, "log", "reference", "exponent")


def builtin_rules_dir() -> Path:
    """Where the built-in rules live: ``advisor/rulefiles`` in a wheel, else ``<repo>/rules``."""

    package = Path(advisor.__file__).parent
    packaged = package / "rulefiles"
    return packaged if packaged.is_dir() else package.parent / "rules"


class _Problem(Exception):
    """A schema violation at ``where`` (e.g. ``when.all[1].op``); becomes a RuleError."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


# ---------------------------------------------------------------- values and conditions


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Problem(where, f"must be a finite number, got {value!r}")
    return float(value)


_PARSERS = {"count": parse_count, "duration": parse_duration, "bytes": parse_bytes}


def _field_value(spec: FieldSpec, value: object, where: str) -> Any:
    """One value of ``spec``'s kind, normalized like the profile stores it (``'10m'`` → 600.0)."""
    parser = _PARSERS.get(spec.kind)
    if parser is not None:
        if not isinstance(value, (str, int, float)):
            raise _Problem(where, f"{spec.name} takes a number or a size string, got {value!r}")
        try:
            return parser(value, spec.name)
        except InvalidValueError as exc:
            raise _Problem(where, str(exc)) from None
    if spec.kind == "ratio":
        return _number(value, where)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise _Problem(where, f"{spec.name} is true or false, got {value!r}")
        return value
    device = spec.kind == "device" and isinstance(value, str) and re.fullmatch(r"cuda:\d+", value)
    if not isinstance(value, str) or (value not in spec.choices and not device):
        raise _Problem(
            where,
            f"{spec.name} takes one of {', '.join(spec.choices)}, got {value!r}."
            f"{did_you_mean(str(value), spec.choices)}",
        )
    return value


@dataclass(frozen=True)
class Condition:
    """``field op value``; ``value`` is normalized (seconds, bytes, counts; tuples for lists)."""

    field: str
    op: str
    value: Any

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition is true; a condition on an unknown (None) field is false."""
        actual = values.get(self.field)
        if actual is None:
            return False
        op, v = self.op, self.value
        if op == "eq":
            return bool(actual == v)
        if op == "ne":
            return bool(actual != v)
        if op == "in":
            return actual in v
        if op == "not_in":
            return actual not in v
        if op == "between":
            return bool(v[0] <= actual <= v[1])
        return bool({"lt": actual < v, "le": actual <= v, "gt": actual > v, "ge": actual >= v}[op])

    def describe(self, values: Mapping[str, Any] | None = None) -> str:
        """``samples <= 100k``; with ``values``: ``samples 55k <= 100k``."""
        spec = FIELDS[self.field]
        if isinstance(self.value, tuple):
            shown = "[" + ", ".join(spec.format(v) for v in self.value) + "]"
        else:
            shown = spec.format(self.value)
        actual = "" if values is None else f" {spec.format(values.get(self.field))}"
        return f"{self.field}{actual} {OPERATOR_SYMBOLS[self.op]} {shown}"

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"field": self.field, "op": self.op, "value": value}


_OP_HINTS = {
    "==": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "le",
    ">": "gt",
    ">=": "ge",
    "lte": "le",
    "gte": "ge",
    "nin": "not_in",
    "notin": "not_in",
    "range": "between",
}


def _op_hint(op: object) -> str:
    hint = _OP_HINTS.get(str(op))
    return f" Did you mean {hint!r}?" if hint else did_you_mean(str(op), OPERATORS)


def _condition(raw: object, where: str) -> Condition:
    if not isinstance(raw, dict):
        raise _Problem(where, "a condition is a table { field = ..., op = ..., value = ... }")
    _check_keys(raw, ("field", "op", "value"), where)
    for key in ("field", "op", "value"):
        if key not in raw:
            raise _Problem(where, f"the condition has no {key!r}")
    name, op, value = raw["field"], raw["op"], raw["value"]
    if name not in FIELDS:
        raise _Problem(
            f"{where}.field",
            f"unknown profile field {name!r}.{did_you_mean(str(name), FIELDS)} "
            f"Fields: {', '.join(FIELDS)}",
        )
    if op not in OPERATORS:
        raise _Problem(
            f"{where}.op",
            f"unknown operator {op!r}.{_op_hint(op)} Operators: {', '.join(OPERATORS)}",
        )
    spec = FIELDS[name]
    if op in _ORDERING and not spec.numeric:
        raise _Problem(f"{where}.op", f"{op!r} needs a numeric field; {name!r} is {spec.kind}")
    if op in ("in", "not_in", "between"):
        if not isinstance(value, list) or not value or (op == "between" and len(value) != 2):
            need = "[low, high]" if op == "between" else "a non-empty list"
            raise _Problem(f"{where}.value", f"{op!r} takes {need}, got {value!r}")
        items = tuple(_field_value(spec, v, f"{where}.value[{i}]") for i, v in enumerate(value))
        if op == "between" and items[0] > items[1]:
            raise _Problem(f"{where}.value", f"between needs low <= high, got {value!r}")
        return Condition(name, op, items)
    return Condition(name, op, _field_value(spec, value, f"{where}.value"))


@dataclass(frozen=True)
class When:
    """Fires when every ``all`` holds, at least one ``any`` holds (if given), no ``none`` holds."""

    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()
    none: tuple[Condition, ...] = ()

    def holds(self, values: Mapping[str, Any]) -> bool:
        return (
            all(c.holds(values) for c in self.all)
            and (not self.any or any(c.holds(values) for c in self.any))
            and not any(c.holds(values) for c in self.none)
        )

    def because(self, values: Mapping[str, Any]) -> tuple[str, ...]:
        """The conditions that made the rule fire, with the profile's values."""
        held = [c.describe(values) for c in self.all]
        held += [c.describe(values) for c in self.any if c.holds(values)]
        held += [
            f"{c.field} unknown" if values.get(c.field) is None else f"not {c.describe(values)}"
            for c in self.none
        ]
        return tuple(held) or ("always",)

    def to_dict(self) -> dict[str, Any]:
        return {k: [c.to_dict() for c in getattr(self, k)] for k in ("all", "any", "none")}


# ---------------------------------------------------------------- effects


def _targets(raw: object, where: str) -> tuple[str, ...]:
    """Registry names for a target: a name, an fnmatch pattern (``*adam``) or ``family:adam``."""
    if not isinstance(raw, str):
        raise _Problem(where, f"an optimizer target is a string, got {raw!r}")
    if raw.startswith("family:"):
        family = raw.removeprefix("family:")
        if family not in FAMILIES:
            raise _Problem(
                where,
                f"unknown optimizer family {family!r}.{did_you_mean(family, FAMILIES)} "
                f"Families: {', '.join(FAMILIES)}",
            )
        return tuple(n for n, info in OPTIMIZERS.items() if info.family == family)
    if any(ch in raw for ch in "*?["):
        names = list_optimizers(raw)
        if not names:
            raise _Problem(where, f"the pattern {raw!r} matches no optimizer")
        return tuple(names)
    if raw not in OPTIMIZERS:
        raise _Problem(where, str(unknown_name("optimizer", raw, OPTIMIZERS)))
    return (raw,)


def _scores(raw: object, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise _Problem(where, "scores is a table { optimizer = delta, ... }")
    out: dict[str, float] = {}
    # patterns and families first, so that a plain name in the same table overrides them
    for key in sorted(raw, key=lambda k: k in OPTIMIZERS):
        delta = _number(raw[key], f"{where}.{key}")
        for name in _targets(key, f"{where}.{key}"):
            out[name] = delta
    return {name: out[name] for name in OPTIMIZERS if name in out}


def _round(x: float) -> float:
    return float(f"{x:.6g}")


@dataclass(frozen=True)
class SpaceEffect:
    """A change to one hyperparameter's search range for some optimizers.

    ``op`` is ``set`` (replace by ``[low, high]``), ``scale`` (multiply by ``factor``),
    ``scale_with`` (multiply by ``(profile[field] / reference) ** exponent``; nothing when
    the field is unknown), ``narrow`` (intersect with ``[low, high]``; if they are disjoint
    the rule's range wins) or ``fix`` (a single point: the recommended default).
    """

    optimizers: tuple[str, ...]
    param: str
    op: str
    low: float | None = None
    high: float | None = None
    log: bool | None = None
    factor: float | None = None
    field: str | None = None
    reference: float | None = None
    exponent: float = 1.0
    targets: tuple[str, ...] = ()

    def scale_factor(self, values: Mapping[str, Any]) -> float | None:
        """The factor ``scale``/``scale_with`` multiply by, or None when it does not apply."""
        if self.op == "scale":
            return self.factor
        if self.op == "scale_with" and self.field and self.reference:
            value = values.get(self.field)
            return None if value is None else float((value / self.reference) ** self.exponent)
        return None

    def apply(self, current: Range, values: Mapping[str, Any], default: float, rule: str) -> Range:
        """The new range (``default`` is the optimizer's recommended value, for ``fix``)."""
        parts = [] if current.source == "registry" else current.source.split("+")
        source = "+".join(parts if rule in parts else [*parts, rule])
        log = current.log if self.log is None else self.log
        if self.op == "set" and self.low is not None and self.high is not None:
            return Range(self.low, self.high, log=log, source=source)
        if self.op in ("scale", "scale_with"):
            f = self.scale_factor(values)
            if f is None or f == 1.0:
                return current
            return Range(_round(current.low * f), _round(current.high * f), log=log, source=source)
        if self.op == "narrow" and self.low is not None and self.high is not None:
            low, high = max(current.low, self.low), min(current.high, self.high)
            if low > high:  # disjoint: the rule's range wins
                low, high = self.low, self.high
            return Range(low, high, log=log, source=source)
        if self.op == "fix":
            return Range(default, default, log=log, source=source)
        return current

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"optimizer": list(self.targets), "param": self.param}
        if self.op in ("set", "narrow"):
            out[self.op] = [self.low, self.high]
        elif self.op == "scale":
            out["scale"] = self.factor
        elif self.op == "scale_with":
            out.update(scale_with=self.field, reference=self.reference, exponent=self.exponent)
        else:
            out["fix"] = True
        if self.log is not None:
            out["log"] = self.log
        return out


#: Hyperparameters whose ranges are any positive numbers (the others are decay rates in [0, 1)).
_POSITIVE = ("lr", "d_coef")


def _pair(raw: object, param: str, where: str) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise _Problem(where, f"takes [low, high], got {raw!r}")
    low, high = _number(raw[0], where), _number(raw[1], where)
    if low > high:
        raise _Problem(where, f"needs low <= high, got {raw!r}")
    if param in _POSITIVE and low <= 0:
        raise _Problem(where, f"a {param} range needs low > 0, got {raw!r}")
    if param not in _POSITIVE and not 0 <= low <= high < 1:
        raise _Problem(where, f"a {param} range lies in [0, 1), got {raw!r}")
    return low, high


def _space_effect(raw: object, where: str) -> SpaceEffect:
    if not isinstance(raw, dict):
        raise _Problem(where, "a search_space entry is a table { optimizer, param, <op> }")
    _check_keys(raw, _SPACE_KEYS, where)
    targets_raw = raw.get("optimizer", "*")
    if not isinstance(targets_raw, (str, list)) or not targets_raw:
        raise _Problem(f"{where}.optimizer", "a target or a non-empty list of targets")
    targets = (targets_raw,) if isinstance(targets_raw, str) else tuple(targets_raw)
    names: list[str] = []
    for i, t in enumerate(targets):
        for name in _targets(t, f"{where}.optimizer[{i}]"):
            if name not in names:
                names.append(name)
    param = raw.get("param")
    if param not in SPACE_PARAMS:
        raise _Problem(
            f"{where}.param",
            f"unknown hyperparameter {param!r}.{did_you_mean(str(param), SPACE_PARAMS)} "
            f"Choose one of: {', '.join(SPACE_PARAMS)}",
        )
    explicit = [t for t in targets if t in OPTIMIZERS]
    for name in explicit:
        if param not in OPTIMIZERS[name].search_space:
            raise _Problem(f"{where}.param", f"optimizer {name!r} has no hyperparameter {param!r}")
    names = [n for n in names if param in OPTIMIZERS[n].search_space]
    if not names:
        raise _Problem(f"{where}.optimizer", f"no targeted optimizer has {param!r}")
    ops = [op for op in SPACE_OPS if op in raw]
    if len(ops) != 1:
        raise _Problem(where, f"give exactly one of {', '.join(SPACE_OPS)}; got {ops or 'none'}")
    op = ops[0]
    kw: dict[str, Any] = {}
    if op in ("set", "narrow"):
        kw["low"], kw["high"] = _pair(raw[op], param, f"{where}.{op}")
    elif op == "scale":
        kw["factor"] = _number(raw["scale"], f"{where}.scale")
    elif op == "scale_with":
        name = raw["scale_with"]
        if name not in FIELDS or not FIELDS[name].numeric:
            numeric = [n for n, s in FIELDS.items() if s.numeric]
            raise _Problem(
                f"{where}.scale_with",
                f"scale_with needs a numeric profile field, got {name!r}."
                f"{did_you_mean(str(name), numeric)}",
            )
        if "reference" not in raw:
            raise _Problem(where, "scale_with needs a reference value (e.g. reference = 128)")
        kw["field"] = name
        kw["reference"] = _number(raw["reference"], f"{where}.reference")
        kw["exponent"] = _number(raw.get("exponent", 1.0), f"{where}.exponent")
    elif raw["fix"] is not True:
        raise _Problem(f"{where}.fix", "fix takes true")
    if op in ("scale", "scale_with") and param not in _POSITIVE:
        raise _Problem(f"{where}.param", "scaling applies to 'lr' and 'd_coef' only")
    if (kw.get("factor") is not None and kw["factor"] <= 0) or kw.get("reference", 1.0) <= 0:
        raise _Problem(where, "scale factors and references must be positive")
    if "log" in raw:
        if not isinstance(raw["log"], bool) or op != "set":
            raise _Problem(f"{where}.log", "log = true|false goes with set only")
        kw["log"] = raw["log"]
    return SpaceEffect(tuple(names), str(param), op, targets=targets, **kw)


@dataclass(frozen=True)
class AdviceSpec:
    """A piece of technique advice a rule gives when it fires."""

    topic: str
    text: str


def _advice(raw: object, where: str) -> tuple[AdviceSpec, ...]:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]" if isinstance(raw, list) else where
        if not isinstance(item, dict):
            raise _Problem(w, "advice is a table { topic = ..., text = ... }")
        _check_keys(item, ("topic", "text"), w)
        topic, text = item.get("topic"), item.get("text")
        if topic not in ADVICE_TOPICS:
            raise _Problem(
                f"{w}.topic",
                f"unknown advice topic {topic!r}.{did_you_mean(str(topic), ADVICE_TOPICS)} "
                f"Topics: {', '.join(ADVICE_TOPICS)}",
            )
        out.append(AdviceSpec(str(topic), _text(text, f"{w}.text")))
    return tuple(out)


# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """One rule, validated; ``scores`` maps registry names to score deltas."""

    id: str
    reason: str
    source: str
    when: When = field(default_factory=When)
    scores: Mapping[str, float] = field(default_factory=dict)
    over_memory: float | None = None
    search_space: tuple[SpaceEffect, ...] = ()
    advice: tuple[AdviceSpec, ...] = ()
    examples_match: tuple[Mapping[str, Any], ...] = ()
    examples_no_match: tuple[Mapping[str, Any], ...] = ()
    file: str = ""
    enabled: bool = True  # a disabled rule never fires (use it to switch a built-in rule off)
    #: the validation scenarios (benchmarks/scenarios) whose truth checks this rule; empty:
    #: unvalidated (no scenario exercises it; docs/VALIDATION.md lists it as such)
    validated: tuple[str, ...] = ()

    @property
    def is_validated(self) -> bool:
        return bool(self.validated)

    def fires(self, profile: Profile) -> bool:
        return self.enabled and self.when.holds(profile.values())

    def describe(self) -> str:
        """The rule for people, one field a line (``advisor rules show``)."""
        lines = [f"{self.id}  ({self.file})", ""]
        if not self.enabled:
            lines.append("enabled: false (never fires)")
        for key in ("all", "any", "none"):
            conditions = getattr(self.when, key)
            if conditions:
                lines.append(f"when {key}:")
                lines += [f"  {c.describe()}" for c in conditions]
        if not (self.when.all or self.when.any or self.when.none):
            lines.append("when: always")
        if self.scores:
            lines.append("scores: " + ", ".join(f"{k} {v:+g}" for k, v in self.scores.items()))
        if self.over_memory is not None:
            lines.append(f"over_memory: {self.over_memory:+g} for each optimizer that does not fit")
        lines += [f"search_space: {json.dumps(e.to_dict())}" for e in self.search_space]
        lines += [f"advice ({a.topic}): {a.text}" for a in self.advice]
        lines += [f"reason: {self.reason}", f"source: {self.source}"]
        lines.append(
            f"validated: {', '.join(self.validated)}"
            if self.validated
            else "validated: UNVALIDATED (no validation scenario exercises this rule; "
            "docs/VALIDATION.md)"
        )
        for kind, examples in (
            ("match", self.examples_match),
            ("no_match", self.examples_no_match),
        ):
            lines += [f"example {kind}: {json.dumps(dict(ex))}" for ex in examples]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "file": self.file,
            "enabled": self.enabled,
            "when": self.when.to_dict(),
            "scores": dict(self.scores),
            "over_memory": self.over_memory,
            "search_space": [e.to_dict() for e in self.search_space],
            "advice": [{"topic": a.topic, "text": a.text} for a in self.advice],
            "reason": self.reason,
            "source": self.source,
            "validated": list(self.validated),
            "examples": {
                "match": [dict(e) for e in self.examples_match],
                "no_match": [dict(e) for e in self.examples_no_match],
            },
        }


@dataclass(frozen=True)
class FiredRule:
    """A rule that fired for a profile, and the conditions that made it fire."""

    rule: Rule
    because: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.rule.id

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.id, "because": list(self.because), "source": self.rule.source}


def _check_keys(raw: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in raw:
        if key not in allowed:
            at = f"{where}.{key}" if where else key
            raise _Problem(
                at,
                f"unknown key {key!r}.{did_you_mean(key, allowed)} Allowed: {', '.join(allowed)}",
            )


def _text(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _Problem(where, "must be a non-empty string")
    return " ".join(raw.split())


def _examples(raw: object, key: str) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(raw, list):
        raise _Problem(f"examples.{key}", "a list of profile tables, e.g. [{ params = '1M' }]")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _Problem(f"examples.{key}[{i}]", "a profile table, e.g. { params = '1M' }")
        try:
            Profile.from_dict(item)
        except AdvisorError as exc:
            raise _Problem(f"examples.{key}[{i}]", str(exc)) from None
        out.append(MappingProxyType(dict(item)))
    return tuple(out)


def _validated(raw: Any) -> tuple[str, ...]:
    """``validated``: the names of the validation scenarios that check the rule."""
    names = _list(raw, "validated")
    bad = [n for n in names if not isinstance(n, str) or not _ID.fullmatch(n)]
    if bad:
        raise _Problem(
            "validated", f"validated lists scenario names (lowercase-with-dashes), got {bad[0]!r}"
        )
    return tuple(names)


def _parse_rule(raw: Mapping[str, Any], file: str) -> Rule:
    _check_keys(raw, _RULE_KEYS, "")
    rid = raw.get("id")
    if not isinstance(rid, str) or not _ID.fullmatch(rid):
        raise _Problem("id", f"a rule id is lowercase-words-with-dashes, got {rid!r}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _Problem("enabled", f"enabled is true or false, got {enabled!r}")
    when_raw = raw.get("when", {})
    if not isinstance(when_raw, dict):
        raise _Problem("when", "when is a table with all / any / none lists")
    _check_keys(when_raw, ("all", "any", "none"), "when")
    when = When(
        **{
            k: tuple(_condition(c, f"when.{k}[{i}]") for i, c in enumerate(_list(v, f"when.{k}")))
            for k, v in when_raw.items()
        }
    )
    space = tuple(
        _space_effect(e, f"search_space[{i}]")
        for i, e in enumerate(_list(raw.get("search_space", []), "search_space"))
    )
    examples = raw.get("examples", {})
    if not isinstance(examples, dict):
        raise _Problem("examples", "examples is a table with match / no_match lists")
    _check_keys(examples, ("match", "no_match"), "examples")
    rule = Rule(
        id=rid,
        reason=_text(raw.get("reason", "" if enabled else "disabled"), "reason"),
        source=_text(raw.get("source", "" if enabled else "-"), "source"),
        when=when,
        scores=MappingProxyType(_scores(raw.get("scores", {}), "scores")),
        over_memory=None
        if raw.get("over_memory") is None
        else _number(raw["over_memory"], "over_memory"),
        search_space=space,
        advice=_advice(raw["advice"], "advice") if "advice" in raw else (),
        examples_match=_examples(examples.get("match", []), "match"),
        examples_no_match=_examples(examples.get("no_match", []), "no_match"),
        file=file,
        enabled=enabled,
        validated=_validated(raw.get("validated", [])),
    )
    if enabled and not (
        rule.scores or rule.over_memory is not None or rule.search_space or rule.advice
    ):
        raise _Problem(
            "scores", "the rule has no effect: give scores, over_memory, search_space or advice"
        )
    return rule


def _list(raw: object, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise _Problem(where, f"must be a list, got {type(raw).__name__}")
    return raw


def _rule_label(raw: object, index: int) -> str:
    rid = raw.get("id") if isinstance(raw, dict) else None
    return repr(rid) if isinstance(rid, str) else f"#{index + 1} (no id)"


def _read(path: Path) -> list[Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise RuleError(f"{path}: cannot read the rule file: {exc.strerror}") from None
    for key in data:
        if key != "rule":
            raise RuleError(
                f"{path}: unknown top-level key {key!r}.{did_you_mean(key, ['rule'])} "
                "Rules are [[rule]] tables."
            )
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise RuleError(f"{path}: 'rule' must be an array of tables ([[rule]])")
    return rules


def _parse_one(raw: object, index: int, path: Path) -> Rule:
    try:
        if not isinstance(raw, dict):
            raise _Problem("rule", "a rule is a table ([[rule]])")
        return _parse_rule(raw, str(path))
    except _Problem as p:
        raise RuleError(f"{path}: rule {_rule_label(raw, index)}: {p.where}: {p.message}") from None


@lru_cache(maxsize=256)
def _load_file_cached(path: Path, mtime_ns: int, size: int) -> tuple[Rule, ...]:
    return tuple(_parse_one(raw, i, path) for i, raw in enumerate(_read(path)))


def load_file(path: str | Path) -> tuple[Rule, ...]:
    """The rules of one TOML file, validated (cached while the file is unchanged)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise RuleError(f"{p}: no such rule file") from None
    return _load_file_cached(p, st.st_mtime_ns, st.st_size)


def _files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(p.glob("*.toml"))
    if p.is_file():
        return [p]
    raise RuleError(f"{p}: no such rule directory or file")


class RuleSet:
    """Rules in evaluation order (files by name, rules in file order)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._by_id = {r.id: r for r in self.rules}

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._by_id

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; an unknown id is an error that suggests close ids."""
        if rule_id not in self._by_id:
            raise unknown_name("rule", rule_id, self._by_id)
        return self._by_id[rule_id]

    def evaluate(self, profile: Profile) -> list[FiredRule]:
        """The rules that fire for ``profile``, in order, with the conditions that held."""
        values = profile.values()
        return [
            FiredRule(r, r.when.because(values))
            for r in self.rules
            if r.enabled and r.when.holds(values)
        ]


def load_dir(path: str | Path) -> RuleSet:
    """The rules of one directory (or one file); duplicate ids are an error."""
    rules: dict[str, Rule] = {}
    for file in _files(path):
        for rule in load_file(file):
            if rule.id in rules:
                raise RuleError(
                    f"{file}: rule {rule.id!r}: id: duplicate id, also in {rules[rule.id].file}"
                )
            rules[rule.id] = rule
    return RuleSet(rules.values())


def load_rules(extra_dirs: Iterable[str | Path] = ()) -> RuleSet:
    """The built-in rules, then each extra directory (or file) in turn.

    A rule whose id is already loaded replaces that rule in place; a new id is appended.
    """
    rules = {r.id: r for r in load_dir(builtin_rules_dir())}
    for extra in extra_dirs:
        for rule in load_dir(extra):
            rules[rule.id] = rule
    return RuleSet(rules.values())


def check_example(rule: Rule) -> list[str]:
    """Problems with a rule's own examples: a ``match`` that does not fire, a ``no_match`` that does."""
    problems = []
    for kind, examples, want in (
        ("match", rule.examples_match, True),
        ("no_match", rule.examples_no_match, False),
    ):
        for i, example in enumerate(examples):
            if rule.fires(Profile.from_dict(example)) != want:
                verb = "does not fire" if want else "fires"
                problems.append(
                    f"{rule.file}: rule {rule.id!r}: examples.{kind}[{i}]: the rule {verb} on "
                    f"{dict(example)}"
                )
    return problems


def check_rules(path: str | Path | None = None) -> list[str]:
    """Every problem in a rule directory (default: the built-in rules), one line each.

    Checks the schema of every rule (not stopping at the first bad one), duplicate ids,
    that every rule has at least one ``examples.match``, and that the examples behave.
    An empty list means all is well.
    """
    target = builtin_rules_dir() if path is None else Path(path)
    try:
        files = _files(target)
    except RuleError as exc:
        return [str(exc)]
    if not files:
        return [f"{target}: no *.toml rule files"]
    problems: list[str] = []
    seen: dict[str, str] = {}
    for file in files:
        try:
            raws = _read(file)
        except RuleError as exc:
            problems.append(str(exc))
            continue
        for i, raw in enumerate(raws):
            try:
                rule = _parse_one(raw, i, file)
            except RuleError as exc:
                problems.append(str(exc))
                continue
            if rule.id in seen:
                problems.append(
                    f"{file}: rule {rule.id!r}: id: duplicate id, also in {seen[rule.id]}"
                )
            seen[rule.id] = str(file)
            if not rule.enabled:
                continue
            if not rule.examples_match:
                problems.append(
                    f"{file}: rule {rule.id!r}: examples.match: give at least one profile it fires on"
                )
            problems.extend(check_example(rule))
    return problems
