"""A small budget ends the run and says where the time went.

The promise itself (wall time at most ``B + max(5 s, 5 %)``, measured from outside the
process) is a timing figure: benchmarks/budget.py measures it from 20 s to 30 min and prints
it to docs/BENCHMARKS.md. A test on a shared, loaded machine can only catch a run that
ignores its budget, so its bound here is 1.5 times the budget (a CI run beside the other
test process once took 35.6 s for 30 s: load, not a bug)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_30s_budget_ends_the_run_and_says_where_the_time_went(tmp_path: Path) -> None:
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
    budget = result["budget"]
    assert budget["budget_s"] == 30
    # its default budget on mnist-5k is 60 s: a run that ignored the 30 s would take that
    assert wall <= 1.5 * 30, f"the run took {wall:.1f}s for a 30s budget: was it ignored?"
    t = result["trials"]
    finished = t["complete"] + t["pruned"] + t["diverged"]
    # every trial is accounted to its optimizer, and only the searched optimizers appear
    assert sum(d["trials"] for d in budget["by_optimizer"].values()) == finished
    assert set(budget["by_optimizer"]) <= set(result["settings"]["chosen"])
    assert 0 < budget["optuna_s"] < budget["search_s"] <= budget["elapsed_s"] <= wall
    assert budget["train_s"] + budget["optuna_s"] == pytest.approx(budget["search_s"], rel=0.2)
    assert budget["final_seeds"] >= 2
