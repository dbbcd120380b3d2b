"""Profile + rules + registry → a :class:`Recommendation`: ranked candidates and advice.

Every registered optimizer is scored: base score 0 plus the score deltas of the rules that
fired. Search ranges start from the registry and are changed by the rules' search-space
effects (all ``set`` first, then ``scale``, ``scale_with``, ``narrow``, ``fix``). Candidates
whose training memory exceeds the profile's memory rank after all those that fit; ties are
broken by registry order, so the same profile always gives the same ranking.

Training memory is weights + gradients + optimizer state in the profile's ``precision``,
the state counted per parameter tensor (:meth:`~advisor.knowledge.optimizers.OptimizerInfo.state_numbers`):
over a measured :class:`~advisor.knowledge.layout.ParamLayout` when one is given, else
over the assumed one (1024-square matrices; the profile's ``hidden_share`` of them hidden).

>>> rec = recommend(Profile(params=650, samples=1797, convexity="convex"))
>>> [c.optimizer for c in rec.candidates[:2]]
['nesterov', 'lbfgs']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from advisor import __version__
from advisor.core.checks import positive_int
from advisor.core.units import format_bytes
from advisor.knowledge.layout import ParamLayout
from advisor.knowledge.optimizers import OPTIMIZERS, Range, get_optimizer_info, torch_line
from advisor.knowledge.profile import Profile
from advisor.knowledge.rules import ADVICE_TOPICS, SPACE_OPS, FiredRule, Rule, load_rules
from advisor.knowledge.sparse import SparseSetup, sparse_setup

_BASE = ("base", "No rule mentions this optimizer; it keeps the base score 0.", "advisor")


@dataclass(frozen=True)
class Reason:
    """Why a candidate scored as it did: one fired rule, its score delta and what it changed."""

    rule: str
    text: str
    source: str
    delta: float | None = None  # None: the rule changed the search space only
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "text": self.text,
            "source": self.source,
            "delta": self.delta,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Advice:
    """Technique advice (``topic`` is one of :data:`advisor.knowledge.rules.ADVICE_TOPICS`)."""

    rule: str
    topic: str
    text: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "topic": self.topic, "text": self.text, "source": self.source}


@dataclass(frozen=True)
class Candidate:
    """One optimizer, scored and explained, with the search space tuning should use.

    ``search_space`` has the registry's keys (``lr`` and ``momentum`` or ``beta1``);
    ``hyperparameters`` are the recommended defaults (canonical names) and ``torch`` the
    matching paste-ready code (a few lines for some optimizers), or with sparse gradients
    the code of ``sparse`` (how it meets sparse gradient tensors; None for dense gradients).
    ``memory_bytes`` is the training memory for the profile's ``params`` (None when
    unknown) and ``state_bytes`` the optimizer state's part of it; ``fits_memory`` None when
    memory is unknown.
    """

    optimizer: str
    score: float
    reasons: tuple[Reason, ...]
    search_space: Mapping[str, Range]
    torch: str
    hyperparameters: Mapping[str, float]
    rank: int = 0
    memory_bytes: int | None = None
    fits_memory: bool | None = None
    sparse: SparseSetup | None = None
    state_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "optimizer": self.optimizer,
            "score": self.score,
            "reasons": [r.to_dict() for r in self.reasons],
            "search_space": {k: r.to_dict() for k, r in self.search_space.items()},
            "torch": self.torch,
            "hyperparameters": dict(self.hyperparameters),
            "memory_bytes": self.memory_bytes,
            "state_bytes": self.state_bytes,
            "fits_memory": self.fits_memory,
            "sparse": None if self.sparse is None else self.sparse.to_dict(),
        }


@dataclass(frozen=True)
class Recommendation:
    """Ranked candidates (best first), technique advice and the rules that fired."""

    profile: Profile
    candidates: tuple[Candidate, ...]
    advice: tuple[Advice, ...]
    fired: tuple[FiredRule, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:

        return {
            "profile": self.profile.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "advice": [a.to_dict() for a in self.advice],
            "fired": [f.to_dict() for f in self.fired],
            "version": __version__,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_text(self) -> str:
        """A ranked table, then each candidate's reasons and torch line, then the advice."""
        lines = [f"Profile: {self.profile.describe()}", ""]
        memory = self.profile.params is not None
        head = ("rank", "optimizer", "score", "lr", "momentum / beta1")
        rows = [(*head, _memory_head(self.profile)) if memory else head]
        rows += [
            (
                str(c.rank),
                c.optimizer + ("*" if c.fits_memory is False else ""),
                f"{c.score:.2f}",
                _knob(c),
                _second(c),
                *((_memory(c),) if memory else ()),
            )
            for c in self.candidates
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [
                row[0].rjust(widths[0]),
                row[1].ljust(widths[1]),
                row[2].rjust(widths[2]),
                row[3].ljust(widths[3]),
                *(cell.ljust(width) for cell, width in zip(row[4:], widths[4:])),
            ]
            lines.append("  ".join(cells).rstrip())
        if any(c.fits_memory is False for c in self.candidates):
            lines.append("* does not fit the memory budget")
        for c in self.candidates:
            lines += ["", f"{c.rank}. {c.optimizer}  (score {c.score:.2f})"]
            for r in c.reasons:
                delta = "" if r.delta is None else f"{r.delta:+.2f}"
                detail = f" ({r.detail})" if r.detail else ""
                lines.append(f"   {delta:>6}  {r.rule}: {r.text}{detail} [{r.source}]")
            if c.sparse is not None:
                lines.append(f"   sparse gradients: {c.sparse.advice}")
            lines += [f"   {line}" for line in c.torch.splitlines()]
        if self.advice:
            lines += ["", "Advice"]
            width = max(len(a.topic) for a in self.advice)
            for a in self.advice:
                lines.append(f"  {a.topic.ljust(width)}  {a.text} [{a.rule}; {a.source}]")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        lines = ["# Optimizer recommendation", "", f"Profile: {self.profile.describe()}", ""]
        memory = self.profile.params is not None
        extra = f" {_memory_head(self.profile)} |" if memory else ""
        lines += [
            f"| rank | optimizer | score | lr | momentum / beta1 |{extra}",
            "|---:|---|---:|---|---|" + ("---|" if memory else ""),
        ]
        for c in self.candidates:
            mark = " (does not fit in memory)" if c.fits_memory is False else ""
            lines.append(
                f"| {c.rank} | `{c.optimizer}`{mark} | {c.score:.2f} | "
                f"{_knob(c)} | {_second(c)} |" + (f" {_memory(c)} |" if memory else "")
            )
        for c in self.candidates:
            lines += ["", f"## {c.rank}. {c.optimizer} (score {c.score:.2f})", ""]
            for r in c.reasons:
                delta = "" if r.delta is None else f"**{r.delta:+.2f}** "
                detail = f" ({r.detail})" if r.detail else ""
                lines.append(f"- {delta}`{r.rule}`: {r.text}{detail} *({r.source})*")
            if c.sparse is not None:
                lines += ["", f"Sparse gradients: {c.sparse.advice}"]
            lines += ["", "```python", c.torch, "```"]
        if self.advice:
            lines += ["", "## Advice", ""]
            lines += [f"- **{a.topic}**: {a.text} *({a.rule}; {a.source})*" for a in self.advice]
        return "\n".join(lines) + "\n"


def printed_code(
    name: str,
    hyperparameters: Mapping[str, float],
    *,
    sparse_gradients: bool,
    layout: ParamLayout | None = None,
) -> tuple[str, SparseSetup | None]:
    """The code a candidate prints: its torch line (Muon's split from ``layout``, the measured
    model), or with sparse gradients its sparse setup."""
    if not sparse_gradients:
        return torch_line(name, hyperparameters, layout=layout), None
    setup = sparse_setup(name, hyperparameters)
    return setup.code, setup


def _range(r: Range) -> str:
    return f"{r.low:.3g} (fixed)" if r.low == r.high else f"{r.low:.3g}..{r.high:.3g}"


def _knob(c: Candidate) -> str:
    """The learning-rate range, or the range of a learning-rate-free method's knob."""
    knob = get_optimizer_info(c.optimizer).knob
    shown = _range(c.search_space[knob])
    return shown if knob == "lr" else f"{knob} {shown}"


def _memory_head(profile: Profile) -> str:
    budget = "" if profile.memory is None else f" / {format_bytes(profile.memory)}"
    return f"memory{budget} ({profile.precision}: weights, grads, state)"


def _memory(c: Candidate) -> str:
    if c.memory_bytes is None or c.state_bytes is None:
        return "-"
    return f"{format_bytes(c.memory_bytes)} (state {format_bytes(c.state_bytes)})"


def _second(c: Candidate) -> str:
    for name in ("momentum", "beta1"):
        if name in c.search_space:
            return f"{name} {_range(c.search_space[name])}"
    return "-"


def _clip(value: float, r: Range) -> float:
    return min(max(value, r.low), r.high)


class _Tally:
    """Score, reasons and search space of one optimizer while the effects are applied."""

    def __init__(self, name: str) -> None:
        info = OPTIMIZERS[name]
        self.name = name
        self.score = 0.0
        self.space: dict[str, Range] = dict(info.search_space)
        self.lr_factor = 1.0
        self.reasons: dict[str, list[Any]] = {}  # rule id -> [rule, delta | None, details]

    def note(self, rule: Rule, delta: float | None = None, detail: str = "") -> None:
        entry = self.reasons.setdefault(rule.id, [rule, None, []])
        if delta is not None:
            entry[1] = (entry[1] or 0.0) + delta
            self.score += delta
        if detail:
            entry[2].append(detail)

    def explained(self) -> tuple[Reason, ...]:
        out = [
            Reason(rid, rule.reason, rule.source, None if d is None else round(d, 6), "; ".join(ds))
            for rid, (rule, d, ds) in self.reasons.items()
        ]
        # biggest score contributions first, then search-space-only changes (stable sort)
        out.sort(key=lambda r: (r.delta is None, -abs(r.delta or 0.0)))
        return tuple(out) or (Reason(*_BASE, delta=0.0),)


def _apply_space(
    tallies: Mapping[str, _Tally], fired: list[FiredRule], values: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """Apply every search-space effect in phase order; return the recommended defaults."""
    defaults: dict[str, dict[str, float]] = {}
    for op in SPACE_OPS:
        if op == "fix":  # the last phase: defaults are the scaled lr, clipped into the ranges
            defaults = {name: _defaults(t) for name, t in tallies.items()}
        for f in fired:
            for effect in f.rule.search_space:
                if effect.op != op:
                    continue
                for name in effect.optimizers:
                    t = tallies[name]
                    before = t.space[effect.param]
                    default = defaults.get(name, {}).get(effect.param, before.low)
                    after = effect.apply(before, values, default, f.rule.id)
                    if after == before:
                        continue
                    t.space[effect.param] = after
                    if op in ("scale", "scale_with"):
                        t.lr_factor *= effect.scale_factor(values) or 1.0
                    t.note(f.rule, detail=f"{effect.param} {_range(before)} -> {_range(after)}")
    return defaults


def _defaults(t: _Tally) -> dict[str, float]:
    hp = {k: float(v) for k, v in OPTIMIZERS[t.name].defaults.items()}
    hp["lr"] = float(f"{hp['lr'] * t.lr_factor:.4g}")
    for key, rng in t.space.items():
        if key in hp:
            hp[key] = _clip(hp[key], rng)
    return hp


def recommend(
    profile: Profile | Mapping[str, Any],
    *,
    rules_dirs: Iterable[str | Path] = (),
    top: int | None = None,
    layout: ParamLayout | None = None,
) -> Recommendation:
    """Rank every registered optimizer for ``profile``; keep the best ``top`` (None: all).

    ``rules_dirs`` adds rule directories (or files); a rule with a built-in id replaces it.
    ``layout``: the model's measured parameter layout (``advisor recommend --model``), for
    the memory of each optimizer and Muon's split of the model in its code.
    """
    if not isinstance(profile, Profile):
        profile = Profile.from_dict(profile)
    positive_int("top", top, optional=True)
    if layout is None and profile.params is not None:
        layout = ParamLayout.assumed(profile.params, profile.hidden_share)
    b = profile.bytes_per_number

    def need(name: str) -> int | None:
        if profile.params is None:
            return None
        return OPTIMIZERS[name].memory_bytes(profile.params, layout, b)

    fired = load_rules(rules_dirs).evaluate(profile)
    values = profile.values()
    tallies = {name: _Tally(name) for name in OPTIMIZERS}
    advice: list[Advice] = []
    for f in fired:
        rule = f.rule
        for name, delta in rule.scores.items():
            tallies[name].note(rule, delta)
        if rule.over_memory is not None and profile.memory and profile.params:
            for name in OPTIMIZERS:
                bytes_needed = need(name) or 0
                if bytes_needed > profile.memory:
                    detail = f"{name} needs {format_bytes(bytes_needed)}; the budget is {format_bytes(profile.memory)}"
                    tallies[name].note(rule, rule.over_memory, detail)
        for a in rule.advice:
            if all(a.text != seen.text for seen in advice):
                advice.append(Advice(rule.id, a.topic, a.text, rule.source))
    advice.sort(key=lambda a: ADVICE_TOPICS.index(a.topic))
    defaults = _apply_space(tallies, fired, values)

    def fits(name: str) -> bool | None:
        bytes_needed = need(name)
        if profile.memory is None or bytes_needed is None:
            return None
        return bytes_needed <= profile.memory

    measured = layout if layout is not None and not layout.assumed_layout else None

    order = list(OPTIMIZERS)
    ranked = sorted(
        order, key=lambda n: (fits(n) is False, -round(tallies[n].score, 6), order.index(n))
    )
    code = {
        n: printed_code(n, defaults[n], sparse_gradients=profile.sparse_gradients, layout=measured)
        for n in order
    }
    candidates = tuple(
        Candidate(
            optimizer=name,
            score=round(tallies[name].score, 6),
            reasons=tallies[name].explained(),
            search_space=MappingProxyType(dict(tallies[name].space)),
            torch=code[name][0],
            hyperparameters=MappingProxyType(OPTIMIZERS[name].resolve(defaults[name])),
            rank=i + 1,
            memory_bytes=need(name),
            fits_memory=fits(name),
            sparse=code[name][1],
            state_bytes=None
            if layout is None
            else OPTIMIZERS[name].state_bytes(layout, profile.bytes_per_number),
        )
        for i, name in enumerate(ranked)
    )
    return Recommendation(profile, candidates[:top], tuple(advice), tuple(fired))
