"""Check advisor's advice against the truth, measured by grid search (issue 7).

    python benchmarks/validate_rules.py                       # every scenario; writes docs/VALIDATION.md
    python benchmarks/validate_rules.py --only tiny-data-mlp --no-doc
    python benchmarks/validate_rules.py --from-json docs/benchmarks/validation.json   # re-judge, no training
    python benchmarks/validate_rules.py --optimizers muon,lion --merge   # add optimizers to the saved grids
    python benchmarks/validate_rules.py --smoke --threads 1 --only logistic-l2-digits --no-doc --json /tmp/smoke.json
    # issue 15's full run (tens of CPU hours; a scenario's grid is saved chunk by chunk in
    # docs/benchmarks/validation-progress/ and resumes when run again; --merge keeps the
    # other scenarios, so it can run in several sittings with different --only lists):
    python benchmarks/validate_rules.py --merge --prune 2 --threads 2 --only noisy-digits,logistic-l2-digits

For each scenario of ``scenarios/`` (a kind of model users bring), the profile is
measured by ``advisor.profile_model`` and given to ``advisor.recommend``. The truth comes
from a grid over every registered optimizer x learning rate (x momentum for SGD with
momentum and Nesterov; a learning-rate-free method at its defaults plus its one knob,
Prodigy's ``d_coef``, and its defaults again as a row of their own), each point trained on
the scenario's seeds (3 unless it says; weights and minibatch order; the same seeds for
every point, so comparisons are paired). Power, tie sets and convergence:
``validation_stats``; plots, the power table and the rule lists: ``validation_report``. Validation picks each optimizer's
best grid point (mean over the seeds); its test accuracy is the optimizer's score (picking
and judging on one set would favour optimizers with more grid points). Two questions:

1. Is the measured best optimizer, or one statistically tied with it (paired t-test over
   the seeds, p >= 0.05), among advisor's top 3?
2. Does each top-3 candidate's learning-rate range contain that optimizer's best grid
   learning rate, or one tied with it (same paired test)?

Under a tight budget (``lr_draws``) the question is what a few trials find, not what a full
grid finds: an optimizer's score is the expected test accuracy of the best (by validation)
of ``lr_draws`` learning rates drawn log-uniformly from its recommended range (other
hyperparameters at their defaults).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import validation_checkpoint
import validation_report
import validation_stats
from doc_files import commands_line, write_keeping_hand_part
from machine import describe
from scenarios import HELD_OUT, SCENARIOS, Scenario

import advisor
from advisor.data.task import Task
from advisor.knowledge.optimizers import Range
from advisor.train import MemberConfig, train_members
from advisor.train.layout import model_layout
from advisor.tuning.stats import paired_p_value

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "VALIDATION.md"
RAW = ROOT / "docs" / "benchmarks" / "validation.json"
PLOT = ROOT / "docs" / "benchmarks" / "validation.png"
PLOTS = ROOT / "docs" / "benchmarks" / "validation"

SEEDS = (30_000, 30_001, 30_002)
LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
LBFGS_LRS = (0.03, 0.1, 0.3, 1.0)
#: Muon shares AdamW's learning-rate scale (match_rms_adamw); its bfloat16 Newton-Schulz
#: steps cost ~100x an Adam step on a CPU without native bfloat16, so fewer points
MUON_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
#: a learning-rate-free method: lr stays 1, its knob takes these values (1: its default)
KNOB_VALUES = (0.5, 1.0, 2.0)
MOMENTA = (0.5, 0.9, 0.99)
TIED_P = validation_stats.ALPHA
TOP = 3
#: --smoke: the whole pipeline on a tiny grid, 2 seeds, 1 epoch, a slice of the data
SMOKE_ROWS = 1024


def seeds_for(s: Scenario) -> tuple[int, ...]:
    """The scenario's seeds: ``s.seeds`` of them from SEEDS[0] on (SEEDS by default)."""
    n = len(SEEDS) if s.seeds is None or SMOKE else s.seeds
    return tuple(SEEDS[0] + i for i in range(n))


def smoke() -> None:
    """Shrink every grid constant for a smoke run (the pipeline end to end in seconds)."""
    global SEEDS, LRS, LBFGS_LRS, MUON_LRS, KNOB_VALUES, MOMENTA, SMOKE
    SEEDS, LRS, LBFGS_LRS, MUON_LRS = (30_000, 30_001), (1e-3, 1e-2), (1.0,), (1e-3,)
    KNOB_VALUES, MOMENTA, SMOKE = (1.0,), (0.9,), True


SMOKE = False


def shrink(data: advisor.Dataset, rows: int = SMOKE_ROWS) -> advisor.Dataset:
    """The first ``rows`` training rows and ``rows // 2`` of validation and test."""
    from dataclasses import replace

    half = rows // 2
    return replace(
        data,
        x_train=data.x_train[:rows],
        y_train=data.y_train[:rows],
        x_val=data.x_val[:half],
        y_val=data.y_val[:half],
        x_test=data.x_test[:half],
        y_test=data.y_test[:half],
    )


