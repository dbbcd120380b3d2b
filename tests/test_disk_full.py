"""A full or read-only ``--out`` while the report is written: one line, exit 2, study intact,
and ``advisor report`` rebuilds the report later; a full disk under the study file: one line,
exit 3, and the rerun continues. Real filesystems: small tmpfs mounts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from advisor.tuning.schema import FINAL_SUFFIX, SEED
from advisor.tuning.storage import open_storage

pytestmark = pytest.mark.slow


def _mount(target: Path, options: str) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs of the given size (``"32k"``) in a new folder; unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        target = tmp_path_factory.mktemp(f"tmpfs-{size}")
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill up needs root")
        try:
            _mount(target, f"size={size},mode=0755")
        except (OSError, subprocess.CalledProcessError) as exc:
            reason = getattr(exc, "stderr", "") or str(exc)
            pytest.skip(f"this machine does not allow mounting a tmpfs: {reason.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture(scope="module")
def tiny_fs(tmpfs: Callable[[str], Path]) -> Path:
    """32 KiB: room for the write check, result.json and report.md, not the figures."""
    return tmpfs("32k")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advisor", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tuned_into_full_disk(
    tiny_fs: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], str]:
    journal = f"journal:{tmp_path_factory.mktemp('study') / 'studies.journal'}"
    res = _run(
        "tune",
        *("--study", "full", "--storage", journal, "--out", str(tiny_fs)),
        *("--trials", "4", "--epochs", "1", "--population", "4", "--seeds", "2"),
        *("--finalists", "1", "--optimizers", "adam", "--device", "cpu", "--threads", "1"),
        *("--quiet", "--format", "json"),
    )
    return res, journal


def _study_state(journal: str) -> tuple[list[tuple[int, str]], list[int]]:
    storage, _ = open_storage(journal, Path("unused"))
    search = optuna.load_study(study_name="full", storage=storage).get_trials()
    final = optuna.load_study(study_name="full" + FINAL_SUFFIX, storage=storage).get_trials()
    seeds = [
        t.user_attrs[SEED] for t in final if t.state == TrialState.COMPLETE and SEED in t.user_attrs
    ]
    return [(t.number, t.state.name) for t in search], sorted(seeds)


def test_a_full_out_folder_during_the_report_is_one_line_and_exit_2(
    tuned_into_full_disk: tuple[subprocess.CompletedProcess[str], str], tiny_fs: Path
) -> None:
    res, journal = tuned_into_full_disk
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "No space left on device" in lines[0] and "The study is saved" in lines[0]
    assert f"advisor report --study full --storage {journal} --out {tiny_fs}" in lines[0]
    # the study is whole: every search trial finished, every final seed ran
    trials, seeds = _study_state(journal)
    assert len(trials) >= 4 and all(state in ("COMPLETE", "PRUNED") for _, state in trials)
    assert len(seeds) == 2
    # no half-written file is left behind
    assert not [p.name for p in tiny_fs.iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_out_folder_then_the_report_is_rebuilt(
    tuned_into_full_disk: tuple[subprocess.CompletedProcess[str], str], tiny_fs: Path
) -> None:
    _, journal = tuned_into_full_disk
    before = _study_state(journal)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    res = _run("report", "--study", "full", "--storage", journal, "--out", str(tiny_fs))
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "Read-only file system" in res.stderr
    assert _study_state(journal) == before

    # room again: the same command rebuilds the whole report
    subprocess.run(["mount", "-o", "remount,rw,size=2m", str(tiny_fs)], check=True)
    res = _run(
        "report", "--study", "full", "--storage", journal, "--out", str(tiny_fs), "--format", "json"
    )
    assert res.returncode == 0, res.stderr
    names = {p.name for p in tiny_fs.iterdir()}
    assert {"result.json", "report.md", "lr_vs_accuracy.png", "importance.png"} <= names
    written = json.loads((tiny_fs / "result.json").read_text())
    assert written["recommendation"] == json.loads(res.stdout)["recommendation"]
    assert _study_state(journal) == before


def _tune_into(out: Path) -> list[str]:
    return [
        "tune",
        *("--study", "filled", "--out", str(out), "--trials", "48", "--epochs", "2"),
        *("--population", "4", "--seeds", "2", "--finalists", "1", "--optimizers", "adam"),
        *("--device", "cpu", "--threads", "1", "--quiet", "--format", "json"),
    ]


def test_a_full_disk_under_the_study_file_is_exit_3_and_the_rerun_continues(
    tmpfs: Callable[[str], Path],
) -> None:
    out = tmpfs("1m")
    free = os.statvfs(out).f_bavail * os.statvfs(out).f_frsize
    filler = out / "filler"
    filler.write_bytes(b"\0" * (free - 96 * 1024))  # the study file gets about 96 KiB
    res = _run(*_tune_into(out))
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "cannot write the study file" in res.stderr and "No space left on device" in res.stderr

    filler.unlink()  # room again
    journal = out / "studies.journal"
    storage, _ = open_storage(None, journal)
    before = {
        t.number: t.value
        for t in optuna.load_study(study_name="filled", storage=storage).get_trials()
        if t.state == TrialState.COMPLETE
    }
    assert before  # it got far enough to finish trials
    rerun = _run(*_tune_into(out))
    assert rerun.returncode == 0, rerun.stderr
    storage, _ = open_storage(None, journal)
    after = {
        t.number: t.value
        for t in optuna.load_study(study_name="filled", storage=storage).get_trials()
        if t.state == TrialState.COMPLETE
    }
    assert {n: after.get(n) for n in before} == before
    assert json.loads(rerun.stdout)["trials"]["running"] == 0
