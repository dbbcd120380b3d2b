"""A short chaos run (benchmarks/chaos.py): workers SIGKILLed at random and restarted on a real
PostgreSQL study; the run's own checks decide (nothing lost or duplicated, nothing left
running, the finalist stage once, one recommendation)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CHAOS = Path(__file__).resolve().parents[1] / "benchmarks" / "chaos.py"


def test_a_short_chaos_run_passes_its_checks(postgres_url: str) -> None:
    res = subprocess.run(
        [
            sys.executable,
            str(CHAOS),
            *("--storage", postgres_url, "--workers", "3", "--budget", "16s"),
            *("--kill-every", "3,5", "--max-kills", "3", "--epochs", "2", "--seeds", "2"),
            *("--finalists", "1", "--grace", "420", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    assert res.returncode == 0, (report.get("checks"), report.get("failures"), res.stderr[-2000:])
    assert report["kills"] == 3
    assert all(report["checks"].values())
    assert report["final_seeds"] == 2 and report["trials"]["complete"] >= 1
