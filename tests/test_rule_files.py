"""Contract test over every built-in rule: its examples behave, its effects show up, it cites."""

from __future__ import annotations

import re

import pytest

from advisor.knowledge.profile import Profile
from advisor.knowledge.recommender import recommend
from advisor.knowledge.rules import Rule, builtin_rules_dir, check_rules, load_rules

RULES = load_rules()
THEMES = (
    "model_size",
    "data_size",
    "convexity",
    "budget",
    "memory",
    "sparse",
    "batch_size",
    "gradients",
    "generalization",
    "defaults",
)


def test_the_builtin_rules_are_clean_and_cover_every_theme() -> None:
    assert check_rules() == []
    assert len(RULES) >= 20
    files = {p.stem for p in builtin_rules_dir().glob("*.toml")}
    assert set(THEMES) <= files


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.id)
def test_rule_fires_on_its_match_examples_only(rule: Rule) -> None:
    assert rule.examples_match, f"{rule.id} has no examples.match"
    for example in rule.examples_match:
        assert rule.fires(Profile.from_dict(example)), f"{rule.id} should fire on {dict(example)}"
    for example in rule.examples_no_match:
        assert not rule.fires(Profile.from_dict(example)), f"{rule.id} fired on {dict(example)}"


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.id)
def test_rule_effects_show_up_in_a_recommendation(rule: Rule) -> None:
    rec = recommend(Profile.from_dict(rule.examples_match[0]))
    assert rule.id in [f.id for f in rec.fired]
    by_name = {c.optimizer: c for c in rec.candidates}
    for name in rule.scores:
        assert rule.id in [r.rule for r in by_name[name].reasons], name
    for advice in rule.advice:
        assert advice.text in [a.text for a in rec.advice]


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.id)
def test_rule_cites_a_source(rule: Rule) -> None:
    # a citation names a year (or the seed survey's FAQ, or a library's documentation)
    assert re.search(r"\b(19|20)\d\d\b|seed FAQ|documentation", rule.source), rule.source
    assert len(rule.reason) >= 20
