"""The bad-input matrix of ``advisor tune``: one clear line, exit code 2, nothing stored lost.

(Unknown dataset/optimizer, bad budget/epochs/batch size/population, unreachable storage and
an unimportable model are in test_tune.py; a wrong database password in test_distributed.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner, Result
from idx_fixtures import LocalMirror, isolate, set_magic, write_idx_set

import advisor
from advisor.cli import cli
from advisor.core.errors import TrainingError
from advisor.tuning.storage import open_storage

_TINY = {"trials": 4, "epochs": 1, "seeds": 2, "finalists": 1, "population": 4, "device": "cpu"}


def tiny(**changes: object) -> list[str]:
    """The options of a tiny quiet run, with ``changes`` to single options by name."""
    options = {**_TINY, **changes}
    return ["--quiet", *(a for k, v in options.items() for a in (f"--{k}", str(v)))]


TINY = tiny()


def _tune(*args: str) -> Result:
    return CliRunner().invoke(cli, ["tune", *args])


def _one_clear_line(res: Result, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for fragment in fragments:
        assert fragment in res.output, res.output


def test_data_missing_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("ADVISOR_MNIST_MIRRORS", "http://127.0.0.1:9/")  # nothing listens there
    res = _tune("--dataset", "mnist", "--out", str(tmp_path / "out"), *TINY)
    _one_clear_line(res, "train-images-idx3-ubyte.gz")


def test_corrupt_idx_file(tmp_path: Path) -> None:
    paths = write_idx_set(tmp_path / "idx", n_train=100, n_test=20)
    set_magic(paths["train-labels-idx1-ubyte"], b"\x00\x00\x09\x99")
    res = _tune("--dataset", f"idx:{tmp_path / 'idx'}", "--out", str(tmp_path / "out"), *TINY)
    _one_clear_line(res, "train-labels-idx1-ubyte")


def test_checksum_mismatch_after_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    # a mirror serving well-formed IDX files that are not the published MNIST files
    fake = write_idx_set(tmp_path / "fake", n_train=100, n_test=20)
    with LocalMirror.serving(list(fake.values())) as mirror:
        monkeypatch.setenv("ADVISOR_MNIST_MIRRORS", mirror.url)
        res = _tune("--dataset", "mnist", "--out", str(tmp_path / "out"), *TINY)
    _one_clear_line(res, "checksum")
    cache = tmp_path / "cache" / "advisor" / "mnist"
    assert not list(cache.glob("*-idx*-ubyte.gz")), "a file that failed its checksum was kept"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[rule]\nid = 'x'", "broken.toml"),
        (
            "[[rule]]\nid = 'x'\nreason = 'r'\nsource = 's'\nwhen.all = []\nscores = { adam = 1 }\ncolour = 'red'\n",
            "colour",
        ),
        (
            "[[rule]]\nid = 'x'\nreason = 'r'\nsource = 's'\nwhen.all = []\nscores = { adamm = 1 }\n",
            "adamm",
        ),
    ],
    ids=["syntax", "unknown-field", "unknown-optimizer"],
)
def test_broken_rule_files(tmp_path: Path, text: str, fragment: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "broken.toml").write_text(text)
    res = _tune("--rules", str(rules), "--out", str(tmp_path / "out"), *TINY)
    _one_clear_line(res, fragment)


def test_study_with_a_different_search_space_is_refused(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    first = _tune("--study", "s", "--out", out, "--optimizers", "adam", *TINY)
    assert first.exit_code == 0, first.output
    storage, _ = open_storage(None, tmp_path / "out" / "studies.journal")
    before = len(optuna.load_study(study_name="s", storage=storage).trials)
    res = _tune("--study", "s", "--out", out, "--optimizers", "sgd", *TINY)
    _one_clear_line(res, "already exists with a different search", "optimizers adam (now sgd)")
    storage, _ = open_storage(None, tmp_path / "out" / "studies.journal")
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == before


def test_diverging_members_do_not_stop_the_study(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "huge_lr.toml").write_text(
        "[[rule]]\nid = 'sgd-huge-lr'\nreason = 'test: make SGD diverge'\nsource = 'this test'\n"
        "when.all = []\nsearch_space = [{ optimizer = 'sgd', param = 'lr', set = [1e3, 1e5], log = true }]\n"
        "examples.match = [{}]\n"
    )
    res = _tune(
        "--rules",
        str(rules),
        "--optimizers",
        "sgd,adam",
        "--out",
        str(tmp_path / "out"),
        "--format",
        "json",
        *tiny(trials=8, population=8),
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["trials"]["diverged"] >= 1
    assert d["recommendation"]["optimizer"] == "adam"
    storage, _ = open_storage(None, tmp_path / "out" / "studies.journal")
    study = optuna.load_study(study_name=d["study"]["name"], storage=storage)
    diverged = [t for t in study.trials if t.user_attrs.get("advisor_status") == "diverged"]
    assert diverged and all(t.user_attrs.get("advisor_reason") for t in diverged)


def test_a_budget_too_small_runs_the_smallest_plan_and_says_so(tmp_path: Path) -> None:
    res = _tune("--budget", "2s", "--out", str(tmp_path), "--format", "json", *tiny(seeds=2))
    assert res.exit_code == 0, res.output
    notes = json.loads(res.stdout)["notes"]
    note = next(n for n in notes if "is too small for this run here" in n)
    assert note.startswith("The budget you gave (2.0s)")
    assert int(note.split("Give --budget ", 1)[1].split("s", 1)[0]) > 2


def test_out_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = _tune("--out", str(blocker / "sub"), *TINY)
    _one_clear_line(res, "--out", "not a writable folder")


def test_cuda_asked_for_but_absent(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = _tune("--out", str(tmp_path), *tiny(device="cuda"))
    _one_clear_line(res, "CUDA is not available")


def test_model_factory_that_cannot_be_imported_via_the_api() -> None:
    with pytest.raises(TrainingError, match="cannot import the model module"):
        advisor.tune(model="no_such_module_xyz:factory", trials=2)
