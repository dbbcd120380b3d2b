"""The truth's grid for the rule validation (validate_rules.py): every registered optimizer x
learning rate (x momentum; a learning-rate-free method's knob), trained on a scenario's
seeds chunk by chunk, resumable (validation_checkpoint), and pruned after the first seed
with ``--prune``.

The grid constants are module globals: :func:`smoke` shrinks them for ``--smoke``, and
validate_rules.main sets :data:`PRUNE_KEEP` and :data:`PROGRESS_DIR` from its flags (read
them as ``validation_grid.LRS``, not ``from validation_grid import LRS``).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import validation_checkpoint
import validation_stats
from scenarios import Scenario

import advisor
from advisor.data.task import Task
from advisor.train import EpochReport, MemberConfig, MemberResult, train_members
from advisor.train.layout import model_layout

SEEDS = (30_000, 30_001, 30_002)
LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
LBFGS_LRS = (0.03, 0.1, 0.3, 1.0)
#: Muon shares AdamW's learning-rate scale (match_rms_adamw); its bfloat16 Newton-Schulz
#: steps cost ~100x an Adam step on a CPU without native bfloat16, so fewer points
MUON_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
#: a learning-rate-free method: lr stays 1, its knob takes these values (1: its default)
KNOB_VALUES = (0.5, 1.0, 2.0)
MOMENTA = (0.5, 0.9, 0.99)
#: --smoke: the whole pipeline on a tiny grid, 2 seeds, 1 epoch, a slice of the data
SMOKE_ROWS = 1024


def seeds_for(s: Scenario) -> tuple[int, ...]:
    """The scenario's seeds: ``s.seeds`` of them from SEEDS[0] on (SEEDS by default)."""
    n = len(SEEDS) if s.seeds is None or SMOKE else s.seeds
    return tuple(SEEDS[0] + i for i in range(n))


def epochs_for(s: Scenario) -> int:
    """The epochs each grid point trains (1 with --smoke)."""
    return 1 if SMOKE else s.epochs


def smoke() -> None:
    """Shrink every grid constant for a smoke run (the pipeline end to end in seconds)."""
    global SEEDS, LRS, LBFGS_LRS, MUON_LRS, KNOB_VALUES, MOMENTA, SMOKE
    SEEDS, LRS, LBFGS_LRS, MUON_LRS = (30_000, 30_001), (1e-3, 1e-2), (1.0,), (1e-3,)
    KNOB_VALUES, MOMENTA, SMOKE = (1.0,), (0.9,), True


SMOKE = False


def shrink(data: advisor.Dataset, rows: int = SMOKE_ROWS) -> advisor.Dataset:
    """The first ``rows`` training rows and ``rows // 2`` of validation and test."""
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


