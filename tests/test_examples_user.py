"""The examples of your own loop, your regression and your CNN run as written (issue 13)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.train import train_members

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _run(script: str, tmp_path: Path) -> str:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_plain_loop_with_a_dataloader_through_objective(tmp_path: Path) -> None:
    out = _run("plain_loop.py", tmp_path)
    assert "optimizer = " in out and "test accuracy" in out


@pytest.mark.skipif(
    "task" not in inspect.signature(train_members).parameters,
    reason="the trainers take task= once issue 13 part A is merged",
)
def test_regression_through_model_and_task(tmp_path: Path) -> None:
    out = _run("regression.py", tmp_path)
    assert "test metric (negative MSE)" in out


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="fashion-mnist is not installed")
def test_cnn_on_fashion_mnist_through_model(tmp_path: Path) -> None:
    out = _run("fashion_cnn.py", tmp_path)
    assert "test accuracy" in out and "4 CNNs trained at once" in out
