"""The wall budget is kept, measured from outside the process (one small budget; the
benchmark, benchmarks/budget.py, covers 20 s to 30 min)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_30s_budget_ends_within_35s_and_says_where_the_time_went(tmp_path: Path) -> None:
    # 30 s, not 20: the suite runs in two processes (pytest -n 2), and beside the other one
    # this run's setup alone took 12 s, too long for the smallest plan of a 20 s budget
    cmd = [sys.executable, "-m", "advisor", "tune", "--budget", "30s", "--out", str(tmp_path)]
    cmd += ["--quiet", "--format", "json", "--device", "cpu"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    too_small = [n for n in result["notes"] if "is too small for this run here" in n]
    if too_small:  # a machine this loaded cannot hold even the smallest plan: no bound to keep
        pytest.skip(too_small[0])
    assert wall <= 30 + 5, f"the run took {wall:.1f}s for a 30s budget"
    budget = result["budget"]
    t = result["trials"]
    finished = t["complete"] + t["pruned"] + t["diverged"]
    # every trial is accounted to its optimizer, and only the searched optimizers appear
    assert sum(d["trials"] for d in budget["by_optimizer"].values()) == finished
    assert set(budget["by_optimizer"]) <= set(result["settings"]["chosen"])
    assert 0 < budget["optuna_s"] < budget["search_s"] <= budget["elapsed_s"] <= wall
    assert budget["train_s"] + budget["optuna_s"] == pytest.approx(budget["search_s"], rel=0.2)
    assert budget["final_seeds"] >= 2