@dataclass
class Point:
    """One grid point: its configuration and per-seed results."""

    optimizer: str
    lr: float
    momentum: float | None
    val: list[float]
    test: list[float]
    diverged: int
    d_coef: float | None = None
    #: per seed, the validation metric after each epoch (empty in grids saved before issue 15)
    curves: list[list[float]] = field(default_factory=list)
    #: --prune dropped it after the first seed: its one seed is kept for the learning-rate
    #: curves (nothing computed is thrown away), but it is not scored: a one-seed mean is
    #: no match for the others' means, and its first seed ranked it out already
    pruned: bool = False

    @property
    def mean_val(self) -> float:
        return statistics.mean(self.val)

    @property
    def knob(self) -> float:
        """The value of the optimizer's first knob: ``lr``, or Prodigy's ``d_coef``."""
        return self.lr if self.d_coef is None else self.d_coef


def grid(
    extra_lrs: tuple[float, ...] = (), optimizers: list[str] | None = None
) -> list[tuple[str, dict[str, float]]]:
    points: list[tuple[str, dict[str, float]]] = []
    for name in optimizers or advisor.list_optimizers():
        info = advisor.get_optimizer_info(name)
        if info.lr_free:
            points += [(name, {"d_coef": k}) for k in KNOB_VALUES]
            continue
        lrs = LBFGS_LRS if info.full_batch else MUON_LRS if name == "muon" else LRS + extra_lrs
        momenta = MOMENTA if name in ("momentum", "nesterov") else (None,)
        for lr in lrs:
            for m in momenta:
                points.append((name, {"lr": lr} | ({} if m is None else {"momentum": m})))
    return points


def applies(name: str, factory: Any, data: advisor.Dataset) -> bool:
    """Whether ``name`` can train the scenario's model (Muon needs a hidden 2-D weight)."""
    if advisor.get_optimizer_info(name).param_shapes != "2d" or factory is None:
        return True
    return bool(model_layout(factory(), data.x_train[:2]).names("hidden"))


#: grid points trained between two saves of a scenario's progress (validation_checkpoint):
#: the seed MLP's population trainer takes 32 at once; a model's generic population gains
#: little beyond 16 (docs/BENCHMARKS.md), and a chunk of 16 CNN runs is under an hour
CHUNK_SEED_MLP, CHUNK_MODEL = 32, 16
#: where run_grid saves a scenario in progress (None: not saved); main sets it from --progress
PROGRESS_DIR: Path | None = None


