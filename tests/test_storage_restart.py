"""The PostgreSQL server goes away mid-study: workers wait and go on, or exit 3 in one line;
nothing finished is lost, and the same command continues. Each test owns its server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import Cluster, wait_for_hold
from optuna.trial import TrialState

from advisor.tuning.reconnect import RETRY_ENV
from advisor.tuning.schema import FINAL_SUFFIX, SEED
from advisor.tuning.search import HOLD_ENV
from advisor.tuning.storage import open_storage

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

Snapshot = dict[int, tuple[str, float | None]]


def _tune(url: str, study: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "advisor",
        "tune",
        *("--study", study, "--storage", url, "--trials", "16", "--population", "4"),
        *("--epochs", "3", "--seeds", "2", "--finalists", "1", "--optimizers", "adam,nesterov"),
        *("--budget", "10m", "--device", "cpu", "--threads", "1", "--quiet", "--format", "json"),
    ]


def _finished(url: str, study: str) -> Snapshot:
    storage, _ = open_storage(url, Path("unused"))
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    except KeyError:
        return {}
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return {t.number: (t.state.name, t.value) for t in trials if t.state in done}


def _wait_for_a_complete_trial(
    url: str, study: str, procs: list[subprocess.Popen[str]]
) -> Snapshot:
    deadline = time.monotonic() + 300
    while not any(state == "COMPLETE" for state, _ in _finished(url, study).values()):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail(f"no trial completed: {[p.communicate() for p in procs]}")
        time.sleep(0.5)
    return _finished(url, study)


def _check_whole(url: str, study: str, before: Snapshot, seeds: int = 2) -> None:
    storage, _ = open_storage(url, Path("unused"))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    after = _finished(url, study)
    assert {n: after.get(n) for n in before} == before  # nothing finished is lost
    final = optuna.load_study(study_name=study + FINAL_SUFFIX, storage=storage).get_trials()
    ran = [
        t.user_attrs[SEED] for t in final if t.state == TrialState.COMPLETE and SEED in t.user_attrs
    ]
    assert len(ran) == len(set(ran)) == seeds


def test_workers_wait_for_a_restarting_server_and_go_on(own_postgres: Cluster) -> None:
    url, study = own_postgres.url, "restarted"
    procs = [
        subprocess.Popen(
            _tune(url, study), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    before = _wait_for_a_complete_trial(url, study, procs)
    own_postgres.stop()  # every connection dropped; down long enough for every worker to notice
    time.sleep(5)
    own_postgres.start()
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    errs = "".join(err for _, err in outputs)
    assert (
        "is unreachable" in errs and "retrying for up to 2m00s" in errs and "is back after" in errs
    )
    assert own_postgres.url.split(":")[2].split("@")[0] not in errs  # no password printed
    results = [json.loads(out) for out, _ in outputs]
    assert results[0]["recommendation"] == results[1]["recommendation"]
    _check_whole(url, study, before)


def test_a_server_gone_too_long_is_exit_3_and_the_rerun_continues(
    own_postgres: Cluster, tmp_path: Path
) -> None:
    url, study = own_postgres.url, "gone"
    # the hold: the worker stops mid-population after a finished trial, so that the server
    # surely goes while trials are running (polling raced with the search's last batch)
    hold = tmp_path / "held"
    env = dict(os.environ, **{RETRY_ENV: "3", HOLD_ENV: str(hold)})
    proc = subprocess.Popen(
        _tune(url, study), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    wait_for_hold(hold, proc, timeout_s=300)
    before = _finished(url, study)
    assert any(state == "COMPLETE" for state, _ in before.values())
    own_postgres.stop()
    hold.unlink()  # the worker goes on, to a server that is gone
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        own_postgres.start()
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "lost the storage postgresql://advisor:***@" in last
    assert "rerun the same command when it is back" in last
    assert len(err.strip().splitlines()) <= 2  # the "retrying" line, then the error

    rerun = subprocess.run(_tune(url, study), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    _check_whole(url, study, before)
    storage, _ = open_storage(url, Path("unused"))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    # what the lost worker had running was failed by the rerun and queued again
    interrupted = [t for t in trials if t.user_attrs.get("advisor_status") == "interrupted"]
    assert interrupted
    retried = {t.user_attrs.get("advisor_retry_of") for t in trials}
    assert all(t.number in retried for t in interrupted)
