"""Several tuning processes on one machine, sharing one study through the storage.

No home-made distribution: every worker is an ordinary :class:`~advisor.tuning.session.Session`
on the same study and storage (a journal file by default, safe for several processes),
exactly as workers on several machines share a PostgreSQL storage. The CPU cores are
shared out.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import replace

from advisor.core.errors import TrainingError
from advisor.tuning.config import TuneConfig
from advisor.tuning.result import TuneResult
from advisor.tuning.session import Session


def run_session(config: TuneConfig, started_at: float | None = None) -> TuneResult:
    """One worker: this process runs a session of ``config`` to its end; the budget counts
    from ``started_at`` (``time.time()``, default now)."""
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    return Session.open(config, started_at).run()


def run_workers(config: TuneConfig, started_at: float | None = None) -> TuneResult:
    """Run ``config.workers`` sessions (this process and ``workers - 1`` children) on one
    study; return this process's result (every worker reads the same one back)."""
    n = config.workers
    storage = config.storage
    if storage is None:  # every worker must open the same journal file
        storage = f"journal:{config.journal_path.resolve()}"
    per_worker = config.threads or max(1, (os.cpu_count() or 1) // n)
    shared = replace(config, storage=storage, workers=1, threads=per_worker)
    ctx = mp.get_context("spawn")
    children = []
    for i in range(1, n):
        # distinct TPE streams, the same trial seeds
        child = replace(shared, progress=False, out=None, sampler_seed=config.seed * 1000 + i)
        p = ctx.Process(target=run_session, args=(child, started_at), name=f"advisor-worker-{i}")
        p.start()
        children.append(p)
    try:
        result = run_session(shared, started_at)
    finally:
        for p in children:
            p.join()
    bad = [p.name for p in children if p.exitcode != 0]
    if bad:
        raise TrainingError(
            f"worker process(es) {', '.join(bad)} failed; the study keeps what they finished."
        )
    return result
