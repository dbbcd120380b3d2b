"""The study file after a torn write: repaired on open with one warning line, nothing finished lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import advisor
from advisor.core.errors import StorageError
from advisor.tuning.journal import DAMAGED_SUFFIX, repair_all, repair_tail
from advisor.tuning.storage import open_storage

X = optuna.distributions.FloatDistribution(0.0, 1.0)


def _study_with_trials(path: Path, n: int = 5) -> list[tuple[int, TrialState, float | None]]:
    storage, _ = open_storage(None, path)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for i in range(n):
        trial = study.ask({"x": X})
        study.tell(trial, float(i) / n)
    study.ask({"x": X})  # one left running, as a killed worker leaves it
    return _snapshot(path)


def _snapshot(path: Path) -> list[tuple[int, TrialState, float | None]]:
    storage, _ = open_storage(None, path)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    return [(t.number, t.state, t.value) for t in trials]


def _finished(snapshot: list[tuple[int, TrialState, float | None]]) -> list[tuple[int, float]]:
    return [(n, v or 0.0) for n, s, v in snapshot if s == TrialState.COMPLETE]


def _last_record(path: Path) -> bytes:
    return path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (lambda rec: rec[: len(rec) // 2], "torn record"),  # half a record, no newline
        (lambda rec: rec[:20] + b"\x00" * 40 + b"\n", "garbled record"),  # zeros after a power loss
        (lambda rec: b"\x00" * 64, "torn record"),  # zeros, no newline
    ],
)
def test_a_damaged_end_is_cut_with_one_warning_and_nothing_finished_is_lost(
    tmp_path: Path, damage, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "studies.journal"
    before = _study_with_trials(path)
    with open(path, "ab") as f:
        f.write(damage(_last_record(path)))
    capsys.readouterr()

    storage, _ = open_storage(None, path)  # repaired here
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and what in err and "every record before it is intact" in err
    assert (tmp_path / ("studies.journal" + DAMAGED_SUFFIX)).exists()
    study = optuna.load_study(study_name="s", storage=storage)
    study.tell(study.ask({"x": X}), 0.5)  # and it takes new trials again
    after = _snapshot(path)
    assert after[: len(before)] == before
    assert _finished(before) == _finished(after)[: len(_finished(before))]
    # a second open finds nothing to repair
    open_storage(None, path)
    assert capsys.readouterr().err == ""


def test_a_record_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "studies.journal"
    before = _study_with_trials(path)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    warned: list[str] = []
    assert repair_tail(path, warn=warned.append)
    assert len(warned) == 1 and "without its newline" in warned[0]
    assert _snapshot(path) == before


def test_a_torn_record_with_the_next_one_glued_on_keeps_the_whole_one(tmp_path: Path) -> None:
    """The file Optuna's own backend leaves when a worker appends after a torn write."""
    path = tmp_path / "studies.journal"
    before = _study_with_trials(path)
    lines = path.read_bytes().split(b"\n")
    torn = lines[3][:25]
    glued = b"\n".join(lines[:-2]) + b"\n" + torn + lines[-2] + b"\n"  # the last record, glued
    path.write_bytes(glued)
    warned: list[str] = []
    assert repair_all(path, warn=warned.append)
    assert len(warned) == 1
    assert _snapshot(path) == before
    # the same damage before the last record is salvaged in place
    lines = path.read_bytes().split(b"\n")
    lines[-3] = lines[3][:25] + lines[-3]
    path.write_bytes(b"\n".join(lines))
    assert repair_all(path, warn=warned.append)
    assert _snapshot(path) == before


def test_damage_before_the_last_record_that_cannot_be_salvaged_is_one_clear_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "studies.journal"
    _study_with_trials(path)
    lines = path.read_bytes().split(b"\n")
    lines[4] = b"\x00" * 30
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StorageError, match=r"damaged at line 5 of .*Restore it from a backup"):
        open_storage(None, path)


def test_a_live_worker_repairs_a_tail_torn_by_another_before_appending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "studies.journal"
    before = _study_with_trials(path)
    storage, _ = open_storage(None, path)
    study = optuna.load_study(study_name="s", storage=storage)
    with open(path, "ab") as f:  # another process dies in the middle of its append
        f.write(b'{"op_code":8,"worker_id":"x","trial_id":1,"user_a')
    study.tell(study.ask({"x": X}), 0.25)  # would glue onto the torn record, and fail
    assert "torn record" in capsys.readouterr().err
    after = _snapshot(path)
    assert after[: len(before)] == before and after[-1][1:] == (TrialState.COMPLETE, 0.25)


def _tune(out: Path, trials: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "advisor",
        "tune",
        *("--study", "torn", "--out", str(out), "--trials", str(trials)),
        *("--epochs", "1", "--population", "4", "--seeds", "2", "--finalists", "1"),
        *("--optimizers", "adam", "--device", "cpu", "--threads", "1", "--quiet"),
        *("--format", "json"),
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_tune_continues_a_study_whose_file_was_torn(tmp_path: Path) -> None:
    """The issue's report: half a record appended without its newline, then `advisor tune`
    again died with a JSONDecodeError or an AttributeError, exit 1."""
    advisor.tune(
        trials=4,
        epochs=1,
        population=4,
        seeds=2,
        finalists=1,
        optimizers=["adam"],
        device="cpu",
        study="torn",
        out=tmp_path,
    )
    path = tmp_path / "studies.journal"
    storage, _ = open_storage(None, path)
    done = {
        t.number: t.value
        for t in optuna.load_study(study_name="torn", storage=storage).get_trials()
        if t.state == TrialState.COMPLETE
    }
    with open(path, "ab") as f:
        f.write(path.read_bytes().split(b"\n")[20][:60])  # a torn write

    rerun = subprocess.run(_tune(tmp_path, 8), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert rerun.stderr.count("warning") == 1 and "torn record" in rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["trials"]["complete"] >= 8
    storage, _ = open_storage(None, path)
    after = {
        t.number: t.value
        for t in optuna.load_study(study_name="torn", storage=storage).get_trials()
        if t.state == TrialState.COMPLETE
    }
    assert {n: after.get(n) for n in done} == done  # no finished trial lost
    report = subprocess.run(
        [sys.executable, "-m", "advisor", "report", "--study", "torn", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0 and report.stderr == "", report.stderr
