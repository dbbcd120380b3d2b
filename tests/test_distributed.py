"""Many workers, one study, a real PostgreSQL server: nothing lost, nothing run twice."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from advisor.tuning.schema import FINAL_SUFFIX, SEED, WORKER
from advisor.tuning.storage import open_storage

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _tune(url: str, study: str, out: Path | None = None, *extra: str) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "advisor",
        "tune",
        "--study",
        study,
        "--storage",
        url,
        "--trials",
        "36",
        "--population",
        "4",
        "--epochs",
        "3",
        "--seeds",
        "3",
        "--finalists",
        "2",
        "--optimizers",
        "adam,nesterov,sgd",
        "--budget",
        "10m",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--format",
        "json",
        *extra,
    ]
    if out is not None:
        cmd += ["--out", str(out)]
    return cmd


def test_three_workers_share_one_study(postgres_url: str, tmp_path: Path) -> None:
    study = f"pg-{uuid.uuid4().hex[:8]}"
    password = postgres_url.split(":")[2].split("@")[0]
    procs = [
        subprocess.Popen(
            _tune(postgres_url, study, tmp_path / f"w{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=480) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert password not in out + err  # secrets never printed
    results = [json.loads(out) for out, _ in outputs]

    storage, _ = open_storage(postgres_url, Path("unused"))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    finished = [
        t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    ]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # all three workers searched, none lost a trial, the cap held up to the batches in flight
    workers = {t.user_attrs[WORKER] for t in finished}
    assert len(workers) == 3
    assert 36 <= len(finished) <= 36 + 3 * 4
    # every worker reports the same answer, built from the storage alone, counting every trial once
    for r in results:
        assert r["recommendation"] == results[0]["recommendation"]
        assert sum(r["trials"][k] for k in ("complete", "pruned", "diverged", "failed")) == len(
            finished
        )
        assert r["study"]["storage"] == postgres_url.replace(password, "***")
        assert password not in json.dumps(r)
    # the finalist stage ran once: one trial per seed, no seed twice
    final = optuna.load_study(study_name=study + FINAL_SUFFIX, storage=storage)
    done = final.get_trials(states=(TrialState.COMPLETE,))
    seeds = [t.user_attrs[SEED] for t in done if SEED in t.user_attrs]
    assert sorted(seeds) == sorted(set(seeds)) and len(seeds) == 3
    for i in range(3):
        for name in ("result.json", "report.md"):
            assert password not in (tmp_path / f"w{i}" / name).read_text()


def test_wrong_password_is_one_line_and_exit_2(postgres_url: str) -> None:
    password = postgres_url.split(":")[2].split("@")[0]
    bad = postgres_url.replace(password, "not-the-password")
    res = subprocess.run(_tune(bad, "x"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "cannot open the storage" in res.stderr
    assert "not-the-password" not in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
