"""A large study: tens of thousands of finished trials, then `advisor report` and a resumed `advisor tune`.

    python benchmarks/large_study.py                    # 20,000 trials in a journal file
    python benchmarks/large_study.py --doc              # ... and write the figures into docs/distributed.md
    python benchmarks/large_study.py --storage postgresql://u:p@127.0.0.1/db --trials 20000

The study is made the way `advisor tune` makes one (its settings, its search space sized for a
long budget, the quasi-random first batch queued), then ``--trials`` finished trials are
synthesized through the storage API (``study.add_trials``: parameters drawn from the real
search space, a quarter complete, the rest pruned after one or two epochs, as successive
halving leaves them), and the finalist stage is run for real. Then, each in a fresh process:

- ``advisor report`` on the study: wall time and peak memory (RSS);
- ``advisor tune`` continuing it for ``--batches`` populations: time until its first trial
  is asked (imports, data, the whole study read back), sampler time per trial, wall time and
  peak memory; once with the bounded history TPE sees (:mod:`advisor.tuning.sampler`) and
  once with the whole study, for comparison.

The machine is shared: timings are of one run; compare rows of the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_files import write_section  # noqa: E402
from machine import describe  # noqa: E402

DOC = ROOT / "docs" / "distributed.md"
MARKER = "large-study-summary"
#: The options every process of this benchmark passes to ``advisor tune`` (the same study).
TUNE = ["--epochs", "3", "--population", "8", "--seeds", "2", "--finalists", "2", "--device", "cpu"]


def synthesize(study: str, storage: str | None, out: Path, n: int, seed: int = 0) -> dict[str, Any]:
    """Create ``study`` as `advisor tune` would, add ``n`` finished trials, run its finalists."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from advisor.tuning import schema
    from advisor.tuning.config import TuneConfig
    from advisor.tuning.finals import run_finals
    from advisor.tuning.session import Session

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = TuneConfig(
        study=study,
        storage=storage,
        out=out,
        budget="10h",
        epochs=3,
        population=8,
        seeds=2,
        finalists=2,
        device="cpu",
    )
    session = Session.open(config)
    t0 = time.perf_counter()
    search, space, _ = session._open_search()  # creates it: settings, space, first batch queued
    rng = random.Random(seed)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trials = []
    for i in range(n):
        t = draw.ask()
        optimizer, hp, _ = space.suggest(t)
        draw.tell(t, state=TrialState.PRUNED)
        # a smooth landscape over log(lr) with noise: accuracy peaks near lr = 3e-3
        acc = 0.93 - 0.03 * (math.log10(hp["lr"]) + 2.5) ** 2 + rng.gauss(0.0, 0.01)
        acc = min(max(acc, 0.1), 0.99)
        rung = rng.choices([1, 2, 3], weights=[60, 15, 25])[0]
        curve = {e: acc - 0.02 * (3 - e) for e in range(1, rung + 1)}
        complete = rung == 3
        trials.append(
            create_trial(
                params=t.params,
                distributions=t.distributions,
                value=curve[3] if complete else None,
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                intermediate_values=curve,
                user_attrs={schema.WORKER: f"synthetic:0:{i % 8}"}
                | ({} if complete else {schema.STATUS: schema.PRUNED}),
            )
        )
    search.add_trials(trials)
    t_add = time.perf_counter() - t0
    final = run_finals(
        search,
        space,
        finalists=2,
        seeds=2,
        seed=0,
        train=session.train,
        data=session.data,
        epochs=3,
        worker=session.worker,
    )
    final.set_user_attr(schema.ELAPSED, time.perf_counter() - t0)
    return {"trials": n, "synthesize_s": round(t_add, 1), "storage": session.store_display}


# ------------------------------------------------------------------ measured processes