def scenario_data(s: Scenario) -> advisor.Dataset:
    """The scenario's data (with --smoke, its first SMOKE_ROWS training rows: shrink)."""
    return shrink(s.data()) if SMOKE else s.data()


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
    #: per seed, the epoch a run stopped at because its curve had converged (0: it ran them
    #: all; only a scenario with ``stop_converged`` stops runs)
    stopped_at: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Its fields for the saved grid. ``stopped_at`` is kept whenever a seed recorded it,
        zeros included, so a point where no run stopped still counts among the runs read
        back; only a grid saved before runs could stop has none. (Until 2026-12-02 it was
        kept only where a run had stopped, so the grids saved then undercount their runs.)"""
        d = asdict(self)
        if not self.stopped_at:
            del d["stopped_at"]
        return d

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
) -> tuple[list[Point], float]:
    """Train the scenario's grid on its seeds, chunk by chunk, resuming saved progress.

    Returns the points and the seconds earlier processes spent on the grid (0 unless
    resumed) up to their last save: a chunk cut off mid-way is trained again, not counted."""
    factory = None if s.model is None else s.model(data)
    names = [n for n in optimizers or advisor.list_optimizers() if applies(n, factory, data)]
    specs = grid(s.extra_lrs, names)
    seeds = seeds_for(s)
    epochs = epochs_for(s)
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
        # only where set, so that grids saved before the option keep their fingerprint
        **({"stop_converged": True} if s.stop_converged else {}),
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
    earlier, t_start = state.elapsed_s, time.perf_counter()

    def save() -> None:
        state.elapsed_s = earlier + time.perf_counter() - t_start
        validation_checkpoint.save(PROGRESS_DIR, s.name, state)

    for i in range(state.seed_index, len(seeds)):
        seed, t0 = seeds[i], time.perf_counter()
        configs = [MemberConfig(n, h, _schedule(n), init_seed=seed) for n, h in specs]
        for start in range(len(state.current), len(configs), chunk):
            results = _train(s, configs[start : start + chunk], data, epochs, seed, factory, task)
            for r in results:
                ok = r.status in ("complete", "stopped")
                # a diverged run scores as a guess: that is what its model is worth
                state.current.append(
                    {
                        "val": r.val_accuracy[-1] if ok else chance,
                        "test": r.test_accuracy if ok and r.test_accuracy is not None else chance,
                        "curve": [float(a) for a in r.val_accuracy],
                        "ok": ok,
                        "stopped_at": r.epochs_run if r.status == "stopped" else 0,
                    }
                )
            save()
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
            p.stopped_at.append(run.get("stopped_at", 0))
            p.diverged += not run["ok"]
        # a tight budget's truth averages over every grid point of a range: never pruned
        if i == 0 and PRUNE_KEEP is not None and len(seeds) > 1 and s.lr_draws is None:
            keep = prune(points, PRUNE_KEEP)
            specs = [specs[j] for j in keep]
            for j, p in enumerate(points):
                p.pruned = j not in keep
        state.seed_index, state.specs, state.current = i + 1, specs, []
        state.points = [asdict(p) for p in points]
        save()
        if progress:
            print(
                f"  {s.name}: seed {i + 1}/{len(seeds)}, {len(configs)} runs in {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return points, earlier


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
        results = train_members(
            chosen,
            data,
            epochs=n_epochs,
            batch_size=s.batch_size,
            data_seed=seed,
            evaluate_test=True,
            model_factory=factory,
            max_population=s.population,
            on_epoch=stop_when_converged() if s.stop_converged else None,
            **task,
        )
        return [padded(r, n_epochs) for r in results]

    if s.full_batch_epochs is None or SMOKE:
        return run(configs, epochs)
    full = [advisor.get_optimizer_info(c.optimizer).full_batch for c in configs]
    rest = iter(run([c for c, f in zip(configs, full) if not f], epochs))
    capped = iter(run([c for c, f in zip(configs, full) if f], s.full_batch_epochs))
    return [next(capped) if f else next(rest) for f in full]


def stop_when_converged() -> Callable[[EpochReport], list[Hashable]]:
    """train_members' ``on_epoch`` that stops each run once its own validation curve has
    converged (validation_stats.converged: the rule the judge applies to the best
    configuration's mean curve)."""
    curves: dict[Hashable, list[float]] = {}

    def on_epoch(report: EpochReport) -> list[Hashable]:
        stop = []
        for key, score in report.val_accuracy.items():
            curve = curves.setdefault(key, [])
            curve.append(score)
            if validation_stats.converged(curve):
                stop.append(key)
        return stop

    return on_epoch


def padded(r: MemberResult, epochs: int) -> MemberResult:
    """A stopped run with its curve carried to ``epochs`` at its last score: its model no
    longer changes (its test score is the stopped model's, train_members)."""
    if r.status != "stopped" or not r.val_accuracy:
        return r
    rest = (r.val_accuracy[-1],) * (epochs - len(r.val_accuracy))
    return replace(r, val_accuracy=r.val_accuracy + rest)


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
