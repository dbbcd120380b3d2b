"""The rules engine: conditions, effects, loading, overriding and validation errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from advisor.core.errors import RuleError, UnknownNameError
from advisor.knowledge.optimizers import OPTIMIZERS, Range
from advisor.knowledge.profile import Profile
from advisor.knowledge.rules import (
    Condition,
    SpaceEffect,
    builtin_rules_dir,
    check_rules,
    load_dir,
    load_rules,
)

GOOD = """
[[rule]]
id = "{id}"
when.all = [{{ field = "samples", op = "le", value = "100k" }}]
scores = {{ lbfgs = 2.0 }}
reason = "r"
source = "s"
examples.match = [{{ samples = 10 }}]
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rule_text(body: str, rid: str = "r1") -> str:
    return f'[[rule]]\nid = "{rid}"\nreason = "why"\nsource = "where"\n{textwrap.dedent(body)}'


def one_rule(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "r", "t.toml", rule_text(body))


# ---------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("op", "value", "actual", "expected"),
    [
        ("eq", 5, 5, True),
        ("eq", 5, 6, False),
        ("ne", 5, 6, True),
        ("lt", 5, 4, True),
        ("lt", 5, 5, False),
        ("le", 5, 5, True),
        ("gt", 5, 5, False),
        ("gt", 5, 6, True),
        ("ge", 5, 5, True),
        ("in", (1, 2), 2, True),
        ("in", (1, 2), 3, False),
        ("not_in", (1, 2), 3, True),
        ("between", (1, 3), 3, True),
        ("between", (1, 3), 4, False),
    ],
)
def test_operators(op: str, value: object, actual: int, expected: bool) -> None:
    assert Condition("params", op, value).holds({"params": actual}) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "in", "not_in", "between"])
def test_a_condition_on_an_unknown_field_never_fires(op: str) -> None:
    value = (1, 2) if op in ("in", "not_in", "between") else 1
    assert Condition("params", op, value).holds({"params": None}) is False


def test_all_any_none(tmp_path: Path) -> None:
    path = one_rule(
        tmp_path,
        """
        when.all = [{ field = "convexity", op = "eq", value = "nonconvex" }]
        when.any = [{ field = "budget", op = "le", value = "5m" }, { field = "trials", op = "lt", value = 10 }]
        when.none = [{ field = "sparse_gradients", op = "eq", value = true }]
        scores = { adam = 1.0 }
        """,
    )
    rule = load_dir(path.parent).get("r1")
    assert rule.fires(Profile(convexity="nonconvex", budget="60s"))
    assert rule.fires(Profile(convexity="nonconvex", trials=3))
    assert not rule.fires(Profile(convexity="nonconvex"))  # no `any` holds
    assert not rule.fires(Profile(convexity="convex", budget="60s"))
    assert not rule.fires(Profile(convexity="nonconvex", budget="60s", sparse_gradients=True))


def test_a_rule_without_when_always_fires_and_says_so(tmp_path: Path) -> None:
    path = one_rule(tmp_path, 'advice = { topic = "tuning", text = "t" }')
    fired = load_dir(path.parent).evaluate(Profile())
    assert [(f.id, f.because) for f in fired] == [("r1", ("always",))]


def test_values_take_human_sizes_and_because_shows_them(tmp_path: Path) -> None:
    path = one_rule(
        tmp_path,
        """
        when.all = [{ field = "budget", op = "le", value = "10m" }, { field = "memory", op = "ge", value = "1GB" }]
        scores = { sgd = 1.0 }
        """,
    )
    rule = load_dir(path.parent).get("r1")
    assert [c.value for c in rule.when.all] == [600.0, 10**9]
    (fired,) = load_dir(path.parent).evaluate(Profile(budget="90s", memory="8GB"))
    assert fired.because == ("budget 1m30s <= 10m00s", "memory 8GB >= 1GB")


def test_derived_fields_in_conditions(tmp_path: Path) -> None:
    path = one_rule(
        tmp_path,
        """
        when.all = [{ field = "memory_per_param", op = "lt", value = 16 }]
        scores = { sgd = 1.0 }
        """,
    )
    rule = load_dir(path.parent).get("r1")
    assert rule.fires(Profile(params="1e9", memory="8GB"))
    assert not rule.fires(Profile(params="1e9", memory="32GB"))
    assert not rule.fires(Profile(params="1e9"))  # memory unknown


