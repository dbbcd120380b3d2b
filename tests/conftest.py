"""Shared fixtures: a real PostgreSQL server for the distributed tests, one-thread torch."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# pytest -n 2 (pyproject's addopts) runs two test processes on the two cores: each gets one
# torch thread, and so do the processes the tests start (they inherit it). With torch's
# default of a thread per core, four busy-waiting OpenMP threads shared two cores and small
# GEMMs ran several times slower (the suite: 615 s; with one thread each, 377 s).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def postgres_up(pg_dir: str, port: int) -> str:
    """Start a throwaway PostgreSQL cluster (``.ci/postgres-up``) in ``pg_dir`` on ``port``;
    return its URL. Outside CI the test skips, with the reason, when no server can be
    started here; in CI (``CI=true``) it fails."""
    env = dict(os.environ, ADVISOR_PG_DIR=pg_dir, ADVISOR_PG_PORT=str(port))
    try:
        out = subprocess.run(
            ["bash", str(ROOT / ".ci" / "postgres-up")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        out = None
        reason = str(exc)
    else:
        reason = (out.stderr or out.stdout).strip()[-300:]
    line = out.stdout.strip() if out is not None and out.returncode == 0 else ""
    if not line.startswith("export ADVISOR_TEST_POSTGRES_URL="):
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a PostgreSQL server and none could be started: {reason}")
        pytest.skip(
            f"no PostgreSQL server: set ADVISOR_TEST_POSTGRES_URL or install postgresql ({reason})"
        )
    return line.split("=", 1)[1]


def postgres_down(pg_dir: str) -> None:
    env = dict(os.environ, ADVISOR_PG_DIR=pg_dir)
    subprocess.run(["bash", str(ROOT / ".ci" / "postgres-down")], env=env, capture_output=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: ``$ADVISOR_TEST_POSTGRES_URL`` (CI starts one), else a throwaway cluster."""
    url = os.environ.get("ADVISOR_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    # one per test process (pytest-xdist runs several): a free port and a folder of its own
    port = free_port()
    pg_dir = f"/tmp/advisor-pg-tests-{os.getpid()}-{port}"
    yield postgres_up(pg_dir, port)
    postgres_down(pg_dir)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on when asked."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """A throwaway PostgreSQL cluster a test may stop and restart (``pg_ctl``, as its owner)."""

    url: str
    pg_dir: str

    def _pg_ctl(self, *args: str) -> None:
        bins = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()],
        )
        cmd = " ".join([str(bins[-1] / "pg_ctl"), "-D", self.pg_dir, "-w", *args])
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", cmd],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        # restart starts a stopped server with the options of its first start (postmaster.opts)
        self._pg_ctl("-l", f"{self.pg_dir}/server.log", "restart")

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "-l", f"{self.pg_dir}/server.log", "restart")


@pytest.fixture
def own_postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster of the test's own, on a free port: stopping or restarting it does
    not disturb the shared server other tests use."""
    port = free_port()
    pg_dir = f"/tmp/advisor-pg-own-{os.getpid()}-{port}"
    url = postgres_up(pg_dir, port)
    yield Cluster(url, pg_dir)
    postgres_down(pg_dir)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures(...)``).

    The 2 cores are shared: two busy-waiting OpenMP threads against another process run
    small GEMMs up to 100x slower than one thread does.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def wait_for_hold(hold: Path, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
    """Wait until a tuning subprocess started with ``ADVISOR_TEST_HOLD_FILE=hold`` holds a
    population in flight after a finished trial (it writes the file and waits); fail with
    its output if it exits or never gets there."""
    deadline = time.monotonic() + timeout_s
    while not hold.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the tuning process never held a population: {proc.communicate()}")
        time.sleep(0.05)
