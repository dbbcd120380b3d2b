"""A study larger than the sampler's history (benchmarks/large_study.py, fewer trials): the
report counts every trial, resuming works, and TPE is shown a bounded history. Wall times are
the benchmark's to report: the machine is shared, so nothing here asserts on them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import large_study  # noqa: E402

from advisor.tuning.sampler import BEST, RECENT  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

N = BEST + RECENT + 400


def test_report_and_resume_of_a_study_larger_than_the_sampler_history(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path / 'studies.journal'}"
    large_study.synthesize("large", storage, tmp_path, N)
    where = ["--study", "large", "--storage", storage]

    report = subprocess.run(
        [sys.executable, "-m", "advisor", "report", *where, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    counts = json.loads(report.stdout)["trials"]
    assert counts["complete"] + counts["pruned"] == N and counts["running"] == 0

    log = tmp_path / "probe.json"
    resumed = subprocess.run(
        [
            sys.executable,
            large_study.__file__,
            *("resume-probe", str(log), "bounded", repr(time.time())),
            *("tune", *where, "--trials", str(N + 8), "--budget", "10h", "--threads", "1"),
            *large_study.TUNE,
            *("--out", str(tmp_path / "resumed"), "--quiet", "--format", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["trials"]["complete"] + result["trials"]["pruned"] == N + 8
    probe = json.loads(log.read_text())
    assert probe["trials"] == 8
    # TPE saw the best and the most recent trials and the batch in flight, not the whole study
    assert probe["history"] <= BEST + RECENT + 8 < N