# ---------------------------------------------------------------- effects


def test_targets_names_patterns_and_families(tmp_path: Path) -> None:
    path = one_rule(
        tmp_path, 'scores = { "family:adam" = 1.0, "*adam" = 2.0, adam = 3.0, "family:sgd" = -1 }'
    )
    scores = load_dir(path.parent).get("r1").scores
    adam_family = [n for n, i in OPTIMIZERS.items() if i.family == "adam"]
    assert scores["adam"] == 3.0  # a plain name overrides patterns in the same table
    assert set(adam_family) <= set(scores)
    assert scores["nadam"] in (1.0, 2.0) and scores["sgd"] == -1.0 and "lbfgs" not in scores


def test_space_effects() -> None:
    lr = Range(1e-3, 1.0, log=True)
    values = {"batch_size": 4096}

    def effect(op: str, **kw: object) -> SpaceEffect:
        return SpaceEffect(("sgd",), "lr", op, **kw)  # type: ignore[arg-type]

    assert effect("set", low=0.01, high=0.1).apply(lr, values, 0.05, "a") == Range(
        0.01, 0.1, True, "a"
    )
    assert effect("scale", factor=0.1).apply(lr, values, 0.05, "a") == Range(1e-4, 0.1, True, "a")
    scaled = effect("scale_with", field="batch_size", reference=128.0).apply(lr, values, 0.05, "a")
    assert (scaled.low, scaled.high) == (0.032, 32.0)
    sqrt = effect("scale_with", field="batch_size", reference=128.0, exponent=0.5)
    assert sqrt.scale_factor(values) == pytest.approx(32**0.5)
    assert sqrt.apply(lr, {"batch_size": None}, 0.05, "a") == lr  # unknown field: no change
    assert effect("narrow", low=1e-4, high=0.1).apply(lr, values, 0.05, "a") == Range(
        1e-3, 0.1, True, "a"
    )
    disjoint = effect("narrow", low=2.0, high=3.0).apply(lr, values, 0.05, "a")
    assert (disjoint.low, disjoint.high) == (2.0, 3.0)  # the rule's range wins
    assert effect("fix").apply(lr, values, 0.05, "a") == Range(0.05, 0.05, True, "a")
    twice = effect("fix").apply(
        effect("scale", factor=2.0).apply(lr, values, 0.05, "a"), values, 0.1, "b"
    )
    assert twice.source == "a+b"


def test_search_space_wildcards_skip_optimizers_without_the_hyperparameter(tmp_path: Path) -> None:
    path = one_rule(tmp_path, 'search_space = [{ optimizer = "*", param = "beta1", fix = true }]')
    (effect,) = load_dir(path.parent).get("r1").search_space
    assert set(effect.optimizers) == {n for n, i in OPTIMIZERS.items() if "beta1" in i.search_space}


# ---------------------------------------------------------------- loading


def test_builtin_rules_are_found() -> None:
    directory = builtin_rules_dir()
    assert directory.is_dir() and len(list(directory.glob("*.toml"))) >= 8
    assert len(load_rules()) >= 20


def test_an_extra_rule_with_a_builtin_id_overrides_it_in_place(tmp_path: Path) -> None:
    builtin = load_rules()
    write(
        tmp_path, "x.toml", GOOD.format(id="prior-well-established") + GOOD.format(id="my-new-rule")
    )
    merged = load_rules([tmp_path])
    assert len(merged) == len(builtin) + 1
    assert [r.id for r in merged][: len(builtin)] == [r.id for r in builtin]
    assert merged.get("prior-well-established").scores == {"lbfgs": 2.0}
    assert merged.rules[-1].id == "my-new-rule"


def test_a_single_file_can_be_given(tmp_path: Path) -> None:
    path = write(tmp_path, "x.toml", GOOD.format(id="a-rule"))
    assert "a-rule" in load_rules([path])


