"""Several tuning processes on one machine, sharing one study through the storage.

No home-made distribution: every worker is an ordinary :func:`advisor.tune` on the same
study and storage (a journal file by default, safe for several processes), exactly as
workers on several machines share a PostgreSQL storage. The CPU cores are shared out.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import TrainingError

if TYPE_CHECKING:
    from advisor.results import TuneResult


def _worker(kwargs: dict[str, Any]) -> None:
    from advisor.tuner import tune

    tune(**kwargs)


def run_workers(n: int, *, threads: int | None, kwargs: dict[str, Any]) -> TuneResult:
    """Run ``n`` workers (this process and ``n - 1`` children) on one study; return the result."""
    from advisor.tuner import DEFAULT_OUT, tune

    kwargs = dict(kwargs)
    if kwargs.get("study") is None:
        name = kwargs["dataset"] if isinstance(kwargs["dataset"], str) else "custom"
        kwargs["study"] = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if kwargs.get("storage") is None:  # every worker must open the same journal file
        out = Path(kwargs["out"]) if kwargs.get("out") is not None else DEFAULT_OUT
        kwargs["storage"] = f"journal:{(out / 'studies.journal').resolve()}"
    per_worker = threads or max(1, (os.cpu_count() or 1) // n)
    ctx = mp.get_context("spawn")
    children = []
    for i in range(1, n):
        child = dict(kwargs, progress=False, out=None, workers=1, threads=per_worker)
        child["sampler_seed"] = kwargs["seed"] * 1000 + i  # distinct TPE streams, same trial seeds
        p = ctx.Process(target=_worker, args=(child,), name=f"advisor-worker-{i}")
        p.start()
        children.append(p)
    try:
        result = tune(**dict(kwargs, workers=1, threads=per_worker))
    finally:
        for p in children:
            p.join()
    bad = [p.name for p in children if p.exitcode != 0]
    if bad:
        raise TrainingError(
            f"worker process(es) {', '.join(bad)} failed; the study keeps what they finished."
        )
    return result
