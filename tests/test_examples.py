"""The examples run as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from advisor.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def test_my_rules_override_a_built_in_rule() -> None:
    args = [
        "recommend",
        "--params",
        "118k",
        "--samples",
        "55k",
        "--convexity",
        "nonconvex",
        "--rules",
        str(EXAMPLES / "my_rules"),
        "--format",
        "json",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    first = json.loads(res.output)["candidates"][0]
    assert first["optimizer"] == "nesterov"
    assert any("Team prior" in r["text"] for r in first["reasons"])


@pytest.mark.slow
@pytest.mark.parametrize("script", ["quickstart.py", "custom_model.py"])
def test_python_examples_run(script: str, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "optimizer" in res.stdout or "torch.optim." in res.stdout  # the printed code
    assert "test accuracy" in res.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_two_machines_script(postgres_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, STORAGE=postgres_url, BUDGET="5m")
    extra = [
        "--trials",
        "16",
        "--population",
        "4",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--finalists",
        "1",
        "--optimizers",
        "adam,nesterov",
        "--threads",
        "1",
    ]
    res = subprocess.run(
        ["bash", str(EXAMPLES / "two_machines.sh"), *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Recommendation:" in res.stdout
    a, b = (json.loads((tmp_path / f"runs-worker-{w}.json").read_text()) for w in "ab")
    assert a["recommendation"] == b["recommendation"]