def _measured(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[int, str, str, float, float]:
    """Run ``cmd``; return ``(rc, stdout, stderr, wall s, peak RSS MiB)``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        out, err = so.read().decode(), se.read().decode()
    return proc.returncode, out, err, wall, usage.ru_maxrss / 1024


def resume_probe(argv: list[str], unbounded: bool, log: Path, launched: float) -> None:
    """``advisor tune argv`` with its sampler timed; figures written to ``log`` (JSON).
    ``launched``: ``time.time()`` when the parent started this process."""
    import optuna

    from advisor.cli import main
    from advisor.tuning import sampler

    if unbounded:
        sampler.RECENT = 10**9
    spent = {"s": 0.0, "trials": 0, "first_ask": None, "history": 0}
    tpe = optuna.samplers.TPESampler
    for name in ("infer_relative_search_space", "sample_relative", "sample_independent"):
        original = getattr(tpe, name)

        def timed(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return __original(self, *args, **kwargs)
            finally:
                spent["s"] += time.perf_counter() - t

        setattr(tpe, name, timed)
    history_init = sampler.History.__init__

    def timed_history(self: Any, study: Any) -> None:
        t = time.perf_counter()
        history_init(self, study)
        spent["s"] += time.perf_counter() - t
        spent["history"] = max(spent["history"], self.size)

    sampler.History.__init__ = timed_history  # type: ignore[method-assign]
    ask = optuna.Study.ask

    def counted_ask(self: Any, *args: Any, **kwargs: Any) -> Any:
        if spent["first_ask"] is None:
            spent["first_ask"] = time.time() - launched
        spent["trials"] += 1
        return ask(self, *args, **kwargs)

    optuna.Study.ask = counted_ask  # type: ignore[method-assign]
    try:
        main(argv)
    finally:
        log.write_text(json.dumps(spent))


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="advisor-large-"))
    study = "large"
    storage = args.storage or f"journal:{work / 'studies.journal'}"
    made = synthesize(study, storage, work, args.trials)
    where = ["--study", study, "--storage", storage]
    report = _measured(
        [
            sys.executable,
            "-m",
            "advisor",
            "report",
            *where,
            "--out",
            str(work / "report"),
            "--format",
            "json",
        ]
    )
    if report[0] != 0:
        sys.exit(f"advisor report failed: {report[2][-500:]}")
    counted = json.loads(report[1])["trials"]
    figures: dict[str, Any] = {
        "machine": describe(),
        "trials": args.trials,
        "storage": "PostgreSQL" if args.storage else "journal file",
        "journal_mib": round((work / "studies.journal").stat().st_size / 2**20, 1)
        if not args.storage
        else None,
        "synthesize_s": made["synthesize_s"],
        "report": {"wall_s": round(report[3], 1), "peak_mib": round(report[4])},
        "report_counts": counted,
    }
    done = sum(counted[k] for k in ("complete", "pruned", "diverged", "failed"))
    for label, unbounded in (("bounded", False), ("whole", True)):
        cap = done + 8 * args.batches
        log = work / f"resume-{label}.json"
        cmd = [
            sys.executable,
            __file__,
            "resume-probe",
            str(log),
            "unbounded" if unbounded else "bounded",
            repr(time.time()),
            "tune",
            *where,
            "--trials",
            str(cap),
            "--budget",
            "10h",
            "--threads",
            "1",
            *TUNE,
            "--out",
            str(work / f"resume-{label}"),
            "--quiet",
            "--format",
            "json",
        ]
        rc, out, err, wall, peak = _measured(cmd)
        if rc != 0:
            sys.exit(f"resuming failed ({label}): {err[-500:]}")
        spent = json.loads(log.read_text())
        figures[f"resume_{label}"] = {
            "first_trial_asked_s": round(spent["first_ask"], 1),
            "sampler_ms_per_trial": round(1000 * spent["s"] / max(spent["trials"], 1)),
            "trials_asked": spent["trials"],
            "history_seen": spent["history"],
            "wall_s": round(wall, 1),
            "peak_mib": round(peak),
        }
        done = cap
    return figures


def summary(f: dict[str, Any]) -> str:
    b, w, r = f["resume_bounded"], f["resume_whole"], f["report"]
    size = f" ({f['journal_mib']} MiB)" if f.get("journal_mib") else ""
    return "\n".join(
        [
            f"A study of **{f['trials']:,} finished trials** in a {f['storage']}{size}, synthesized "
            f"through the storage API in {f['synthesize_s']:.0f} s:",
            "",
            "| step | wall time | peak memory |",
            "|---|---|---|",
            f"| `advisor report` (whole report, 4 figures) | {r['wall_s']:.1f} s | {r['peak_mib']} MiB |",
            f"| `advisor tune` resuming it: first trial asked | {b['first_trial_asked_s']:.1f} s | |",
            f"| `advisor tune` resuming it: {b['trials_asked']} more trials, finalists, report | "
            f"{b['wall_s']:.1f} s | {b['peak_mib']} MiB |",
            "",
            f"Sampler (TPE) time per trial while resuming: **{b['sampler_ms_per_trial']} ms** with the "
            f"bounded history it sees ({b['history_seen']:,} trials), {w['sampler_ms_per_trial']} ms "
            f"when shown the whole study ({w['history_seen']:,} trials).",
            "",
            f"Machine: {f['machine']}.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["resume-probe"]:
        resume_probe(argv[4:], argv[2] == "unbounded", Path(argv[1]), float(argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=2, help="populations of 8 run when resuming")
    parser.add_argument("--storage", default=None, help="an Optuna URL (default: a journal file)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--doc", action="store_true", help="write the summary into docs/distributed.md"
    )
    args = parser.parse_args(argv)
    figures = run(args)
    text = summary(figures)
    print(json.dumps(figures, indent=2) if args.json else text)
    if args.doc:
        shown = [a for a in argv if a != "--json" and not a.startswith("postgresql")]
        write_section(
            DOC,
            MARKER,
            "benchmarks/large_study.py --doc",
            f"Generated by `{' '.join(['python benchmarks/large_study.py', *shown])}`.\n\n{text}",
        )


if __name__ == "__main__":
    main()
