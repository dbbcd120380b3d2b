"""TuneConfig: tune()'s arguments, checked once and eagerly, under the same names and defaults."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from advisor.core.errors import InvalidValueError, UnknownNameError
from advisor.tuning.config import DEFAULT_BUDGET_OTHER_S, TuneConfig
from advisor.tuning.tuner import tune


def test_tune_and_its_config_have_the_same_parameters_and_defaults() -> None:
    params = inspect.signature(tune).parameters
    fields = {f.name: f for f in dataclasses.fields(TuneConfig)}
    assert list(params) == list(fields)
    for name, p in params.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        assert p.default == default, name


@pytest.mark.parametrize(
    "name", ["epochs", "batch_size", "candidates", "finalists", "seeds", "workers"]
)
@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_counts_must_be_positive_whole_numbers(name: str, bad: object) -> None:
    with pytest.raises(InvalidValueError, match=f"^{name} must be a positive whole number"):
        TuneConfig(**{name: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["trials", "population", "threads"])
def test_optional_counts_accept_none_only(name: str) -> None:
    assert getattr(TuneConfig(**{name: None}), name) is None  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match=f"^{name} must be a positive whole number"):
        TuneConfig(**{name: 0})  # type: ignore[arg-type]


def test_normalized_on_creation() -> None:
    c = TuneConfig(dataset="fashion-mnist", optimizers=["Adam", "adam", "SGD"], rules_dirs=["r"])
    assert c.optimizers == ("adam", "sgd")
    assert c.rules_dirs == ("r",)
    assert c.study_name.startswith("fashion-mnist-")
    assert c.budget_s == DEFAULT_BUDGET_OTHER_S
    assert TuneConfig(budget="2m").budget_s == 120.0
    assert TuneConfig(data=([0], [0], [0], [0])).dataset_name == "custom"


def test_default_study_names_differ_within_one_second() -> None:
    """Two runs started in the same second into one folder must not share a study: the
    second would continue the first's finished study instead of tuning."""
    names = {TuneConfig().study_name, TuneConfig().study_name}  # within one second
    assert len(names) == 2  # equal suffixes: 1 chance in 65,536
    for name in names:
        assert re.fullmatch(r"mnist-5k-\d{8}-\d{6}-[0-9a-f]{4}", name), name


def test_bad_values_fail_before_anything_runs() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'adam'"):
        TuneConfig(optimizers=["adma"])
    with pytest.raises(InvalidValueError, match="budget"):
        TuneConfig(budget="ten minutes")
    with pytest.raises(InvalidValueError, match="got 3 items"):
        TuneConfig(data=([0], [0], [0]))
    with pytest.raises(InvalidValueError, match="'module:factory'"):
        TuneConfig(workers=2, model=lambda: None)  # type: ignore[arg-type, return-value]


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TuneConfig().epochs = 3  # type: ignore[misc]