def test_unknown_rule_id_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'sparse-adagrad'"):
        load_rules().get("sparse-adagrd")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            'when.all = [{ field = "sampels", op = "le", value = 1 }]\nscores = { adam = 1 }',
            ["when.all[0].field", "'sampels'", "Did you mean 'samples'"],
        ),
        (
            'when.all = [{ field = "samples", op = "gte", value = 1 }]\nscores = { adam = 1 }',
            ["when.all[0].op", "'gte'", "Did you mean 'ge'"],
        ),
        (
            'when.any = [{ field = "convexity", op = "lt", value = "convex" }]\nscores = { adam = 1 }',
            ["when.any[0].op", "numeric"],
        ),
        (
            'when.all = [{ field = "convexity", op = "eq", value = "concave" }]\nscores = { adam = 1 }',
            ["when.all[0].value", "concave", "nonconvex"],
        ),
        (
            'when.all = [{ field = "samples", op = "between", value = [5, 1] }]\nscores = { adam = 1 }',
            ["between", "low <= high"],
        ),
        (
            'when.all = [{ field = "samples", op = "in", value = 3 }]\nscores = { adam = 1 }',
            ["when.all[0].value", "non-empty list"],
        ),
        (
            'when.all = [{ field = "budget", op = "le", value = "5 parsecs" }]\nscores = { adam = 1 }',
            ["when.all[0].value", "budget"],
        ),
        ('when.all = [{ field = "samples", op = "le" }]\nscores = { adam = 1 }', ["no 'value'"]),
        ("when.sometimes = []\nscores = { adam = 1 }", ["when.sometimes", "unknown key"]),
        (
            "scores = { adamm = 1 }",
            ["scores.adamm", "unknown optimizer 'adamm'", "Did you mean 'adam'"],
        ),
        ('scores = { "family:adamish" = 1 }', ["unknown optimizer family 'adamish'"]),
        ('scores = { "zz*" = 1 }', ["matches no optimizer"]),
        ('scores = { adam = "high" }', ["scores.adam", "finite number"]),
        ("scors = { adam = 1 }", ["'scors'", "Did you mean 'scores'"]),
        ('advice = { topic = "schedules", text = "t" }', ["advice.topic", "'schedules'"]),
        ('advice = { topic = "tuning" }', ["advice.text", "non-empty"]),
        ("", ["no effect"]),
        (
            'search_space = [{ optimizer = "sgd", param = "beta1", fix = true }]',
            ["optimizer 'sgd' has no hyperparameter 'beta1'"],
        ),
        (
            'search_space = [{ optimizer = "sgd", param = "lr", fix = true, scale = 2 }]',
            ["exactly one"],
        ),
        ('search_space = [{ optimizer = "momentum", param = "momentum", scale = 2 }]', ["lr"]),
        ('search_space = [{ param = "lr", set = [0.0, 1.0] }]', ["low > 0"]),
        ('search_space = [{ param = "momentum", narrow = [0.5, 1.5] }]', ["[0, 1)"]),
        ('search_space = [{ param = "lr", scale_with = "convexity", reference = 1 }]', ["numeric"]),
        ('search_space = [{ param = "lr", scale_with = "batch_size" }]', ["reference"]),
        (
            'search_space = [{ param = "learning_rate", fix = true }]',
            ["unknown hyperparameter", "lr"],
        ),
        (
            'search_space = [{ optimizer = 3, param = "lr", fix = true }]',
            ["search_space[0].optimizer"],
        ),
        (
            'search_space = [{ optimizer = ["sgd", "nope"], param = "lr", fix = true }]',
            ["search_space[0].optimizer[1]", "'nope'"],
        ),
        (
            "scores = { adam = 1 }\nexamples.match = [{ sampels = 3 }]",
            ["examples.match[0]", "sampels"],
        ),
        ("scores = { adam = 1 }\nexamples.maybe = []", ["examples.maybe"]),
    ],
)
def test_schema_errors_name_the_file_the_rule_and_the_field(
    tmp_path: Path, body: str, words: list[str]
) -> None:
    path = one_rule(tmp_path, body)
    with pytest.raises(RuleError) as info:
        load_dir(path.parent)
    message = str(info.value)
    assert str(path) in message and "rule 'r1'" in message
    for word in words:
        assert word in message


