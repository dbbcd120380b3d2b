"""Crash and resume for real: a tuning subprocess killed by a signal, then the same command again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import wait_for_hold
from optuna.trial import TrialState

from advisor.tuning.search import HOLD_ENV
from advisor.tuning.storage import open_storage

pytestmark = pytest.mark.slow


def _cmd(out: Path, study: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "advisor",
        "tune",
        "--study",
        study,
        "--out",
        str(out),
        "--trials",
        "24",
        "--population",
        "8",
        "--epochs",
        "3",
        "--seeds",
        "2",
        "--finalists",
        "1",
        "--optimizers",
        "adam,nesterov",
        "--budget",
        "10m",
        "--device",
        "cpu",
        "--quiet",
        "--format",
        "json",
    ]


def _trials(out: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    storage, _ = open_storage(None, out / "studies.journal")
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    except KeyError:
        return []


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT at its default in the child, as in a terminal. A test suite started in the
    background (``pytest &``, ``nohup``) runs with SIGINT ignored, which its children inherit:
    Python then installs no Ctrl-C handler, and the interrupted tune would ignore the signal
    (as a background job should) and run its hold out instead of stopping."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_interrupt(out: Path, study: str, sig: int) -> tuple[subprocess.Popen[str], set[int]]:
    """Start a tune, wait until it holds a population in flight after a finished trial, signal it.

    The hold (``ADVISOR_TEST_HOLD_FILE``) makes the moment certain: polling for RUNNING trials
    raced with the population finishing between the poll and the signal.
    """
    hold = out / "held"
    env = dict(os.environ, **{HOLD_ENV: str(hold)})
    proc = subprocess.Popen(
        _cmd(out, study),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    wait_for_hold(hold, proc)
    trials = _trials(out, study)
    done = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert done and any(t.state == TrialState.RUNNING for t in trials)
    proc.send_signal(sig)
    return proc, done


def _check_resumed(out: Path, study: str, done_before: set[int]) -> None:
    rerun = subprocess.run(_cmd(out, study), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    trials = _trials(out, study)
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    assert not by_state[TrialState.RUNNING] and not by_state[TrialState.WAITING]
    # no completed trial is lost
    assert done_before <= {t.number for t in by_state[TrialState.COMPLETE]}
    # every interrupted trial was failed with its reason and retried once
    interrupted = [
        t for t in by_state[TrialState.FAIL] if t.user_attrs.get("advisor_status") == "interrupted"
    ]
    assert interrupted
    retried = {t.user_attrs.get("advisor_retry_of") for t in trials}
    assert all(t.number in retried for t in interrupted)
    # the report counts every trial once
    counted = sum(result["trials"][k] for k in ("complete", "pruned", "diverged", "failed"))
    assert counted == len(trials)
    assert result["trials"]["failed"] == len(by_state[TrialState.FAIL])


def test_sigkill_mid_population_then_rerun(tmp_path: Path) -> None:
    proc, done = _start_and_interrupt(tmp_path, "killed", signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert any(t.state == TrialState.RUNNING for t in _trials(tmp_path, "killed"))
    _check_resumed(tmp_path, "killed", done)


def test_ctrl_c_stops_cleanly_then_rerun(tmp_path: Path) -> None:
    proc, done = _start_and_interrupt(tmp_path, "stopped", signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rerun the same command to continue" in err
    assert "Traceback" not in err
    # a clean stop leaves nothing running: the population in flight is failed and queued again
    assert not any(t.state == TrialState.RUNNING for t in _trials(tmp_path, "stopped"))
    _check_resumed(tmp_path, "stopped", done)


def test_stale_trials_of_other_processes_are_left_alone(tmp_path: Path) -> None:
    """A second worker joining a live study must not fail the first one's running trials."""
    study = "live"
    first = subprocess.Popen(
        _cmd(tmp_path, study), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not any(t.state == TrialState.RUNNING for t in _trials(tmp_path, study)):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = subprocess.run(_cmd(tmp_path, study), capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    trials = _trials(tmp_path, study)
    assert not [t for t in trials if t.user_attrs.get("advisor_status") == "interrupted"]
    assert json.loads(out)["recommendation"] == json.loads(second.stdout)["recommendation"]
    assert os.path.exists(tmp_path / "studies.journal")
