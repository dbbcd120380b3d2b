"""`advisor recommend --model ...`: a measured profile, its thresholds and the LR range test,
through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from advisor.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SEED_MLP = [
    "recommend",
    "--model",
    "advisor.models:mnist_mlp",
    "--dataset",
    "mnist-5k",
    "--device",
    "cpu",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def run_json(*args: str) -> dict[str, Any]:
    code, out = run(*args, "--format", "json")
    assert code == 0, out
    data: dict[str, Any] = json.loads(out)
    return data


def test_measured_profile_json() -> None:
    data = run_json(*SEED_MLP, "--top", "3", "--budget", "10m")
    profile = data["profile"]
    assert profile["params"] == 118_282 and profile["samples"] == 3_600
    assert profile["convexity"] == "nonconvex" and profile["gradients"] == "healthy"
    assert profile["budget"] == 600.0 and profile["trials"] >= 10
    measured = profile["measured"]
    assert measured["model"] == "advisor.models:mnist_mlp" and measured["dataset"] == "mnist-5k"
    params = measured["params"]
    assert params["value"] == 118_282 and params["source"] == "measured"
    rules = {c["rule"]: c for c in params["compared_with"]}
    assert rules["model-large-adam"]["op"] == "ge"
    assert rules["model-large-adam"]["threshold"] == 1_000_000
    assert rules["model-large-adam"]["fired"] is False
    assert measured["budget"]["source"] == "given"
    assert measured["noise_scale"]["value"] > 0
    assert len(data["candidates"]) == 3 and "lr_range_test" not in data
    assert all(c["search_space"]["lr"]["source"] != "lr_range_test" for c in data["candidates"])


def test_probe_lr_narrows_the_shown_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    logistic = "examples.logistic_regression:logistic_regression"
    args = [*SEED_MLP[:2], logistic, *SEED_MLP[3:]]
    data = run_json(*args, "--top", "3", "--probe-lr", "--out", str(tmp_path))
    shown = [c["optimizer"] for c in data["candidates"]]
    assert "lbfgs" in shown  # small convex problem: ranked 2nd, not probed (line search)
    for c in data["candidates"]:
        lr = c["search_space"]["lr"]
        if c["optimizer"] == "lbfgs":
            assert lr["source"] == "registry"
            continue
        assert lr["source"] == "lr_range_test" and lr["log"] is True
        assert lr["low"] <= c["hyperparameters"]["lr"] <= lr["high"]
        assert any(r["rule"] == "lr-range-test" for r in c["reasons"])
    assert sorted(data["lr_range_test"]) == sorted(o for o in shown if o != "lbfgs")
    adam = data["lr_range_test"]["adam"]
    assert adam["range"]["low"] < 1e-2 < adam["range"]["high"]
    assert len(adam["lrs"]) == len(adam["losses"]) == len(adam["smoothed"])
    written = json.loads((tmp_path / "recommendation.json").read_text())
    assert written["candidates"] == data["candidates"]
    assert (tmp_path / "lr_range.png").read_bytes()[:4] == b"\x89PNG"


def test_probe_lr_skips_full_batch_lbfgs(tmp_path: Path) -> None:
    # a user rule puts L-BFGS first, whatever the built-in rules say of this profile
    rules = tmp_path / "first.toml"
    rules.write_text(
        '[[rule]]\nid = "lbfgs-first"\nscores = { lbfgs = 10.0 }\nreason = "test"\nsource = "test"\n'
        "examples.match = [{}]\n"
    )
    data = run_json(*SEED_MLP, "--top", "1", "--probe-lr", "--rules", str(rules))
    assert [c["optimizer"] for c in data["candidates"]] == ["lbfgs"]
    assert "lr_range_test" not in data
    blocked = tmp_path / "file"
    blocked.write_text("")
    code, out = run(*SEED_MLP, "--out", str(blocked / "sub"))
    assert code == 2 and "--out" in out and len(out.strip().splitlines()) == 1, out


def test_text_shows_measured_to_rule_pairs() -> None:
    code, out = run(*SEED_MLP, "--top", "2")
    assert code == 0, out
    assert out.startswith("Measured profile: advisor.models:mnist_mlp on mnist-5k (cpu)")
    params = next(line for line in out.splitlines() if line.strip().startswith("params"))
    assert "params 118,282 (measured)" in params and "→" in params
    assert "model-large-adam: >= 1M? no" in out
    assert "convexity nonconvex (measured)" in out
    assert "B_simple" in out
    assert "\nrank  optimizer" in out  # then the usual recommendation


def test_given_options_override_measured_values() -> None:
    data = run_json(*SEED_MLP, "--params", "25M", "--convexity", "unknown", "--top", "1")
    measured = data["profile"]["measured"]
    assert data["profile"]["params"] == 25_000_000 and measured["params"]["source"] == "given"
    large = next(c for c in measured["params"]["compared_with"] if c["rule"] == "model-large-adam")
    assert large["holds"] is True and large["fired"] is True
    assert data["profile"]["convexity"] == "unknown"  # given explicitly, even if the default


def test_a_convex_custom_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    data = run_json(
        "recommend",
        "--model",
        "examples.logistic_regression:logistic_regression",
        "--device",
        "cpu",
        "--top",
        "2",
    )
    assert data["profile"]["params"] == 7_850 and data["profile"]["convexity"] == "convex"
    # measured (issue 15, logistic regression on digits): Nesterov best, L-BFGS next
    assert [c["optimizer"] for c in data["candidates"]] == ["nesterov", "lbfgs"]
    assert "convex-small-full-batch" in [f["rule"] for f in data["fired"]]


def test_markdown() -> None:
    code, out = run(*SEED_MLP, "--top", "1", "--format", "markdown")
    assert code == 0, out
    assert out.startswith("# Optimizer recommendation") and "## Measured profile" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--model", "no_such_module_xyz:net"],
            "cannot import the model module 'no_such_module_xyz'",
        ),
        (["--model", "advisor.train.models:nope"], "no callable 'nope'"),
        (["--model", "advisor.models:mnist_mlp", "--dataset", "mnits"], "Did you mean 'mnist'"),
        (["--probe-lr"], "--probe-lr needs --model"),
        (["--dataset", "mnist-5k"], "--dataset needs --model"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(args: list[str], words: str) -> None:
    code, out = run("recommend", "--device", "cpu", *args)
    assert code == 2, out
    assert words in out
    assert "Traceback" not in out
    if "--model" in args:
        assert len(out.strip().splitlines()) == 1, out
