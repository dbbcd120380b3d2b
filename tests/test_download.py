"""Downloads against a real HTTP server on 127.0.0.1 serving IDX files generated here."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from idx_fixtures import (
    LocalMirror,
    closed_port_url,
    expected_remote,
    flip_byte,
    isolate,
    md5_of,
    source_for,
    write_idx_set,
)

from advisor.core.errors import DataError
from advisor.data.datasets import load_dataset, load_idx
from advisor.data.download import RemoteFile, checksum_problem, download_file, md5_file
from advisor.data.idx import IDX_STEMS, MNIST, read_idx

FAST: dict[str, Any] = {"retries": 3, "backoff": 0.01, "timeout": 5.0}
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


@pytest.fixture
def published(tmp_path: Path) -> dict[str, Path]:
    """The files as published on the mirrors (100 train / 20 test images)."""
    return write_idx_set(tmp_path / "published", n_train=100, n_test=20)


def _no_partial_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.part"))


def test_download_checks_md5_and_loads(published: dict[str, Path], cache: Path) -> None:
    with LocalMirror.serving(published) as mirror:
        source = source_for(published, mirrors=(mirror.url,))
        ds = load_idx(source, **FAST)
    assert sorted(mirror.hits) == sorted(p.name for p in published.values())
    for path in published.values():
        assert md5_of(cache / "tiny" / path.name) == md5_of(path)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (90, 10, 20)
    expected = read_idx(published[IDX_STEMS[2]]).reshape(20, -1) / 255.0
    np.testing.assert_allclose(ds.x_test.numpy(), expected, rtol=0, atol=1e-7)
    assert ds.source == str(cache / "tiny")
    assert _no_partial_files(cache / "tiny") == []


def test_404_on_first_mirror_then_good_mirror(published: dict[str, Path]) -> None:
    with LocalMirror() as empty, LocalMirror.serving(published) as good:
        source = source_for(published, mirrors=(empty.url, good.url))
        ds = load_idx(source, **FAST)
    assert len(ds.y_test) == 20
    # a 404 is not retried: one request per file on the empty mirror
    assert all(empty.hit_count(p.name) == 1 for p in published.values())


def test_dropped_connection_is_retried_on_the_same_mirror(published: dict[str, Path]) -> None:
    with LocalMirror.serving(published) as mirror:
        mirror.fail(TRAIN_IMAGES, "drop", times=2)
        mirror.fail("t10k-labels-idx1-ubyte.gz", "500", times=1)
        ds = load_idx(source_for(published, mirrors=(mirror.url,)), **FAST)
    assert mirror.hit_count(TRAIN_IMAGES) == 3
    assert mirror.hit_count("t10k-labels-idx1-ubyte.gz") == 2
    assert len(ds.x_train) == 90


def test_mirror_that_always_drops_gives_way_to_the_next(
    published: dict[str, Path], cache: Path
) -> None:
    with LocalMirror.serving(published) as bad, LocalMirror.serving(published) as good:
        bad.fail(TRAIN_IMAGES, "drop", times=-1)
        load_idx(source_for(published, mirrors=(bad.url, good.url)), **FAST)
    assert bad.hit_count(TRAIN_IMAGES) == FAST["retries"]
    assert good.hit_count(TRAIN_IMAGES) == 1
    assert md5_of(cache / "tiny" / TRAIN_IMAGES) == md5_of(published[IDX_STEMS[0]])


def test_partial_download_leaves_no_file(published: dict[str, Path], cache: Path) -> None:
    with LocalMirror.serving(published) as mirror:
        mirror.fail(TRAIN_IMAGES, "drop", times=-1)
        with pytest.raises(DataError) as err:
            load_idx(source_for(published, mirrors=(mirror.url,)), **FAST)
    message = str(err.value)
    assert "connection dropped after" in message and TRAIN_IMAGES in message
    assert "(attempt 3/3)" in message
    target = cache / "tiny"
    assert not (target / TRAIN_IMAGES).exists()
    assert _no_partial_files(target) == []
    # the other three files arrived intact and stay for next time
    assert (target / "train-labels-idx1-ubyte.gz").is_file()


def test_corrupt_file_on_disk_is_fetched_again(published: dict[str, Path], cache: Path) -> None:
    target = cache / "tiny"
    write_idx_set(target)  # same names, same generator: a complete copy
    flip_byte(target / TRAIN_IMAGES)  # ... with one corrupt file
    with LocalMirror.serving(published) as mirror:
        ds = load_idx(source_for(published, mirrors=(mirror.url,)), **FAST)
    assert mirror.hits == [TRAIN_IMAGES]  # only the corrupt one was downloaded
    assert md5_of(target / TRAIN_IMAGES) == md5_of(published[IDX_STEMS[0]])
    assert len(ds.x_train) == 90


def test_corrupt_file_without_download_is_a_clear_error(
    published: dict[str, Path], cache: Path
) -> None:
    target = cache / "tiny"
    write_idx_set(target)
    flip_byte(target / TRAIN_IMAGES)
    source = source_for(published, mirrors=(closed_port_url(),))
    with pytest.raises(DataError) as err:
        load_idx(source, download=False, **FAST)
    message = str(err.value)
    assert f"{target / TRAIN_IMAGES}: checksum mismatch" in message
    assert md5_of(published[IDX_STEMS[0]]) in message  # the expected checksum
    assert md5_of(target / TRAIN_IMAGES) in message  # the one found
    assert "download=False" in message


def test_checksum_mismatch_on_the_server(published: dict[str, Path], cache: Path) -> None:
    """The real MNIST spec, with its published MD5s, against a mirror serving other files."""
    with LocalMirror.serving(published) as mirror, pytest.raises(DataError) as err:
        load_dataset("mnist", mirrors=[mirror.url], progress=False)
    message = str(err.value)
    expected = MNIST.files[0].md5
    assert expected is not None
    assert f"checksum mismatch for {TRAIN_IMAGES}: MD5 {md5_of(published[IDX_STEMS[0]])}" in message
    assert f"expected {expected}" in message
    assert mirror.hit_count(TRAIN_IMAGES) == 1  # a bad checksum is not retried on that mirror
    assert not (cache / "mnist" / TRAIN_IMAGES).exists()
    assert _no_partial_files(cache / "mnist") == []


def test_mirror_list_from_the_environment(
    published: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalMirror.serving(published) as mirror:
        monkeypatch.setenv("ADVISOR_MNIST_MIRRORS", f"{closed_port_url()}, {mirror.url}")
        with pytest.raises(DataError, match="checksum mismatch"):
            load_dataset("mnist", progress=False)
    assert mirror.hit_count(TRAIN_IMAGES) == 1


def test_all_mirrors_failing_says_what_where_and_how(
    published: dict[str, Path], cache: Path
) -> None:
    dead = closed_port_url()
    with LocalMirror() as empty:
        source = source_for(published, mirrors=(dead, empty.url))
        with pytest.raises(DataError) as err:
            load_idx(source, **FAST)
    message = str(err.value)
    for path in published.values():
        assert path.name in message
    assert "4 of 4 files missing" in message
    assert f"looked in {cache / 'tiny'}" in message
    assert f"{dead}{TRAIN_IMAGES}: unreachable" in message
    assert f"{empty.url}{TRAIN_IMAGES}: HTTP 404" in message
    assert "To place them by hand" in message
    assert "\n" not in message  # the CLI prints one line


def test_mirrors_argument_beats_the_environment(
    published: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalMirror.serving(published) as mirror:
        source = replace(source_for(published), mirrors_env="ADVISOR_TINY_MIRRORS")
        dead = closed_port_url()
        monkeypatch.setenv("ADVISOR_TINY_MIRRORS", f" {dead} ,")
        assert source.resolved_mirrors() == (dead,)
        ds = load_idx(source, mirrors=[mirror.url], **FAST)
    assert len(ds.x_test) == 20
    assert mirror.hit_count(TRAIN_IMAGES) == 1


def test_download_file_progress_on_stderr(
    published: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = published[IDX_STEMS[1]]
    with LocalMirror.serving(published) as mirror:
        out = download_file(expected_remote(path), [mirror.url], tmp_path / "dl", progress=True)
    assert md5_file(out) == md5_of(path)
    err = capsys.readouterr().err
    assert f"downloading {path.name}" in err and "MB in" in err


def test_no_mirror_at_all(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no mirror given"):
        download_file(RemoteFile("x.gz", md5="0" * 32), [], tmp_path)


def test_recompressed_copy_passes_by_its_content(published: dict[str, Path]) -> None:
    """Debian recompresses the published .gz files: other bytes, same content."""
    path = published[IDX_STEMS[0]]
    content = gzip.decompress(path.read_bytes())
    recompressed = gzip.compress(content, compresslevel=1, mtime=1_591_347_949)
    source = source_for(published)
    remote = source.files[0]
    assert md5_of(path) == remote.md5
    assert checksum_problem(remote, recompressed) is None
    assert checksum_problem(remote, content) is None  # stored unpacked
    problem = checksum_problem(remote, recompressed[:-8])
    assert problem is not None and remote.md5 in problem
    assert checksum_problem(RemoteFile(remote.name, remote.md5), recompressed) is not None
