"""Chaos run: workers on one PostgreSQL study, SIGKILLed at random and restarted, then checked.

    python benchmarks/chaos.py                      # 4 workers, 210 s budget, a kill every 10-20 s
    python benchmarks/chaos.py --doc                # ... and write the figures into docs/distributed.md
    python benchmarks/chaos.py --budget 50s --kill-every 8,12 --storage postgresql://u:p@127.0.0.1/db

Without ``--storage`` a throwaway PostgreSQL cluster is started on 127.0.0.1 (``.ci/postgres-up``
in a folder of its own, on a free port) and removed afterwards. Each worker is an ordinary
``advisor tune`` on the same study, run through this file's ``worker`` mode, which appends to a
side log every tell the process makes (after the storage accepted it), its first piece of work
(first trial asked, or first finalist task taken) and the choice of the finalists. A controller
SIGKILLs a random live worker every ``--kill-every`` seconds and restarts it at once with the
same command, until the first worker finishes the study; then every worker is left to finish.

Afterwards the storage is checked against the side log (exit 1 when a check fails):

- no finished trial is lost (every logged tell is in the storage, same state and value) or
  duplicated (no trial told twice, no interrupted trial retried twice, no seed run twice);
- no trial of either study is left RUNNING;
- the finalist stage ran exactly once (finalists chosen once, each seed completed once);
- every worker printed the same recommendation, the one ``advisor report`` rebuilds.

Figures: kills survived, trials, and the time lost to recovery: for each kill, the wall time
of the batch in flight that was thrown away plus the time until the restarted worker was
back at work (new process, imports, data, joining the study).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_files import write_section  # noqa: E402
from machine import describe  # noqa: E402

from advisor.core.units import format_duration, parse_duration  # noqa: E402

DOC = ROOT / "docs" / "distributed.md"
MARKER = "chaos-summary"


# ------------------------------------------------------------------ worker mode


def worker(log_dir: Path, argv: list[str]) -> None:
    """Run ``advisor`` with ``argv``, logging this process's tells to ``log_dir/<pid>.jsonl``."""
    import optuna

    from advisor.cli import main
    from advisor.tuning import finals, schema

    log = open(log_dir / f"{os.getpid()}.jsonl", "a")  # noqa: SIM115 (open for the process)

    def emit(**event: Any) -> None:
        log.write(json.dumps({"pid": os.getpid(), "t": time.time(), **event}) + "\n")
        log.flush()
        os.fsync(log.fileno())

    tell, ask, pop, write_finalists = (
        optuna.Study.tell,
        optuna.Study.ask,
        finals._pop_waiting,
        schema.write_finalists,
    )
    working = []

    def logged_tell(self: optuna.Study, *args: Any, **kwargs: Any) -> Any:
        frozen = tell(self, *args, **kwargs)
        value = frozen.value if frozen.values is not None else None
        emit(
            ev="tell",
            study=self.study_name,
            number=frozen.number,
            state=frozen.state.name,
            value=value,
        )
        return frozen

    def at_work() -> None:
        if not working:
            working.append(True)
            emit(ev="work")

    def logged_ask(self: optuna.Study, *args: Any, **kwargs: Any) -> Any:
        trial = ask(self, *args, **kwargs)
        at_work()
        return trial

    def logged_pop(*args: Any, **kwargs: Any) -> Any:
        trial = pop(*args, **kwargs)
        if trial is not None:
            at_work()
        return trial

    def logged_write_finalists(final: Any, specs: Any) -> None:
        write_finalists(final, specs)
        emit(ev="finalists", n=len(specs))

    optuna.Study.tell = logged_tell  # type: ignore[method-assign]
    optuna.Study.ask = logged_ask  # type: ignore[method-assign]
    finals._pop_waiting = logged_pop
    schema.write_finalists = logged_write_finalists
    emit(ev="start")
    main(argv)


# ------------------------------------------------------------------ the controller


@dataclass
class Run:
    slot: int
    pid: int
    started: float
    ended: float | None = None
    rc: int | None = None
    killed: bool = False


@dataclass
class Kill:
    t: float
    slot: int
    pid: int


