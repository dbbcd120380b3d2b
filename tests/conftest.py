"""Shared fixtures: a real PostgreSQL server for the distributed tests, one-thread torch."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: ``$ADVISOR_TEST_POSTGRES_URL`` (CI starts one), else a throwaway cluster.

    Outside CI the tests skip, with the reason, when no server can be started here; in CI
    (``CI=true``) a missing server fails them.
    """
    url = os.environ.get("ADVISOR_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    env = dict(os.environ, ADVISOR_PG_DIR="/tmp/advisor-pg-tests", ADVISOR_PG_PORT="55433")
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
    yield line.split("=", 1)[1]
    subprocess.run(["bash", str(ROOT / ".ci" / "postgres-down")], env=env, capture_output=True)


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
