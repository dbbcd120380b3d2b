from __future__ import annotations

import json
import math
import re
import resource

from click.testing import CliRunner

from advisor.bench.speed import run_bench
from advisor.cli import cli

ROW_KEYS = {"trainer", "population", "s_per_model_epoch", "roofline_fraction", "peak_rss_mb"}


def _check(payload: dict[str, object], trainers: list[tuple[str, int]]) -> None:
    assert {"gemm_gflops", "flop_per_model_epoch", "rows"} <= set(payload)
    for key in ("gemm_gflops", "flop_per_model_epoch"):
        value = payload[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0
    rows = payload["rows"]
    assert isinstance(rows, list)
    assert [(r["trainer"], r["population"]) for r in rows] == trainers
    for row in rows:
        assert set(row) == ROW_KEYS
        for key in ("s_per_model_epoch", "roofline_fraction", "peak_rss_mb"):
            assert math.isfinite(row[key]) and row[key] > 0


def test_run_bench_in_process() -> None:
    result = run_bench("mnist-5k", [1, 2], epochs=1, device="cpu", isolate=False, train_limit=512)
    _check(
        result.to_dict(),
        [("dataloader", 1), ("reference", 1), ("population", 1), ("population", 2)],
    )
    assert result.n_train == 512
    last = result.to_text().splitlines()[-1]
    assert re.fullmatch(
        r"population K=[12]: \d+\.\dx the reference trainer, \d+% of roofline", last
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_rows_run_in_fresh_processes() -> None:
    """Isolated rows train in child processes: the CPU time shows up as the children's."""
    before = _children_cpu_s()
    result = run_bench(
        "mnist-5k", [2], trainers=["population"], device="cpu", isolate=True, train_limit=256
    )
    _check(result.to_dict(), [("population", 2)])
    # a fresh interpreter imports torch, loads the data and trains: well over a CPU second
    assert _children_cpu_s() - before > 0.5
    assert result.to_dict()["isolated"] is True


def test_cli_json() -> None:
    result = CliRunner().invoke(
        cli,
        ["bench", "--dataset", "mnist-5k", "--population", "2", "--in-process", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    _check(payload, [("dataloader", 1), ("reference", 1), ("population", 2)])


def test_cli_rejects_bad_population_sizes() -> None:
    result = CliRunner().invoke(cli, ["bench", "--population", "4,x"])
    assert result.exit_code == 2
    assert "comma-separated integers" in result.output
