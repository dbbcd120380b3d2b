from __future__ import annotations

import dataclasses
import json

import pytest

from advisor.core.errors import AdvisorError, InvalidValueError
from advisor.knowledge.profile import FIELDS, Profile


def test_human_sizes_are_parsed_and_stored_as_numbers() -> None:
    p = Profile(
        params="118k", samples="55k", budget="10m", memory="8GB", batch_size="4k", trials=25
    )
    assert (p.params, p.samples, p.budget, p.memory, p.batch_size, p.trials) == (
        118_000,
        55_000,
        600.0,
        8_000_000_000,
        4000,
        25,
    )
    assert isinstance(p.params, int) and isinstance(p.budget, float) and isinstance(p.memory, int)
    assert Profile(params="1e9", budget="2h", memory="16GiB").to_dict()["memory"] == 16 * 2**30


def test_defaults_are_unknown() -> None:
    p = Profile()
    assert p.params is None and p.samples is None and p.budget is None and p.memory is None
    assert (p.convexity, p.gradients, p.device, p.domain) == (
        "unknown",
        "unknown",
        "auto",
        "unknown",
    )
    assert p.sparse_gradients is False
    assert all(v is None for v in p.derived().values())


def test_the_seed_profile_from_human_sizes() -> None:
    p = Profile(params="118k", samples="55k", convexity="nonconvex", budget="10m", memory="2GB")
    assert (p.params, p.samples, p.budget, p.memory) == (118_000, 55_000, 600.0, 2e9)
    assert p.derived()["samples_per_param"] == pytest.approx(55 / 118, rel=1e-3)


def test_derived_fields() -> None:
    p = Profile(params="1e9", memory="8GB", samples="500M", batch_size="1M")
    assert p.derived() == {
        "memory_per_param": 8.0,
        "state_room": 0.0,  # fp32 weights and gradients fill the 8 GB
        "samples_per_param": 0.5,
        "batch_fraction": 0.002,
    }
    values = p.values()
    assert values["memory_per_param"] == 8.0 and values["params"] == 10**9


def test_schema_lists_every_field_and_marks_derived_ones() -> None:
    names = [f.name for f in dataclasses.fields(Profile)]
    assert list(FIELDS)[: len(names)] == names
    derived = [n for n, s in FIELDS.items() if s.derived]
    assert derived == list(Profile().derived())


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"params": -5}, ["params", "-5"]),
        ({"params": "abc"}, ["params", "abc", "118k"]),
        ({"samples": 0}, ["samples", "positive"]),
        ({"budget": "10x"}, ["budget", "10x"]),
        ({"memory": "8XB"}, ["memory", "8XB"]),
        ({"batch_size": True}, ["batch_size"]),
        ({"convexity": "concave"}, ["convexity", "concave", "convex, nonconvex, unknown"]),
        ({"convexity": "nonconvx"}, ["Did you mean 'nonconvex'"]),
        ({"gradients": "exploded"}, ["gradients", "exploded", "exploding"]),
        ({"domain": "video"}, ["domain", "video", "vision"]),
        ({"device": "tpu"}, ["device", "tpu", "cuda:N"]),
        ({"sparse_gradients": "yes"}, ["sparse_gradients", "yes", "true or false"]),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_allowed(
    kwargs: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(InvalidValueError) as info:
        Profile(**kwargs)  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)


def test_aliases_and_case() -> None:
    assert Profile(convexity="Non-Convex").convexity == "nonconvex"
    assert Profile(device="cuda:1").device == "cuda:1"


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Profile().params = 3  # type: ignore[misc]


def test_to_dict_is_json_and_round_trips() -> None:
    p = Profile(params="118k", samples="55k", convexity="nonconvex", budget="10m", memory="8GB")
    data = json.loads(json.dumps(p.to_dict()))
    assert data["params"] == 118_000 and data["budget"] == 600.0
    assert data["derived"]["samples_per_param"] == pytest.approx(0.4661)
    assert Profile.from_dict(data) == p
    assert dataclasses.replace(p, batch_size=256).batch_size == 256


def test_from_dict_rejects_unknown_keys_with_a_suggestion() -> None:
    with pytest.raises(
        AdvisorError, match="unknown profile field 'sampels'. Did you mean 'samples'"
    ):
        Profile.from_dict({"sampels": 3})


def test_describe() -> None:
    text = Profile(params=118_282, samples=55_000, convexity="nonconvex", budget="10m").describe()
    assert text == "params 118k, samples 55k, convexity nonconvex, budget 10m00s"
    assert "sparse gradients" in Profile(sparse_gradients=True).describe()