def run_grid(
    s: Scenario, data: advisor.Dataset, progress: bool, optimizers: list[str] | None = None
) -> list[Point]:
    """Train the scenario's grid on its seeds, chunk by chunk, resuming saved progress."""
    factory = None if s.model is None else s.model(data)
    names = [n for n in optimizers or advisor.list_optimizers() if applies(n, factory, data)]
    specs = grid(s.extra_lrs, names)
    seeds = seeds_for(s)
    epochs = 1 if SMOKE else s.epochs
    key = validation_checkpoint.fingerprint(
        specs=specs,
        seeds=seeds,
        epochs=epochs,
        batch=s.batch_size,
        full_batch_epochs=s.full_batch_epochs,
        prune=PRUNE_KEEP,
        smoke=SMOKE,
        rows=len(data.y_train),
        task=s.task,
        population=s.population,
    )
    state = validation_checkpoint.load(PROGRESS_DIR, s.name, key)
    if state is None:
        points = []
        for n, h in specs:
            lr = h.get("lr", advisor.get_optimizer_info(n).defaults["lr"])
            points.append(Point(n, lr, h.get("momentum"), [], [], 0, h.get("d_coef")))
        state = validation_checkpoint.Progress(key, 0, specs, [asdict(p) for p in points])
    elif progress:
        print(
            f"  {s.name}: resuming at seed {state.seed_index + 1}/{len(seeds)}, "
            f"{len(state.current)}/{len(state.specs)} runs done",
            file=sys.stderr,
            flush=True,
        )
    specs, points = state.specs, [Point(**p) for p in state.points]  # pruned ones too
    chance = guess_score(s, data)
    task = task_keyword(s)
    chunk = CHUNK_SEED_MLP if factory is None else CHUNK_MODEL
    for i in range(state.seed_index, len(seeds)):
        seed, t0 = seeds[i], time.perf_counter()
        configs = [MemberConfig(n, h, _schedule(n), init_seed=seed) for n, h in specs]
        for start in range(len(state.current), len(configs), chunk):
            results = _train(s, configs[start : start + chunk], data, epochs, seed, factory, task)
            for r in results:
                ok = r.status == "complete"
                # a diverged run scores as a guess: that is what its model is worth
                state.current.append(
                    {
                        "val": r.val_accuracy[-1] if ok else chance,
                        "test": r.test_accuracy if ok and r.test_accuracy is not None else chance,
                        "curve": [float(a) for a in r.val_accuracy],
                        "ok": ok,
                    }
                )
            validation_checkpoint.save(PROGRESS_DIR, s.name, state)
            if progress and len(state.current) < len(configs):
                print(
                    f"  {s.name}: seed {i + 1}/{len(seeds)}, {len(state.current)}/{len(configs)} "
                    f"runs, {time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        for p, run in zip([p for p in points if not p.pruned], state.current, strict=True):
            p.val.append(run["val"])
            p.test.append(run["test"])
            p.curves.append(run["curve"])
            p.diverged += not run["ok"]
        # a tight budget's truth averages over every grid point of a range: never pruned
        if i == 0 and PRUNE_KEEP is not None and len(seeds) > 1 and s.lr_draws is None:
            keep = prune(points, PRUNE_KEEP)
            specs = [specs[j] for j in keep]
            for j, p in enumerate(points):
                p.pruned = j not in keep
        state.seed_index, state.specs, state.current = i + 1, specs, []
        state.points = [asdict(p) for p in points]
        validation_checkpoint.save(PROGRESS_DIR, s.name, state)
        if progress:
            print(
                f"  {s.name}: seed {i + 1}/{len(seeds)}, {len(configs)} runs in {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return points


def _train(
    s: Scenario,
    configs: list[MemberConfig],
    data: advisor.Dataset,
    epochs: int,
    seed: int,
    factory: Any,
    task: dict[str, Any],
) -> list[Any]:
    """train_members over ``configs``; full-batch optimizers (L-BFGS: up to 20 passes over
    the data per epoch) for ``s.full_batch_epochs`` epochs where the scenario caps them."""

    def run(chosen: list[MemberConfig], n_epochs: int) -> list[Any]:
        if not chosen:
            return []
        return train_members(
            chosen,
            data,
            epochs=n_epochs,
            batch_size=s.batch_size,
            data_seed=seed,
            evaluate_test=True,
            model_factory=factory,
            max_population=s.population,
            **task,
        )

    if s.full_batch_epochs is None or SMOKE:
        return run(configs, epochs)
    full = [advisor.get_optimizer_info(c.optimizer).full_batch for c in configs]
    rest = iter(run([c for c, f in zip(configs, full) if not f], epochs))
    capped = iter(run([c for c, f in zip(configs, full) if f], s.full_batch_epochs))
    return [next(capped) if f else next(rest) for f in full]


#: --prune K: after the first seed keep only each optimizer's K best points (by validation;
#: per momentum for SGD with momentum and Nesterov); None trains every point on every seed
PRUNE_KEEP: int | None = None


def prune(points: list[Point], keep: int) -> list[int]:
    """Indices of the ``keep`` best points (first seed's validation score) of each
    optimizer and momentum, in grid order, and every learning-rate-free method's defaults
    (``d_coef`` 1: the row of its own that the verdict reports). The others are not
    trained again and not scored: they would only have lost (their first seed ranks them
    below ``keep`` of their own kind). run_grid keeps their first seed, marked ``pruned``."""
    groups: dict[tuple[str, float | None], list[int]] = {}
    for j, p in enumerate(points):
        groups.setdefault((p.optimizer, p.momentum), []).append(j)
    kept = {
        j
        for members in groups.values()
        for j in sorted(members, key=lambda j: -points[j].val[0])[:keep]
    }
    kept |= {j for j, p in enumerate(points) if p.d_coef == 1.0}
    return sorted(kept)


def guess_score(s: Scenario, data: advisor.Dataset) -> float:
    """What a diverged run scores: a uniform guess's accuracy, or for a regression the
    negative MSE of predicting 0 (where a fresh network starts)."""
    if s.task == "regression":
        return -float((data.y_test.float() ** 2).mean())
    return 1.0 / data.n_classes


def task_keyword(s: Scenario) -> dict[str, Any]:
    """``{"task": Task(...)}`` for train_members; {} for classification (the default)."""
    return {} if s.task == "classification" else {"task": Task(s.task)}


def _schedule(name: str) -> str:
    """A constant learning rate, or the optimizer's own schedule (schedule-free: warmup)."""
    own = advisor.get_optimizer_info(name).schedules
    return own[0] if own else "constant"


# ---------------------------------------------------------------------------- the truth


def expected_best_of(test: list[float], val: list[float], draws: int) -> float:
    """E[test score of the pick with the best ``val``] over ``draws`` uniform picks with replacement.

    Ranked by ``val`` (ties by position), the k-th of m points is the pick with probability
    (k/m)^draws - ((k-1)/m)^draws. With ``test == val`` this is E[max of the draws].
    """
    order = sorted(range(len(val)), key=lambda i: (val[i], -i))
    m = len(order)
    return sum(
        test[i] * ((k / m) ** draws - ((k - 1) / m) ** draws) for k, i in enumerate(order, 1)
    )


def optimizer_scores(
    points: list[Point], ranges: dict[str, Range], draws: int | None
) -> dict[str, dict[str, Any]]:
    """Per optimizer: per-seed test accuracy of its pick, the best grid point, the lrs tied with it.

    Validation picks (the best mean validation accuracy, as a user would pick), the test set
    judges: picking and judging on the same numbers would favour optimizers with more grid
    points (the winner's curse).
    """
    out: dict[str, dict[str, Any]] = {}
    for name in advisor.list_optimizers():
        mine = [p for p in points if p.optimizer == name and not p.pruned]
        if not mine:  # not in the grid: it does not apply (Muon without hidden weights)
            continue
        best = max(mine, key=lambda p: p.mean_val)
        if draws is None:
            val, test = list(best.val), list(best.test)
        else:
            default_m = advisor.get_optimizer_info(name).defaults.get("momentum")
            pool = [
                p
                for p in mine
                if ranges[name].contains(p.knob) and (p.momentum is None or p.momentum == default_m)
            ] or [min(mine, key=lambda p: abs(p.knob - ranges[name].low))]
            seeds = range(len(best.val))
            val = [
                expected_best_of([p.val[i] for p in pool], [p.val[i] for p in pool], draws)
                for i in seeds
            ]
            test = [
                expected_best_of([p.test[i] for p in pool], [p.val[i] for p in pool], draws)
                for i in seeds
            ]
        tied_lrs = sorted(
            {p.knob for p in mine if p is best or paired_p_value(best.test, p.test) >= TIED_P}
        )
        out[name] = {
            "tied_lrs": tied_lrs,
            "val": val,
            "test": test,
            "mean_val": statistics.mean(val),
            "mean_test": statistics.mean(test),
            "best_lr": best.knob,
            "best_momentum": best.momentum,
            "curve": mean_curve(best),
        }
        info = advisor.get_optimizer_info(name)
        default = [p for p in mine if info.lr_free and p.d_coef == 1.0]
        if default:  # issue 15: a learning-rate-free method at its defaults, a row of its own
            d = default[0]
            out[name + DEFAULTS_SUFFIX] = {
                "tied_lrs": [d.knob],
                "val": list(d.val),
                "test": list(d.test),
                "mean_val": d.mean_val,
                "mean_test": statistics.mean(d.test),
                "best_lr": d.knob,
                "best_momentum": None,
                "curve": mean_curve(d),
            }
    return out


DEFAULTS_SUFFIX = "-defaults"


def mean_curve(p: Point) -> list[float]:
    """The validation metric per epoch, averaged over the seeds (empty in old grids)."""
    if not p.curves or any(len(c) != len(p.curves[0]) for c in p.curves):
        return []
    return [statistics.mean(col) for col in zip(*p.curves)]


@dataclass
class Verdict:
    scenario: str
    what: str
    profile: str
    top: list[str]
    ranges: dict[str, list[float]]
    scores: dict[str, dict[str, Any]]
    best: str
    tied: list[str]
    hit: bool
    lr_checks: dict[str, bool]
    fired: list[str]
    wall_s: float
    profile_fields: dict[str, Any]
    #: issue 15: minimal detectable paired difference at 80 % power (metric units)
    mdd: float = math.nan
    #: whether the best optimizer's validation curve converged (None: not measured, or
    #: a fixed-budget scenario)
    converged: bool | None = None
    held_out: bool = False
    #: validation_stats.plan: seeds / test examples a 0.5 pp difference needs
    plan: dict[str, Any] = field(default_factory=dict)
    #: "classification" (scores: accuracy) or "regression" (scores: negative MSE)
    task: str = "classification"

    @property
    def lr_ok(self) -> bool:
        return all(self.lr_checks.values())


def judge(s: Scenario, points: list[Point], profile: advisor.Profile, wall: float) -> Verdict:
    rec = advisor.recommend(profile)
    ranges = {
        c.optimizer: c.search_space[advisor.get_optimizer_info(c.optimizer).knob]
        for c in rec.candidates
    }
    scores = optimizer_scores(points, ranges, s.lr_draws)
    per_seed = {n: sc["test"] for n, sc in scores.items()}
    tied = validation_stats.tie_set(per_seed, TIED_P)
    best = tied[0]
    mdd = validation_stats.scenario_mdd(per_seed, best)
    curve = scores[best].get("curve") or []
    converged = validation_stats.converged(curve) if s.converge and curve else None
    test_size = _test_size(s)
    others = [[b - o for b, o in zip(per_seed[best], per_seed[n])] for n in per_seed if n != best]
    s_d = (
        statistics.median(statistics.stdev(d) for d in others)
        if others and len(per_seed[best]) >= 2
        else math.nan
    )
    plan = (
        asdict(validation_stats.plan(s_d, scores[best]["mean_test"], test_size))
        if s.task == "classification" and not math.isnan(s_d)
        else {}
    )
    top = [c.optimizer for c in rec.candidates[:TOP]]
    lr_checks = {
        n: any(ranges[n].contains(lr) for lr in scores[n]["tied_lrs"]) for n in top if n in scores
    }
    return Verdict(
        scenario=s.name,
        what=s.what,
        profile=profile.describe(),
        top=top,
        ranges={n: [r.low, r.high] for n, r in ranges.items()},
        scores=scores,
        best=best,
        tied=tied,
        hit=any(n in tied for n in top),
        lr_checks=lr_checks,
        fired=[f.rule.id for f in rec.fired],
        wall_s=round(wall, 1),
        profile_fields={k: v for k, v in profile.to_dict().items() if k != "derived"},
        mdd=mdd,
        converged=converged,
        held_out=s.name in HELD_OUT,
        plan=plan,
        task=s.task,
    )


_TEST_SIZES: dict[str, int] = {}


def _test_size(s: Scenario) -> int:
    """The scenario's test-set size (loads its data once per process)."""
    if s.name not in _TEST_SIZES:
        try:
            _TEST_SIZES[s.name] = len(s.data().y_test)
        except (FileNotFoundError, ImportError):  # its data is not on this machine
            _TEST_SIZES[s.name] = 0
    return _TEST_SIZES[s.name]


def scenario_data(s: Scenario) -> advisor.Dataset:
    """The scenario's data (with --smoke, its first SMOKE_ROWS training rows: shrink)."""
    return shrink(s.data()) if SMOKE else s.data()


def measure_profile(s: Scenario, data: advisor.Dataset) -> advisor.Profile:
    """The profile ``advisor tune`` would measure, plus what only the user can say."""
    factory = None if s.model is None else s.model(data)
    measured = advisor.profile_model(
        factory, data, device="cpu", batch_size=s.batch_size, task=Task(s.task)
    )
    return measured.to_profile(s.overrides)


def training_key(s: Scenario) -> tuple[Any, ...]:
    """Scenarios with equal keys train the same grid (they differ in what the user says)."""
    return (
        s.data,
        s.model,
        s.epochs,
        s.batch_size,
        s.extra_lrs,
        s.seeds,
        s.task,
        s.full_batch_epochs,
        s.population,
    )


def validate(
    s: Scenario,
    progress: bool,
    optimizers: list[str] | None = None,
    kept: list[Point] | None = None,
    trained: dict[tuple[Any, ...], list[Point]] | None = None,
    wall_before: float = 0.0,
) -> tuple[Verdict, list[Point]]:
    """Measure the profile, train the grid (``optimizers`` only, beside the ``kept`` points
    of the others), judge. ``trained`` caches grids by :func:`training_key` within a run."""
    t0 = time.perf_counter()
    data = scenario_data(s)
    _TEST_SIZES[s.name] = len(data.y_test)
    profile = measure_profile(s, data)
    cache = {} if trained is None else trained
    key = training_key(s)
    if key not in cache:
        cache[key] = run_grid(s, data, progress, optimizers)
    points = [*(kept or []), *cache[key]]
    return judge(s, points, profile, wall_before + time.perf_counter() - t0), points


def combine(files: list[dict[str, Any]]) -> dict[str, Any]:
    """Saved grids of several runs as one (runs in parallel write one file each): a
    scenario in a later file replaces the earlier files'; commands and machines are kept."""
    out: dict[str, Any] = {"machine": "", "commands": [], "verdicts": [], "points": {}}
    machines: list[str] = []
    for saved in files:
        names = {v["scenario"] for v in saved["verdicts"]}
        out["verdicts"] = [v for v in out["verdicts"] if v["scenario"] not in names]
        out["verdicts"] += saved["verdicts"]
        out["points"].update({k: saved["points"][k] for k in names})
        out["commands"] += [c for c in saved["commands"] if c not in out["commands"]]
        machines += [saved["machine"]] if saved["machine"] not in machines else []
    out["machine"] = "; ".join(machines)
    order = [s.name for s in SCENARIOS]
    out["verdicts"].sort(key=lambda v: order.index(v["scenario"]))
    return out


def rejudge(saved: dict[str, Any], reprofile: Collection[str] = ()) -> list[Verdict]:
    """Judge saved grids again with the current rules (after a rule changed): no training.
    The scenarios in ``reprofile`` get their profile measured again (after the probe
    changed: the grid, the truth, does not depend on it); the others keep the saved one."""
    verdicts = []
    by_name = {s.name: s for s in SCENARIOS}
    for old in saved["verdicts"]:
        s = by_name[old["scenario"]]
        points = [Point(**p) for p in saved["points"][s.name]]
        if s.name in reprofile:
            profile = measure_profile(s, scenario_data(s))
        else:
            profile = advisor.Profile.from_dict(old["profile_fields"])
        verdicts.append(judge(s, points, profile, old["wall_s"]))
    return verdicts


# ---------------------------------------------------------------------------- report


def _lrs(score: dict[str, Any]) -> str:
    """The best lr, and the span of the lrs tied with it."""
    tied = score["tied_lrs"]
    span = f" (tied {tied[0]:g}..{tied[-1]:g})" if len(tied) > 1 else ""
    return f"{score['best_lr']:g}{span}"


def summary_table(verdicts: list[Verdict]) -> str:
    lines = [
        "| scenario | advisor's top 3 | measured best (test %; a regression: -MSE) | tied with it (p >= 0.05) | MDD at 80 % power (pp; a regression: MSE) | tie-set size | best or tied in top 3? | lr range holds the best lr? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lr = ", ".join(
            f"{n} {'yes' if ok else 'NO'} ({_lrs(v.scores[n])} vs {v.ranges[n][0]:.2g}..{v.ranges[n][1]:.2g})"
            for n, ok in v.lr_checks.items()
        )
        lines.append(
            f"| {v.scenario} | {', '.join(v.top)} | {v.best} ({validation_report.score(v, v.scores[v.best]['mean_test'])}) | "
            f"{', '.join(v.tied)} | {validation_report.score(v, v.mdd)} | {validation_report.tie_size(v)} | "
            f"{'yes' if v.hit else 'NO'} | {lr} |"
        )
    return "\n".join(lines)


def detail_table(v: Verdict) -> str:
    rank = {n: i + 1 for i, n in enumerate(v.top)}
    unit = "-MSE" if v.task == "regression" else "%"
    lines = [
        f"| optimizer | advisor rank (top 3) | test {unit} (mean of the seeds) | val {unit} | best lr (tied) | best momentum | recommended lr range |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sorted(v.scores, key=lambda n: -v.scores[n]["mean_test"]):
        sc = v.scores[n]
        mark = " (best)" if n == v.best else (" (tied)" if n in v.tied else "")
        mom = "-" if sc["best_momentum"] is None else f"{sc['best_momentum']:g}"
        span = f"{v.ranges[n][0]:.2g}..{v.ranges[n][1]:.2g}" if n in v.ranges else "-"
        lines.append(
            f"| {n}{mark} | {rank.get(n, '-')} | {validation_report.score(v, sc['mean_test'])} | {validation_report.score(v, sc['mean_val'])} | "
            f"{_lrs(sc)} | {mom} | {span} |"
        )
    return "\n".join(lines)


def plot(verdicts: list[Verdict], all_points: dict[str, list[Point]], path: Path) -> None:
    """Test accuracy against learning rate per optimizer (best momentum by validation), one
    panel per scenario. Points --prune dropped after the first seed show that seed, hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = (len(verdicts) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, v in zip(axes.flat, verdicts):
        for name in advisor.list_optimizers():
            mine = [p for p in all_points[v.scenario] if p.optimizer == name]
            by_lr: dict[float, Point] = {}
            for p in mine:  # the momentum validation picks at each lr (a scored point first)
                q = by_lr.get(p.lr)
                if q is None or (q.pruned, -q.mean_val) > (p.pruned, -p.mean_val):
                    by_lr[p.lr] = p
            xs = sorted(by_lr)
            style = "-" if name in v.top else ":"
            ys = [statistics.mean(by_lr[x].test) * 100 for x in xs]
            (line,) = ax.plot(xs, ys, style, marker=".", label=name)
            first_seed_only = [(x, y) for x, y in zip(xs, ys) if by_lr[x].pruned]
            if first_seed_only:
                ax.plot(*zip(*first_seed_only), "o", mfc="none", ms=4, color=line.get_color())
        ax.set_xscale("log")
        ax.set_title(v.scenario, fontsize=10)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("test accuracy %")
        ax.set_ylim(bottom=max(0.0, min(ax.get_ylim()[1] - 40, ax.get_ylim()[0])))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(verdicts) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=10, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_doc(
    verdicts: list[Verdict], points: dict[str, list[Point]], machine: str, commands: list[str]
) -> None:
    """Write the generated part of the doc (the part written by hand is kept) and the plot."""
    plot(verdicts, points, PLOT)
    extra = "".join(
        f", plus {', '.join(f'{x:g}' for x in s.extra_lrs)} in {s.name}"
        for s in SCENARIOS
        if s.extra_lrs
    )
    parts = [
        "# Rule validation: advisor's advice against grid-searched truth",
        "",
        f"Generated by {commands_line(commands)} (raw figures: [`benchmarks/validation.json`](benchmarks/validation.json); "
        "redraw without re-running: `python benchmarks/validate_rules.py --from-json docs/benchmarks/validation.json`).",
        "",
        f"**Machine:** {machine}.",
        "",
        "**Method.** Each scenario's profile is measured by `advisor.profile_model` (what "
        "`advisor tune` does) and given to `advisor.recommend`. The truth: a grid over every "
        f"registered optimizer x learning rate ({', '.join(f'{x:g}' for x in LRS)}{extra}; L-BFGS "
        f"{', '.join(f'{x:g}' for x in LBFGS_LRS)}; Muon {', '.join(f'{x:g}' for x in MUON_LRS)}) "
        f"x momentum ({', '.join(f'{x:g}' for x in MOMENTA)}; "
        f"SGD with momentum and Nesterov); learning-rate-free Prodigy at its defaults (lr 1) x its "
        f"one knob d_coef ({', '.join(f'{x:g}' for x in KNOB_VALUES)}; shown in the lr columns); "
        "Schedule-Free AdamW with its own warmup-then-constant schedule, every other point with a "
        "constant learning rate; Muon only where the model has a hidden 2-D weight. Every point "
        f"trained on {len(SEEDS)} seeds (weights "
        "and minibatch order, shared by all points: comparisons are paired). Validation picks "
        "each optimizer's best point (mean over the seeds), as a user would; the held-out test "
        "set judges it (picking and judging on the same numbers would favour optimizers with "
        "more grid points). A diverged run counts as a guess. *Tied* means a paired t-test "
        f"over the seeds cannot tell it from the best (p >= {TIED_P}). Under a tight budget an "
        "optimizer's score is instead the expected test accuracy of the best (by validation) "
        "of 3 learning rates drawn from its recommended range, other hyperparameters at their "
        "defaults: what 3 trials find.",
        "",
        summary_table(verdicts),
        "",
        f"![test accuracy against learning rate]({PLOT.relative_to(DOC.parent).as_posix()})",
        "",
        "Solid lines: advisor's top 3; dotted: the others. Hollow circles: points that "
        "`--prune` trained on the first seed only (not scored; that seed's test accuracy).",
        "",
        "**Power** (issue 15). *MDD*: the minimal paired difference the seeds detect at 80 % "
        "power (paired t-test, two-sided alpha 0.05, s_d: the median over the best against each "
        "other optimizer). *Converged*: the best configuration's mean validation score rose by less than "
        f"{validation_stats.CONVERGED_TOL * 100:g} pp over its last {validation_stats.CONVERGED_K} "
        "epochs ('-': a fixed-budget scenario, or a grid saved without curves). *Seeds for 0.5 pp*: "
        "the least seeds with MDD <= 0.5 pp at this s_d; *test examples*: the test-set size at "
        "which the test set's own sampling noise of a difference (binomial, independent errors: "
        "an upper bound) allows 0.5 pp (validation_stats.plan). `-defaults` rows: a "
        "learning-rate-free method at its defaults.",
        "",
        validation_report.power_table(verdicts),
        "",
        "**Generalization.** Held out from rule changes, chosen before their results existed "
        f"(benchmarks/scenarios, HELD_OUT): {', '.join(HELD_OUT)}.",
        "",
        validation_report.generalization(verdicts, HELD_OUT),
        "",
        validation_report.rule_coverage(verdicts),
        "",
    ]
    for v in verdicts:
        image = PLOTS / f"{v.scenario}.png"
        validation_report.plot_scenario(v, image)
        parts += [
            f"## {v.scenario}",
            "",
            f"![{v.scenario}: test score per optimizer with 95 % CI]({image.relative_to(DOC.parent).as_posix()})",
            "",
            f"{v.what[0].upper()}{v.what[1:]}. Profile: {v.profile}. Rules fired: {', '.join(f'`{r}`' for r in v.fired)}. "
            f"Wall: {v.wall_s:.0f} s.",
            "",
            detail_table(v),
            "",
        ]
    write_keeping_hand_part(DOC, "\n".join(parts))


def save(
    path: Path,
    machine: str,
    commands: list[str],
    verdicts: list[Verdict],
    points: dict[str, list[Point]],
) -> None:
    order = [s.name for s in SCENARIOS]
    verdicts = sorted(verdicts, key=lambda v: order.index(v.scenario))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "machine": machine,
                "commands": commands,
                "verdicts": [asdict(v) for v in verdicts],
                "points": {k: [asdict(p) for p in ps] for k, ps in points.items()},
            },
            indent=1,
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [s.name for s in SCENARIOS]
    parser.add_argument("--only", default=None, help=f"comma-separated, from: {', '.join(names)}")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        metavar="FILE",
        help="judge saved grids again with the current rules (no training) and redraw; "
        "several files are combined (a scenario in a later file replaces an earlier one's)",
    )
    parser.add_argument(
        "--reprofile",
        default="",
        metavar="SCENARIOS",
        help="with --from-json: measure these scenarios' profiles again (comma-separated; "
        "after the probe changed) instead of using the saved ones; the grids stay",
    )
    parser.add_argument(
        "--write-validated",
        action="store_true",
        help="with --from-json: rewrite every rule's `validated` list in rules/*.toml from "
        "these grids (the scenarios where it fires and the top 3 holds the best or a tie)",
    )
    parser.add_argument("--json", type=Path, default=RAW, help="save the figures here")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the saved (--json) scenarios not run now (and, with --optimizers, the "
        "saved points of the other optimizers)",
    )
    parser.add_argument(
        "--optimizers",
        default=None,
        help="comma-separated: train only these optimizers' grid points (with --merge, added "
        "to the saved grids: the same seeds, so comparisons stay paired)",
    )
    parser.add_argument(
        "--progress",
        type=Path,
        default=None,
        metavar="DIR",
        help="save and resume each scenario's grid in progress here [default: next to --json, "
        "<its name>-progress/]; parallel runs can share one",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/VALIDATION.md")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny grid (2 lrs, 2 seeds, 1 epoch, 1,024 training rows): the pipeline end to end",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument(
        "--prune",
        type=int,
        default=None,
        metavar="K",
        help="after the first seed, train only each optimizer's K best grid points (by "
        "validation; per momentum) on the other seeds: ~2x less CPU at 5 seeds with K=3 "
        "(the others are saved with their first seed, marked pruned, not scored)",
    )
    args = parser.parse_args(argv)
    if args.prune is not None:
        global PRUNE_KEEP
        PRUNE_KEEP = args.prune
    if args.smoke:
        smoke()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    command = " ".join(
        ["python benchmarks/validate_rules.py", *(sys.argv[1:] if argv is None else argv)]
    )
    reprofile = [n for n in args.reprofile.split(",") if n]
    if (reprofile or args.write_validated) and not args.from_json:
        parser.error("--reprofile and --write-validated go with --from-json")
    if args.from_json:
        saved = combine([json.loads(f.read_text()) for f in args.from_json])
        missing = sorted(set(reprofile) - {v["scenario"] for v in saved["verdicts"]})
        if missing:
            parser.error(f"--reprofile: no saved grid for {', '.join(missing)}")
        verdicts = rejudge(saved, reprofile)
        if args.write_validated:
            derived = validation_report.derived_validated(verdicts)
            changed = validation_report.write_validated(derived, ROOT / "rules")
            print(f"validated lists rewritten: {', '.join(changed) or 'none changed'}")
        points = {k: [Point(**p) for p in ps] for k, ps in saved["points"].items()}
        machine, commands = saved["machine"], saved["commands"]
        save(args.json, machine, commands, verdicts, points)
    else:
        chosen = names if args.only is None else args.only.split(",")
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            parser.error(
                f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(names)}"
            )
        machine, commands = describe(), [command]
        global PROGRESS_DIR
        PROGRESS_DIR = args.progress or args.json.parent / f"{args.json.stem}-progress"
        only = None if args.optimizers is None else args.optimizers.split(",")
        for name in only or []:
            advisor.get_optimizer_info(name)  # unknown name: a clear error now
        verdicts, points = [], {}
        saved_points: dict[str, list[Point]] = {}
        saved_wall: dict[str, float] = {}
        if args.merge and args.json.exists():
            saved = json.loads(args.json.read_text())
            commands = [*saved["commands"], command]
            verdicts = [Verdict(**v) for v in saved["verdicts"] if v["scenario"] not in chosen]
            saved_points = {k: [Point(**p) for p in ps] for k, ps in saved["points"].items()}
            saved_wall = {v["scenario"]: float(v["wall_s"]) for v in saved["verdicts"]}
            points = {k: ps for k, ps in saved_points.items() if k not in chosen}
        trained: dict[tuple[Any, ...], list[Point]] = {}
        for s in SCENARIOS:
            if s.name not in chosen:
                continue
            kept = [p for p in saved_points.get(s.name, []) if only and p.optimizer not in only]
            try:
                v, pts = validate(
                    s, True, only, kept, trained, saved_wall.get(s.name, 0.0) if kept else 0.0
                )
            except FileNotFoundError as e:
                print(f"{s.name}: skipped: {e}", file=sys.stderr, flush=True)
                continue
            verdicts.append(v)
            points[s.name] = pts
            print(
                f"{s.name}: top {v.top}, best {v.best}, tied {v.tied} ({validation_report.tie_size(v)}), "
                f"MDD {validation_report.score(v, v.mdd)}, converged {v.converged}, hit {v.hit}, "
                f"lr {v.lr_checks}",
                flush=True,
            )
            save(args.json, machine, commands, verdicts, points)
            validation_checkpoint.finish(PROGRESS_DIR, s.name)
        verdicts.sort(key=lambda v: names.index(v.scenario))
    print(summary_table(verdicts))
    if not args.no_doc:
        write_doc(verdicts, points, machine, commands)
        print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