def test_file_level_errors(tmp_path: Path) -> None:
    bad = write(tmp_path / "a", "bad.toml", "[[rule]\nid = ")
    with pytest.raises(RuleError, match="not valid TOML"):
        load_dir(bad.parent)
    typo = write(tmp_path / "b", "typo.toml", '[[rules]]\nid = "x"\n')
    with pytest.raises(RuleError, match="Did you mean 'rule'"):
        load_dir(typo.parent)
    bad_id = write(tmp_path / "c", "id.toml", rule_text("scores = { adam = 1 }", rid="Bad Id"))
    with pytest.raises(RuleError, match="lowercase-words-with-dashes"):
        load_dir(bad_id.parent)
    with pytest.raises(RuleError, match="no such rule directory"):
        load_dir(tmp_path / "missing")


def test_duplicate_ids_in_one_directory(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", GOOD.format(id="same"))
    write(tmp_path, "b.toml", GOOD.format(id="same"))
    with pytest.raises(RuleError, match="duplicate id"):
        load_dir(tmp_path)


def test_nothing_is_evaluated(tmp_path: Path) -> None:
    path = one_rule(
        tmp_path,
        """
        when.all = [{ field = "convexity", op = "eq", value = "__import__('os').system('false')" }]
        scores = { adam = 1 }
        """,
    )
    with pytest.raises(RuleError, match="convexity takes one of"):
        load_dir(path.parent)


# ---------------------------------------------------------------- check


def test_check_builtin_rules_is_clean() -> None:
    assert check_rules() == []


def test_check_lists_every_problem(tmp_path: Path) -> None:
    write(
        tmp_path, "a.toml", GOOD.format(id="ok-rule") + rule_text("scores = { adamm = 1 }", "typo")
    )
    write(
        tmp_path,
        "b.toml",
        rule_text(
            """
            when.all = [{ field = "samples", op = "gt", value = 5 }]
            scores = { adam = 1 }
            examples.match = [{ samples = 3 }]
            examples.no_match = [{ samples = 30 }]
            """,
            "wrong-examples",
        )
        + rule_text("scores = { adam = 1 }", "untested"),
    )
    write(tmp_path, "c.toml", "not toml at all [")
    problems = check_rules(tmp_path)
    text = "\n".join(problems)
    assert len(problems) == 5, text
    assert "rule 'typo'" in text and "not valid TOML" in text
    assert "examples.match[0]: the rule does not fire" in text
    assert "examples.no_match[0]: the rule fires" in text
    assert "rule 'untested': examples.match: give at least one" in text


def test_check_missing_or_empty_directory(tmp_path: Path) -> None:
    assert "no *.toml" in check_rules(tmp_path)[0]
    assert "no such rule directory" in check_rules(tmp_path / "nope")[0]


def test_a_disabled_rule_switches_a_builtin_rule_off(tmp_path: Path) -> None:
    write(tmp_path, "off.toml", '[[rule]]\nid = "nonconvex-adam-default"\nenabled = false\n')
    rules = load_rules([tmp_path])
    assert not rules.get("nonconvex-adam-default").enabled
    assert "nonconvex-adam-default" not in [f.id for f in rules.evaluate(Profile())]
    assert check_rules(tmp_path) == []
    with pytest.raises(RuleError, match="enabled is true or false"):
        write(tmp_path / "bad", "x.toml", '[[rule]]\nid = "x"\nenabled = "no"\n')
        load_dir(tmp_path / "bad")


def test_device_values(tmp_path: Path) -> None:
    path = one_rule(
        tmp_path,
        """
        when.any = [{ field = "device", op = "in", value = ["cuda", "cuda:1"] }]
        scores = { adam = 1 }
        """,
    )
    rule = load_dir(path.parent).get("r1")
    assert rule.fires(Profile(device="cuda:1")) and not rule.fires(Profile(device="cpu"))
    bad = one_rule(
        tmp_path / "x",
        'when.all = [{ field = "device", op = "eq", value = "tpu" }]\nscores = { adam = 1 }',
    )
    with pytest.raises(RuleError, match="device takes one of"):
        load_dir(bad.parent)