@dataclass
class Chaos:
    study: str
    workdir: Path
    runs: list[Run] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    t0: float = 0.0
    t1: float = 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres() -> tuple[str, str]:
    """A throwaway cluster of this run; returns ``(url, folder)``."""
    pg_dir = f"/tmp/advisor-chaos-pg-{os.getpid()}"
    env = dict(os.environ, ADVISOR_PG_DIR=pg_dir, ADVISOR_PG_PORT=str(_free_port()))
    out = subprocess.run(
        ["bash", str(ROOT / ".ci" / "postgres-up")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    line = out.stdout.strip()
    if out.returncode != 0 or not line.startswith("export ADVISOR_TEST_POSTGRES_URL="):
        sys.exit(f"chaos: cannot start PostgreSQL ({(out.stderr or out.stdout).strip()[-300:]})")
    return line.split("=", 1)[1], pg_dir


def stop_postgres(pg_dir: str) -> None:
    env = dict(os.environ, ADVISOR_PG_DIR=pg_dir)
    subprocess.run(["bash", str(ROOT / ".ci" / "postgres-down")], env=env, capture_output=True)


def tune_args(args: argparse.Namespace, study: str, url: str, out: Path) -> list[str]:
    return [
        "tune",
        *("--study", study, "--storage", url, "--out", str(out)),
        *("--dataset", args.dataset, "--budget", args.budget, "--epochs", str(args.epochs)),
        *("--population", str(args.population), "--seeds", str(args.seeds)),
        *("--finalists", str(args.finalists), "--device", "cpu", "--threads", "1"),
        *("--quiet", "--format", "json"),
    ]


def run_chaos(args: argparse.Namespace, url: str) -> Chaos:
    chaos = Chaos(
        study=f"chaos-{uuid.uuid4().hex[:8]}",
        workdir=Path(tempfile.mkdtemp(prefix="advisor-chaos-")),
    )
    logs = chaos.workdir / "side-log"
    logs.mkdir()
    rng = random.Random(args.seed)
    lo, hi = (float(x) for x in args.kill_every.split(","))
    budget_s = parse_duration(args.budget, "budget")
    procs: dict[int, tuple[subprocess.Popen[bytes], Run]] = {}

    def start(slot: int) -> None:
        k = sum(r.slot == slot for r in chaos.runs)
        out = chaos.workdir / f"w{slot}"
        cmd = [sys.executable, __file__, "worker", "--log", str(logs), "--"]
        cmd += tune_args(args, chaos.study, url, out)
        with (
            open(chaos.workdir / f"w{slot}-{k}.json", "wb") as so,
            open(chaos.workdir / f"w{slot}-{k}.err", "wb") as se,
        ):
            proc = subprocess.Popen(cmd, stdout=so, stderr=se)
        run = Run(slot, proc.pid, time.time())
        chaos.runs.append(run)
        procs[slot] = (proc, run)

    chaos.t0 = time.time()
    for slot in range(args.workers):
        start(slot)
    next_kill = time.monotonic() + rng.uniform(lo, hi)
    hard_stop = time.monotonic() + budget_s + args.grace
    finished: set[int] = set()
    killing = True
    while len(finished) < args.workers:
        for slot, (proc, run) in list(procs.items()):
            if slot in finished or proc.poll() is None:
                continue
            run.ended, run.rc = time.time(), proc.returncode
            finished.add(slot)  # a clean exit, or a failure the checks report
            if proc.returncode == 0:
                killing = False  # the study is done: let the others finish it
        live = [s for s in procs if s not in finished]
        if len(chaos.kills) >= args.max_kills:
            killing = False
        if killing and live and time.monotonic() >= next_kill:
            slot = rng.choice(live)
            proc, run = procs[slot]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            run.ended, run.rc, run.killed = time.time(), proc.returncode, True
            chaos.kills.append(Kill(run.ended, slot, run.pid))
            print(
                f"chaos: {run.ended - chaos.t0:6.1f} s  killed worker {slot} (pid {run.pid}), restarting",
                file=sys.stderr,
            )
            start(slot)
            next_kill = time.monotonic() + rng.uniform(lo, hi)
        if time.monotonic() > hard_stop:
            for slot in live:
                procs[slot][0].kill()
            sys.exit(f"chaos: the workers did not finish within the budget + {args.grace:.0f} s")
        time.sleep(0.2)
    chaos.t1 = time.time()
    return chaos


# ------------------------------------------------------------------ checks and figures


def _events(workdir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((workdir / "side-log").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                with contextlib.suppress(ValueError):  # a process killed while logging
                    events.append(json.loads(line))
    return sorted(events, key=lambda e: e["t"])


def analyse(chaos: Chaos, url: str, args: argparse.Namespace) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from advisor.tuning import schema
    from advisor.tuning.readback import build_result
    from advisor.tuning.storage import open_storage

    storage, _ = open_storage(url, Path("unused"))
    final_name = chaos.study + schema.FINAL_SUFFIX
    search = optuna.load_study(study_name=chaos.study, storage=storage).get_trials()
    final = optuna.load_study(study_name=final_name, storage=storage).get_trials()
    stored = {(chaos.study, t.number): t for t in search} | {
        (final_name, t.number): t for t in final
    }
    events = _events(chaos.workdir)
    tells = [e for e in events if e["ev"] == "tell"]
    told = {(e["study"], e["number"]): e for e in tells}

    lost = [
        f"{k[0]}#{k[1]}"
        for k, e in told.items()
        if k not in stored
        or stored[k].state.name != e["state"]
        or (e["value"] is not None and stored[k].value != e["value"])
    ]
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    unlogged = [k for k, t in stored.items() if t.state in finished_states and k not in told]
    retries = [t.user_attrs[schema.RETRY_OF] for t in search if schema.RETRY_OF in t.user_attrs]
    seed_runs = [
        int(t.user_attrs[schema.SEED])
        for t in final
        if t.state == TrialState.COMPLETE and schema.SEED in t.user_attrs
    ]
    running = [f"{n}#{t.number}" for (n, _), t in stored.items() if t.state == TrialState.RUNNING]
    outputs = []
    for run in chaos.runs:
        k = [r for r in chaos.runs if r.slot == run.slot].index(run)
        if run.rc == 0:
            outputs.append(json.loads((chaos.workdir / f"w{run.slot}-{k}.json").read_text()))
    rebuilt = json.loads(build_result(storage, chaos.study).to_json())
    failures = [
        f"worker {r.slot} (pid {r.pid}) exited {r.rc}: "
        + (chaos.workdir / f"w{r.slot}-{[x for x in chaos.runs if x.slot == r.slot].index(r)}.err")
        .read_text()
        .strip()[-300:]
        for r in chaos.runs
        if not r.killed and r.rc != 0
    ]
    checks = {
        "every worker finished (exit 0)": not failures and len(outputs) == args.workers,
        "no finished trial lost (side log of every tell against the storage)": not lost,
        "no trial told twice": len(tells) == len(told),
        "no interrupted trial retried twice": len(retries) == len(set(retries)),
        "no trial left RUNNING": not running,
        "finalists chosen once": sum(e["ev"] == "finalists" for e in events) == 1,
        "each finalist seed run exactly once": sorted(seed_runs) == sorted(set(seed_runs))
        and len(seed_runs) == args.seeds,
        "every worker printed the same recommendation": bool(outputs)
        and all(o["recommendation"] == rebuilt["recommendation"] for o in outputs),
    }

    # time lost to recovery, per kill
    finalists_t = next((e["t"] for e in events if e["ev"] == "finalists"), None)
    lost_s, back_s = [], []
    for kill in chaos.kills:
        mine = [
            t
            for t in search
            if str(t.user_attrs.get(schema.WORKER, "")).split(":")[1:2] == [str(kill.pid)]
            and t.user_attrs.get(schema.STATUS) == schema.INTERRUPTED
            and t.datetime_start is not None
        ]
        lost_s.append(max((kill.t - t.datetime_start.timestamp() for t in mine), default=0.0))
        nxt = next(
            (r for r in chaos.runs if r.slot == kill.slot and r.started >= kill.t - 0.01), None
        )
        first = next(
            (e["t"] for e in events if nxt and e["pid"] == nxt.pid and e["ev"] in ("work", "tell")),
            None,
        )
        if first is not None:
            back_s.append(first - kill.t)
    wall = chaos.t1 - chaos.t0
    counts = {s.name.lower(): sum(t.state == s for t in search) for s in TrialState}
    interrupted = sum(t.user_attrs.get(schema.STATUS) == schema.INTERRUPTED for t in search)
    return {
        "machine": describe(),
        "study": chaos.study,
        "workers": args.workers,
        "budget": args.budget,
        "kill_every_s": args.kill_every,
        "wall_s": round(wall, 1),
        "kills": len(chaos.kills),
        "kills_during_finals": sum(
            finalists_t is not None and k.t >= finalists_t for k in chaos.kills
        ),
        "trials": {
            "complete": counts["complete"],
            "pruned": counts["pruned"],
            "interrupted": interrupted,
            "retried": len(retries),
            "waiting": counts["waiting"],
            "told": len(tells),
            "told_not_logged": len(unlogged),
        },
        "final_seeds": len(seed_runs),
        "recovery": {
            "discarded_batch_s": round(sum(lost_s), 1),
            "back_at_work_s": round(sum(back_s), 1),
            "total_s": round(sum(lost_s) + sum(back_s), 1),
            "per_kill_mean_s": round((sum(lost_s) + sum(back_s)) / max(len(chaos.kills), 1), 1),
            "back_at_work_median_s": round(statistics.median(back_s), 1) if back_s else None,
            "back_at_work_max_s": round(max(back_s), 1) if back_s else None,
            "share_of_worker_time": round((sum(lost_s) + sum(back_s)) / (wall * args.workers), 3),
        },
        "recommendation": rebuilt["recommendation"].get("label"),
        "checks": checks,
        "failures": failures,
        "lost": lost,
        "workdir": str(chaos.workdir),
    }


def summary(r: dict[str, Any]) -> str:
    rec, t = r["recovery"], r["trials"]
    ok = all(r["checks"].values())
    lines = [
        f"Chaos run: {r['workers']} workers on one PostgreSQL study (127.0.0.1), budget {r['budget']}, "
        f"a random worker SIGKILLed every {r['kill_every_s'].replace(',', '-')} s and restarted; "
        f"{format_duration(r['wall_s'])} wall time.",
        "",
        f"- kills survived: **{r['kills']}** ({r['kills_during_finals']} during the finalist stage)",
        f"- trials: {t['complete']} complete, {t['pruned']} pruned, {t['interrupted']} interrupted by a "
        f"kill ({t['retried']} retried, {t['waiting']} still queued when the budget ran out); "
        f"{r['final_seeds']} finalist seeds; {t['told']} tells in the side log "
        f"({t['told_not_logged']} more told but killed before logging)",
        f"- time lost to recovery: **{rec['total_s']:.0f} worker-seconds** "
        f"({rec['per_kill_mean_s']:.1f} s per kill, {rec['share_of_worker_time'] * 100:.1f} % of all "
        f"worker time): {rec['discarded_batch_s']:.0f} s of batches in flight thrown away, "
        f"{rec['back_at_work_s']:.0f} s from kill to the restarted worker back at work "
        f"(median {rec['back_at_work_median_s']} s, max {rec['back_at_work_max_s']} s)",
        f"- checks: {'all passed' if ok else 'FAILED'}",
    ]
    lines += [f"  - [{'x' if v else ' '}] {k}" for k, v in r["checks"].items()]
    lines += ["", f"Machine: {r['machine']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        sep = argv.index("--")
        log_dir = Path(argv[argv.index("--log") + 1])
        worker(log_dir, argv[sep + 1 :])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--budget", default="210s", help="advisor tune --budget of each worker")
    parser.add_argument("--kill-every", default="10,20", help="seconds between kills: MIN,MAX")
    parser.add_argument("--max-kills", type=int, default=1000, help="stop killing after this many")
    parser.add_argument("--seed", type=int, default=0, help="seeds the controller's choices")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--finalists", type=int, default=2)
    parser.add_argument(
        "--grace", type=float, default=600.0, help="seconds past the budget before giving up"
    )
    parser.add_argument(
        "--storage", default=None, help="a PostgreSQL URL (default: a throwaway cluster)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--doc", action="store_true", help="write the summary into docs/distributed.md"
    )
    args = parser.parse_args(argv)
    pg_dir = None
    url = args.storage
    if url is None:
        url, pg_dir = start_postgres()
    try:
        chaos = run_chaos(args, url)
        report = analyse(chaos, url, args)
    finally:
        if pg_dir is not None:
            stop_postgres(pg_dir)
    text = summary(report)
    print(json.dumps(report, indent=2) if args.json else text)
    if args.doc:
        shown = [a for a in argv if a != "--json" and not a.startswith("postgresql")]
        cmd = " ".join(["python benchmarks/chaos.py", *shown])
        write_section(DOC, MARKER, "benchmarks/chaos.py --doc", f"Generated by `{cmd}`.\n\n{text}")
    if not all(report["checks"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
