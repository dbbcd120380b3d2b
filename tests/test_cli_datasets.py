"""``advisor datasets`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from idx_fixtures import LocalMirror, closed_port_url, isolate, write_idx_set

from advisor.cli import cli

KEYS = {
    "name",
    "available",
    "location",
    "n_train",
    "n_val",
    "n_test",
    "description",
    "downloadable",
}


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["datasets", *args])


def test_text_lists_every_dataset() -> None:
    result = run()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "here", "train", "val", "test", "where"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["mnist-5k"][1:5] == ["yes", "3,600", "400", "1,000"]
    assert rows["mnist"][1:5] == ["no", "55,000", "5,000", "10,000"]
    assert "downloads on first use" in result.output
    assert "idx:DIR" in result.output


def test_json_has_stable_keys() -> None:
    result = run("--format", "json")
    assert result.exit_code == 0, result.output
    infos = json.loads(result.output)
    assert [info["name"] for info in infos] == ["mnist", "mnist-5k", "fashion-mnist"]
    assert all(set(info) == KEYS for info in infos)
    assert infos[1]["available"] is True and infos[1]["n_val"] == 400


def test_one_dataset_by_name_with_data_dir(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "data" / "mnist")
    result = run("mnist", "--data-dir", str(tmp_path / "data"), "--format", "json")
    assert result.exit_code == 0, result.output
    (info,) = json.loads(result.output)
    assert info["available"] is True and info["location"] == str(tmp_path / "data" / "mnist")


def test_idx_dir(tmp_path: Path) -> None:
    write_idx_set(tmp_path, n_train=100, n_test=20)
    result = run(f"idx:{tmp_path}")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[1:5] == ["yes", "90", "10", "20"]


def test_unknown_name_exits_2_with_a_suggestion() -> None:
    result = run("fashion_mnistt")
    assert result.exit_code == 2
    assert "unknown dataset 'fashion_mnistt'. Did you mean 'fashion-mnist'?" in result.output
    assert "Traceback" not in result.output


def test_download_needs_a_name() -> None:
    result = run("--download")
    assert result.exit_code == 2
    assert "--download needs a dataset NAME" in result.output


def test_download_failure_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVISOR_MNIST_MIRRORS", closed_port_url())
    result = run("mnist", "--download")
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "4 of 4 files missing" in error[0]


def test_download_rejects_files_failing_the_published_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    """--download through the real MNIST spec: the local files fail its published MD5s."""
    published = write_idx_set(tmp_path / "published")
    with LocalMirror.serving(published) as mirror:
        monkeypatch.setenv("ADVISOR_MNIST_MIRRORS", mirror.url)
        result = run("mnist", "--download")
    assert result.exit_code == 2
    assert "checksum mismatch for train-images-idx3-ubyte.gz" in result.output
    assert not (cache / "mnist" / "train-images-idx3-ubyte.gz").exists()
