"""Storages: URL masking, journal files, unreachable databases, stale trials of dead workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from advisor.core.errors import StorageError
from advisor.tuning.schema import HEARTBEAT, WORKER
from advisor.tuning.storage import (
    fail_stale_trials,
    mask_url,
    open_storage,
    worker_id,
)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://alice:s3cret@db:5432/optuna", "postgresql://alice:***@db:5432/optuna"),
        ("postgresql+psycopg://bob:p%40ss@127.0.0.1/x", "postgresql+psycopg://bob:***@127.0.0.1/x"),
        ("sqlite:///tmp/a.db", "sqlite:///tmp/a.db"),
        ("postgresql://carol@db/optuna", "postgresql://carol@db/optuna"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_default_storage_is_a_journal_file(tmp_path: Path) -> None:
    storage, display = open_storage(None, tmp_path / "runs" / "studies.journal")
    assert display == f"journal:{tmp_path / 'runs' / 'studies.journal'}"
    optuna.create_study(study_name="s", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    again, _ = open_storage(f"journal:{tmp_path / 'runs' / 'studies.journal'}", tmp_path / "unused")
    assert len(optuna.load_study(study_name="s", storage=again).trials) == 2


def test_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot write the study file"):
        open_storage(None, blocker / "studies.journal")


def test_unreachable_database_names_it_without_the_password() -> None:
    url = "postgresql://user:topsecret@127.0.0.1:1/none"
    with pytest.raises(StorageError) as info:
        open_storage(url, Path("unused"))
    assert "topsecret" not in str(info.value)
    assert "postgresql://user:***@127.0.0.1:1/none" in str(info.value)


def test_trials_of_a_dead_worker_are_failed_and_queued_again(tmp_path: Path) -> None:
    storage, _ = open_storage(None, tmp_path / "s.journal")
    study = optuna.create_study(study_name="s", storage=storage)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    host_worker = worker_id().split(":")[0]
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr(WORKER, f"{host_worker}:{pid}:deadbeef")
    trial.set_user_attr(HEARTBEAT, time.time())
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive.set_user_attr(WORKER, f"{host_worker}:{os.getpid()}:cafe")
    alive.set_user_attr(HEARTBEAT, time.time())

    assert fail_stale_trials(study) == [trial.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[trial.number] == TrialState.FAIL
    assert states[alive.number] == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].user_attrs["advisor_retry_of"] == trial.number
    # a second pass changes nothing
    assert fail_stale_trials(study) == []


def test_remote_workers_go_stale_by_heartbeat(tmp_path: Path) -> None:
    storage, _ = open_storage(None, tmp_path / "s.journal")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.set_user_attr(WORKER, "another-host:123:abc")
    trial.set_user_attr(HEARTBEAT, time.time() - 1000)
    assert fail_stale_trials(study, grace_s=2000) == []
    assert fail_stale_trials(study, grace_s=300) == [trial.number]
