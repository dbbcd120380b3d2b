"""`advisor recommend` and `advisor rules` through click's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import cli
from advisor.knowledge.rules import load_rules

SEED = ["--params", "118k", "--samples", "55k", "--convexity", "nonconvex", "--budget", "10m"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_recommend_text() -> None:
    code, out = run("recommend", *SEED)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "Profile: params 118k, samples 55k, convexity nonconvex, budget 10m00s"
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    top3 = [line.split()[1] for line in lines[header + 1 : header + 4]]
    assert "adam" in top3
    assert "torch.optim.Adam(params, lr=0.001, betas=(0.9, 0.999))" in out
    assert "Advice" in out and "lr_schedule" in out


def test_recommend_json_contract() -> None:
    code, out = run("recommend", *SEED, "--format", "json", "--top", "3")
    assert code == 0, out
    data = json.loads(out)
    assert len(data["candidates"]) == 3
    assert "adam" in [c["optimizer"] for c in data["candidates"]]
    assert data["profile"]["params"] == 118_000 and data["profile"]["budget"] == 600.0
    for c in data["candidates"]:
        assert {"optimizer", "score", "reasons", "search_space", "torch"} <= set(c)
        assert c["reasons"][0].keys() >= {"rule", "text", "source"}
    assert data["advice"] and data["advice"][0].keys() >= {"rule", "text", "source"}


def test_recommend_markdown() -> None:
    code, out = run("recommend", *SEED, "--format", "markdown")
    assert code == 0, out
    assert out.startswith("# Optimizer recommendation") and "```python" in out


def test_recommend_every_option() -> None:
    code, out = run(
        "recommend",
        "--params",
        "1e9",
        "--memory",
        "8GB",
        "--batch-size",
        "4096",
        "--sparse-gradients",
        "--gradients",
        "exploding",
        "--device",
        "cpu",
        "--trials",
        "5",
        "--domain",
        "language",
        "--format",
        "json",
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["profile"]["sparse_gradients"] is True and data["profile"]["device"] == "cpu"
    assert data["candidates"][0]["optimizer"] not in ("adam", "adamw", "nadam", "radam", "lbfgs")
    topics = {a["topic"] for a in data["advice"]}
    assert {"gradient_clipping", "warmup", "memory"} <= topics


def test_the_two_large_model_profiles() -> None:
    code, out = run(
        "recommend",
        "--params",
        "7e9",
        "--samples",
        "1e9",
        "--memory",
        "80GB",
        "--convexity",
        "nonconvex",
        "--top",
        "3",
    )
    assert code == 0, out
    lines = out.splitlines()
    assert "memory / 80GB (fp32: weights, grads, state)" in lines[2]
    first = lines[3].split()
    assert first[1] == "adafactor" and "56.1GB" in lines[3]  # fits: no '*'
    code, out = run("recommend", "--params", "1e9", "--memory", "8GB", "--top", "1")
    assert code == 0, out
    assert out.splitlines()[3].split()[1] == "sgd" and "--precision bf16" in out
    code, out = run(
        "recommend",
        "--params",
        "1e9",
        "--memory",
        "8GB",
        "--precision",
        "bf16",
        "--format",
        "json",
    )
    fits = {c["optimizer"] for c in json.loads(out)["candidates"] if c["fits_memory"]}
    assert "adafactor" in fits


def test_model_kind_training_and_open_ended() -> None:
    code, out = run(
        "recommend",
        "--model-kind",
        "transformer",
        "--training",
        "from-scratch",
        "--open-ended",
        "--format",
        "json",
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["profile"]["model_kind"] == "transformer" and data["profile"]["open_ended"]
    fired = {f["rule"] for f in data["fired"]}
    assert {"muon-hidden-matrices", "open-ended-schedule-free"} <= fired
    code, out = run(
        "recommend", "--model-kind", "transformer", "--training", "fine-tuning", "--format", "json"
    )
    fired = {f["rule"] for f in json.loads(out)["fired"]}
    assert "muon-not-for-fine-tuning" in fired and "muon-hidden-matrices" not in fired


def test_extra_rules_directory(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        '[[rule]]\nid = "love-sgd"\nscores = { sgd = 50 }\nreason = "because"\nsource = "us 2024"\n'
    )
    code, out = run("recommend", *SEED, "--rules", str(tmp_path), "--format", "json")
    assert code == 0, out
    assert json.loads(out)["candidates"][0]["optimizer"] == "sgd"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--params", "-5"], ["--params", "-5"]),
        (["--params", "lots"], ["--params", "lots", "118k"]),
        (["--samples", "0"], ["--samples", "positive"]),
        (["--budget", "10x"], ["--budget", "10x", "10m"]),
        (["--memory", "8XB"], ["--memory", "8XB", "GB"]),
        (["--batch-size", "1.5q"], ["--batch-size"]),
        (["--convexity", "concave"], ["--convexity", "concave", "nonconvex"]),
        (["--gradients", "bad"], ["--gradients", "exploding"]),
        (["--top", "0"], ["--top"]),
        (["--format", "yaml"], ["--format", "json"]),
        (["--rules", "/no/such/dir"], ["--rules", "/no/such/dir"]),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args: list[str], words: list[str]) -> None:
    code, out = run("recommend", *args)
    assert code == 2, out
    assert "Traceback" not in out
    error = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(error) == 1, out
    for word in words:
        assert word in error[0]


def test_broken_rule_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        '[[rule]]\nid = "bad"\nscores = { adamm = 1 }\nreason = "r"\nsource = "s"\n'
    )
    code, out = run("recommend", *SEED, "--rules", str(tmp_path))
    assert code == 2, out
    assert "Traceback" not in out
    assert out.strip().count("\n") == 0
    assert "bad.toml" in out and "rule 'bad'" in out and "scores.adamm" in out


def test_rules_list() -> None:
    code, out = run("rules", "list")
    assert code == 0, out
    assert f"{len(load_rules())} rules" in out and "sparse-adagrad" in out
    code, out = run("rules", "list", "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert len(data) == len(load_rules())
    assert {"id", "when", "scores", "reason", "source", "examples"} <= set(data[0])


def test_rules_show() -> None:
    code, out = run("rules", "show", "convex-small-full-batch")
    assert code == 0, out
    assert "convexity = convex" in out and "lbfgs +4" in out and "source: Nocedal" in out
    code, out = run("rules", "show", "convex-small")
    assert code == 2 and "Did you mean" in out and "Traceback" not in out


def test_rules_check() -> None:
    code, out = run("rules", "check")
    assert code == 0, out
    assert out.strip() == f"{len(load_rules())} rules OK"


def test_rules_check_a_broken_directory(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        '[[rule]]\nid = "a"\nwhen.all = [{ field = "sampels", op = "le", value = 1 }]\n'
        'scores = { adam = 1 }\nreason = "r"\nsource = "s"\n'
    )
    (tmp_path / "b.toml").write_text("[[rule]\n")
    code, out = run("rules", "check", str(tmp_path))
    assert code == 2, out
    assert "Did you mean 'samples'" in out and "not valid TOML" in out and "2 problem(s)" in out


def test_recommend_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from advisor.cli import cli\n"
        "r = CliRunner().invoke(cli, ['recommend', '--params', '118k', '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(cli, ['rules', 'check'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'optuna' not in sys.modules, 'optuna was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
