"""One worker's tuning session: open the study, search until the budget is spent, run finals.

:meth:`Session.open` resolves a :class:`~advisor.tuning.config.TuneConfig` into what this
process needs (device, data, storage, trainer, worker id); :meth:`Session.run` creates the
search study (first worker) or joins it, runs ask-train-tell batches
(:func:`advisor.tuning.search.run_batch`) until the time left for searching is spent, then
the finalist stage (:func:`advisor.tuning.finals.run_finals`), and reads the result back
from the storage, so that every worker returns the same answer.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.devices import resolve_device
from advisor.core.errors import InvalidValueError, StorageError
from advisor.core.units import format_duration
from advisor.data.dataset import Dataset
from advisor.data.datasets import as_dataset
from advisor.data.sources import load_user_data
from advisor.data.task import CLASSIFICATION
from advisor.knowledge.optimizers import get_optimizer_info
from advisor.knowledge.profile import Profile
from advisor.knowledge.recommender import Recommendation, recommend
from advisor.probe.lr_range import probe_ranges
from advisor.train import default_population, train_members, user_population
from advisor.train.model_ref import build, resolve_model
from advisor.train.task_check import check_model_task
from advisor.tuning import schema
from advisor.tuning.budget import (
    EXIT_RESERVE_S,
    REPORT_RESERVE_S,
    CostModel,
    affordable,
    batch_s,
    calibrate_costs,
    expected_epochs,
    expected_trials,
    final_seeds_that_fit,
    finalists_that_fit,
    first_batch_counts,
    sessions_spent,
)
from advisor.tuning.config import TuneConfig, resolve_callable
from advisor.tuning.finals import choose_finalists, run_finals
from advisor.tuning.objective import OBJECTIVE_BATCH, ObjectiveTrainer
from advisor.tuning.outputs import write_report
from advisor.tuning.progress import Progress, search_line
from advisor.tuning.readback import build_result, count_trials
from advisor.tuning.result import TuneResult
from advisor.tuning.sampler import make_sampler
from advisor.tuning.schema import FinalistSpec, Spend, StudySettings
from advisor.tuning.search import (
    MIN_RESOURCE,
    REDUCTION_FACTOR,
    SearchState,
    best_value,
    finished_trials,
    make_pruner,
    run_batch,
    waiting_trials,
)
from advisor.tuning.space import SearchSpace, build_space, space_from_dict
from advisor.tuning.storage import fail_stale_trials, open_storage, worker_id
from advisor.tuning.task_run import (
    add_notes,
    guessed_costs,
    oriented,
    placeholder_data,
    task_notes,
    task_record,
)

if TYPE_CHECKING:
    import optuna
    import torch

_SAMPLER_TEXT = (
    "quasi-random (scrambled Sobol) first batch of {n} trials, stratified over the optimizers, "
    "then TPE (multivariate, grouped, constant liar): quasi-random search to explore in "
    "parallel batches, Bayesian optimization after (Tuning Playbook)"
)
_PRUNER_TEXT = f"successive halving (first rung after {MIN_RESOURCE} epoch, keep the best 1/{REDUCTION_FACTOR})"


@dataclass
class Session:
    """What one worker resolved from its :class:`TuneConfig`."""

    config: TuneConfig
    store: Any
    store_display: str
    data: Dataset
    factory: Callable[[], torch.nn.Module] | None
    device: torch.device
    n_params: int
    population: int
    train: Callable[..., Any]
    worker: str
    bar: Progress
    started_at: float
    costs: CostModel = field(default_factory=lambda: CostModel(search={}, final={}))
    deadline: float = 0.0  # wall-clock time by which the whole run must be done
    reserve: float = 0.0  # seconds kept for the finalist stage, as of the last batch

    @classmethod
    def open(cls, config: TuneConfig, started_at: float | None = None) -> Session:
        """Open the storage, load the data and build the trainer (raises on bad input).

        ``started_at`` (``time.time()``) is when the budget started: the call of
        :func:`advisor.tune`, shared by every worker process of the run; default now.
        """
        started_at = time.time() if started_at is None else started_at
        task = config.the_task
        objective = (
            None if config.objective is None else resolve_callable(config.objective, "objective")
        )
        factory = None if objective is not None else resolve_model(config.model)
        device = resolve_device(config.device)
        if config.out is not None:
            _check_writable(config.out_dir)
        store, display = open_storage(config.storage, config.journal_path)
        bar = Progress(enabled=config.progress)
        train: Callable[..., Any]
        if objective is not None:
            data = placeholder_data()
            # a model given beside the objective tells the rules its size
            given = resolve_model(config.model) if config.model is not None else None
            n_params = sum(p.numel() for p in given().parameters()) if given else 0
            k = config.population or OBJECTIVE_BATCH
            train = ObjectiveTrainer(objective, maximize=task.maximize)
        else:
            bar.update(f"loading {config.dataset_name} ...", force=True)
            data = _load(config, flat=factory is None).to(device)
            model = build(factory, data, config.seed)
            check_model_task(model, data, task)
            n_params = sum(p.numel() for p in model.parameters())
            if factory is None:
                k = config.population or default_population(device)
            elif config.population is None:
                k, why = user_population(model, data.x_train[: config.batch_size], device=device)
                bar.update(f"training {why}", force=True)
            else:
                k = config.population
            # ``task`` reaches the trainers only when it is not the seed task, so that the seed
            # path does not depend on a trainer that takes it
            with_task: dict[str, Any] = {} if task == CLASSIFICATION else {"task": task}
            members = functools.partial(
                train_members,
                batch_size=config.batch_size,
                device=device,
                model_factory=factory,
                max_population=k,
                **with_task,
            )
            train = oriented(members, task.maximize)
        return cls(
            config,
            store,
            display,
            data,
            factory,
            device,
            n_params,
            k,
            train,
            worker_id(),
            bar,
            started_at,
        )

    @property
    def sampler_seed(self) -> int:
        c = self.config
        return c.seed if c.sampler_seed is None else c.sampler_seed

    def run(self) -> TuneResult:
        """Search until the budget is spent, run the finalist stage, build (and write) the result."""
        c = self.config
        search, space, settings = self._open_search()
        spent_before = sessions_spent(search)
        # the study's budget counts every session on it: a resumed run gets what is left
        self.deadline = self.started_at + max(c.budget_s - spent_before, 0.0)
        self._search(search, space, settings)
        t_finals = time.time()
        self.bar.update(
            f"finalists  {c.finalists} best trials, the default Adam and the learning-rate-free "
            f"defaults on {c.seeds} fresh seeds ...",
            force=True,
        )
        final = run_finals(
            search,
            space,
            finalists=c.finalists,
            seeds=c.seeds,
            seed=c.seed,
            train=self.train,
            data=self.data,
            epochs=c.epochs,
            worker=self.worker,
            plan_finals=self._plan_finals,
            on_seed=lambda done, total: self.bar.update(
                f"finalists  seed {done}/{total} done", force=True
            ),
        )
        schema.write_spend(final, self.worker, Spend(finals_s=time.time() - t_finals))
        if isinstance(self.train, ObjectiveTrainer):
            add_notes(search, self.train.notes())
        if schema.ELAPSED not in final.user_attrs:
            final.set_user_attr(schema.ELAPSED, time.time() - self.started_at + spent_before)
        self.bar.done()
        result = build_result(
            self.store, c.study_name, storage_display=self.store_display, storage_url=c.storage
        )
        if c.out is not None:
            write_report(result, c.out_dir)
        return result

    # ------------------------------------------------------------ time

    def _time_left(self) -> float:
        """Seconds left for searching and the finals: the report and the exit are kept."""
        return self.deadline - time.time() - REPORT_RESERVE_S - EXIT_RESERVE_S

    def _finals_reserve(self, search: optuna.Study, space: SearchSpace) -> float:
        """Time kept for the finalist stage: the finals of the trials that would be finalists
        now (the rest priced as the search's optimizers on average), at most half the budget."""
        c = self.config
        names = [f.optimizer for f in choose_finalists(search, space, c.finalists)]
        finals = self.costs.finals_s([*names, *_lr_free()], c.seeds, c.epochs)
        if len(names) < c.finalists:
            mean = sum(self.costs.final.get(o, 0.0) for o in space.optimizers) / len(
                space.optimizers
            )
            finals += 1.25 * mean * (c.finalists - len(names)) * c.seeds * c.epochs
        return min(finals, c.budget_s / 2)

    def _plan_finals(self, specs: list[FinalistSpec]) -> tuple[list[FinalistSpec], int, str | None]:
        """The finalists and seeds the time left can hold: at least 2 seeds (the t-test).

        While 2 seeds of them do not fit, the costliest finalist after the best one is left
        out (an L-BFGS runner-up on a transformer costs 20 s a run where the others cost 1 s);
        the best one always runs. Then as many of the seeds asked as fit."""
        c = self.config
        left = self._time_left() - 1.0
        fit = finalists_that_fit(
            self.costs, [f.optimizer for f in specs], _lr_free(), c.epochs, left
        )
        kept = [specs[i] for i in fit]
        dropped = [f for i, f in enumerate(specs) if i not in fit]
        one_seed = self.costs.seed_s([*(f.optimizer for f in kept), *_lr_free()], c.epochs)
        seeds = final_seeds_that_fit(c.seeds, one_seed, left)
        why = []
        if dropped:
            names = ", ".join(f.label for f in dropped)
            why.append(
                f"{names} did not fit the time left ({format_duration(max(left, 0.0))}) and "
                f"{'were' if len(dropped) > 1 else 'was'} left out of the finalist stage."
            )
        if seeds < c.seeds:
            why.append(
                f"The finalist stage ran {seeds} of {c.seeds} seeds to keep the budget "
                f"({format_duration(c.budget_s)}): one seed of these finalists takes about "
                f"{format_duration(one_seed)}."
            )
        return kept, seeds, " ".join(why) or None

    def _avoid(self, space: SearchSpace, epochs_per_trial: float) -> set[str]:
        """Optimizers the sampler should not pick now: over their share of the search time,
        or whose one trial no longer fits the time left.

        None with a trial cap (``trials``): a run of a fixed number of trials is reproducible
        (the same seed gives the same trials), so time, which varies, does not steer it.
        """
        if self.config.trials is not None:
            return set()
        left = self._time_left() - self.reserve
        return self.costs.avoid(space.optimizers, epochs_per_trial, left)

    def _open_search(self) -> tuple[optuna.Study, SearchSpace, StudySettings]:
        """Create the search study (first worker) or join/resume it."""
        import optuna

        c = self.config
        try:
            search = optuna.load_study(study_name=c.study_name, storage=self.store)
        except KeyError:
            try:
                return self._create_search()
            except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
                search = optuna.load_study(study_name=c.study_name, storage=self.store)
        settings = _wait_for_settings(search)
        _check_resume(c, settings)
        space = space_from_dict(dict(settings.space))
        self.costs = CostModel(search=dict(settings.costs), final=dict(settings.final_costs))
        if not self.costs.search:  # a study from before costs were stored
            self.costs = self._calibrate(space.optimizers)
        search.sampler = self._sampler(settings.n_startup, space)
        search.pruner = make_pruner()
        failed = fail_stale_trials(search)
        if failed:
            self.bar.update(
                f"resuming {c.study_name}: {len(failed)} interrupted trial(s) queued again",
                force=True,
            )
        return search, space, settings

    def _calibrate(self, optimizers: Sequence[str], known: CostModel | None = None) -> CostModel:
        c = self.config
        if isinstance(self.train, ObjectiveTrainer):  # the objective is timed by its trials
            return guessed_costs(["adam", *optimizers], known)
        return calibrate_costs(
            self.train,
            self.data,
            optimizers,
            k=self.population,
            k_final=c.finalists + 1,
            batch_size=c.batch_size,
            reference_only=self.population == 1,
            known=known,
        )

    def _sampler(self, n_startup: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
        epochs = expected_epochs(self.config.epochs)
        return make_sampler(
            self.sampler_seed, n_startup, self.worker, avoid=lambda: self._avoid(space, epochs)
        )

    def _create_search(self) -> tuple[optuna.Study, SearchSpace, StudySettings]:
        import optuna

        c = self.config
        self.bar.update("timing the trainer ...", force=True)
        self.costs = self._calibrate([])  # the Adam baseline, at the search's population size
        epochs = expected_epochs(c.epochs)
        finals = self.costs.finals_s(["adam"] * c.finalists + _lr_free(), c.seeds, c.epochs)
        search_s = max(c.budget_s - min(finals, c.budget_s / 2), 0.0)
        expected = c.trials or max(int(search_s / (self.costs.search["adam"] * epochs)), 1)
        # the rules see what the budget buys here: how many trials, not just how many minutes
        profile = Profile(
            params=self.n_params or None,
            samples=len(self.data.x_train) or None,
            convexity="nonconvex",
            budget=c.budget_s,
            batch_size=c.batch_size,
            device=self.device.type,
            trials=expected,
        )
        rec = recommend(profile, rules_dirs=c.rules_dirs)
        chosen = _choose(rec, c)
        # time each candidate (steps differ: Muon's cost far more than Adam's) and the
        # learning-rate-free baselines of the finals
        self.costs = self._calibrate([*chosen, *_lr_free()], known=self.costs)
        # an objective's cost is a guess until its first trial: nothing to warn about yet
        objective = isinstance(self.train, ObjectiveTrainer)
        fit_note = None
        if c.trials is None and not objective:
            chosen, fit_note = self._affordable(chosen, search_s, epochs)
            if fit_note:
                self.bar.update(fit_note, force=True)
        if c.trials is None:  # what the budget buys with the optimizers searched
            expected = expected_trials(self.costs, chosen, search_s, epochs)
        space = self._space(rec, chosen, expected)
        n_startup = min(self.population, expected)
        counts = (  # with a trial cap, evenly: reproducible (see _avoid)
            first_batch_counts(chosen, n_startup, self.costs, epochs)
            if c.trials is None
            else first_batch_counts(
                chosen, n_startup, CostModel(dict.fromkeys(chosen, 1.0), {}), epochs
            )
        )
        budget_note = None if objective else self._check_budget_fits(counts, epochs)
        search = optuna.create_study(
            study_name=c.study_name,
            storage=self.store,
            direction="maximize",
            sampler=self._sampler(n_startup, space),
            pruner=make_pruner(),
        )
        ds = self.data
        settings = StudySettings(
            dataset=c.dataset_name,
            model=c.model_name,
            epochs=c.epochs,
            batch_size=c.batch_size,
            population=self.population,
            finalists=c.finalists,
            seeds=c.seeds,
            seed=c.seed,
            device=self.device.type,
            n_classes=ds.n_classes,
            budget_s=c.budget_s,
            trials=c.trials,
            n_train=len(ds.x_train),
            n_val=len(ds.x_val),
            n_test=len(ds.x_test),
            space=space.to_dict(),
            n_startup=n_startup,
            expected_trials=expected,
            member_epoch_s=self.costs.search["adam"],
            final_member_epoch_s=self.costs.final["adam"],
            sampler=_SAMPLER_TEXT.format(n=n_startup),
            pruner=_PRUNER_TEXT,
            candidates=tuple(
                cand.to_dict() for cand in rec.candidates[: max(len(chosen), c.candidates)]
            ),
            chosen=tuple(chosen),
            probe_lr=c.probe_lr,
            advice=tuple(a.to_dict() for a in rec.advice),
            profile=profile.to_dict(),
            costs=dict(self.costs.search),
            final_costs=dict(self.costs.final),
            notes=(*task_notes(c), *(n for n in (fit_note, budget_note) if n)),
            task=task_record(c),
        )
        # at once: its presence means "ready", and a creator killed right after create_study
        # must not leave a study that every other worker waits for in vain
        schema.write_settings(search, settings)
        for params in space.initial_design(n_startup, c.seed, counts=counts):
            search.enqueue_trial(params)
        return search, space, settings

    def _affordable(
        self, chosen: list[str], search_s: float, epochs: float
    ) -> tuple[list[str], str | None]:
        """The candidates the budget can hold (:func:`affordable`), and a note naming those
        left out."""
        c = self.config
        kept, dropped = affordable(
            chosen,
            self.costs,
            population=self.population,
            search_s=search_s,
            epochs_per_trial=epochs,
            epochs=c.epochs,
            fixed_s=time.time() - self.started_at + REPORT_RESERVE_S + EXIT_RESERVE_S,
            budget_s=c.budget_s,
            baselines=_lr_free(),
        )
        if not dropped:
            return kept, None
        one = len(dropped) == 1
        return kept, (
            f"{', '.join(dropped)} left out of the search: {'its' if one else 'their'} trials "
            f"and finals on this model cannot fit the budget ({format_duration(c.budget_s)}) "
            f"beside the others'. Give --budget {math.ceil(max(dropped.values()))}s or more "
            f"to search {'it' if one else 'them'} too."
        )

    def _check_budget_fits(self, counts: Mapping[str, int], epochs_per_trial: float) -> str | None:
        """Whether this budget can hold the setup so far, the first batch, a finalist stage of
        2 seeds, the report and the way out.

        One that cannot still runs, with the smallest plan, over time: the progress line and
        the report say so and name the smallest budget that would do.
        """
        c = self.config
        setup = time.time() - self.started_at
        first = batch_s(counts, self.costs, epochs_per_trial)
        cheapest = min(counts, key=lambda o: self.costs.final.get(o, 0.0))
        finals = self.costs.finals_s([cheapest], 2, c.epochs)
        need = setup + first + finals + REPORT_RESERVE_S + EXIT_RESERVE_S
        if need <= c.budget_s:
            return None
        why = (
            f"the setup took {format_duration(setup)}, the first batch of "
            f"{sum(counts.values())} trials needs about {format_duration(first)}, the finalist "
            f"stage on 2 seeds {format_duration(finals)} and the report "
            f"{format_duration(REPORT_RESERVE_S)}"
        )
        given = "default budget" if c.budget is None else "budget you gave"
        note = (
            f"The {given} ({format_duration(c.budget_s)}) is too small for this run here "
            f"({why}): the run went on with the smallest plan (its first batch, then the "
            f"finalists on the seeds that fit) and took longer. Give --budget "
            f"{math.ceil(need)}s or more."
        )
        self.bar.update(note, force=True)
        return note

    def _space(self, rec: Recommendation, chosen: list[str], expected: int) -> SearchSpace:
        """The search space of the chosen candidates, their ranges as the rules (or the LR
        range test) set them, its dimensions sized by the trial budget."""
        c = self.config
        lr_ranges = {cand.optimizer: cand.search_space["lr"] for cand in rec.candidates}
        if c.probe_lr:
            self.bar.update("LR range test ...", force=True)
            lr_ranges.update(
                probe_ranges(
                    chosen,
                    self.data,
                    model=self.factory,
                    device=self.device,
                    batch_size=c.batch_size,
                    seed=c.seed,
                    task=c.the_task,
                )
            )
        mom_ranges = {
            cand.optimizer: r
            for cand in rec.candidates
            for name, r in cand.search_space.items()
            if name in ("momentum", "beta1")
        }
        knob_ranges = {
            cand.optimizer: r
            for cand in rec.candidates
            for name, r in cand.search_space.items()
            if name == get_optimizer_info(cand.optimizer).knob != "lr"
        }
        return build_space(chosen, lr_ranges, mom_ranges, expected, knob_ranges)

    # ------------------------------------------------------------ the search loop

    def _search(self, search: optuna.Study, space: SearchSpace, settings: StudySettings) -> None:
        """Ask, train, tell in batches until the trial cap or the time left for searching is reached."""
        c = self.config
        key = schema.session_key(self.worker)
        session_start = time.time()
        state = SearchState(
            member_epoch_s=self.costs.search.get("adam", settings.member_epoch_s),
            epochs_per_trial=expected_epochs(c.epochs),
        )
        k = self.population
        member_epochs_done = 0.0
        spend = Spend()

        def save() -> None:
            spend_now = replace(
                spend, search_s=time.time() - session_start, by_optimizer=self.costs.to_dict()
            )
            schema.write_spend(search, self.worker, spend_now)
            search.set_user_attr(key, [session_start, time.time()])

        try:
            while True:
                done = finished_trials(search)
                if c.trials is not None and done >= c.trials:
                    break
                self.reserve = self._finals_reserve(search, space)
                left = self._time_left() - self.reserve
                batch = k if c.trials is None else min(k, c.trials - done)
                per_member = state.member_epoch_s * state.epochs_per_trial * 1.15
                if per_member * batch > left:
                    fit = int(left / per_member)
                    if best_value(search) is None:
                        # a study with no complete trial has nothing to recommend: the
                        # first batch runs, but no larger than its queued design needs
                        batch = min(batch, max(fit, waiting_trials(search), 1))
                    elif fit < min(2, k):
                        break
                    else:
                        batch = fit
                t0 = time.time()
                outcome = run_batch(
                    search,
                    space,
                    batch,
                    train=self.train,
                    data=self.data,
                    epochs=c.epochs,
                    seed=c.seed,
                    worker=self.worker,
                    chance=settings.chance,
                )
                dt = time.time() - t0
                for opt, (n, member_epochs, seconds) in outcome.by_optimizer.items():
                    self.costs.observe(opt, member_epochs=member_epochs, seconds=seconds, trials=n)
                    if isinstance(self.train, ObjectiveTrainer):  # finals run as the search
                        # an objective that never reports is seen once per trial, not per epoch
                        per = 1 if self.train.reported else c.epochs
                        self.costs.final[opt] = self.costs.search[opt] / per
                results = outcome.results
                epochs_run = sum(max(r.epochs_run, 1) for r in results)
                member_epochs_done += epochs_run
                state.trials += len(results)
                state.batches += 1
                state.epochs_per_trial = member_epochs_done / state.trials
                if batch == k:  # smaller batches run less efficiently; keep the K estimate
                    state.member_epoch_s = dt / epochs_run
                if spend.expected_trials is None:  # the pace of a real batch, Optuna included
                    pace = len(results) / max(dt, 1e-9)
                    spend = replace(spend, expected_trials=done + len(results) + int(pace * left))
                spend = replace(
                    spend,
                    optuna_s=spend.optuna_s + outcome.optuna_s,
                    train_s=spend.train_s + outcome.train_s,
                    batches=spend.batches + 1,
                )
                save()
                self.bar.update(
                    search_line(count_trials(search), best_value(search), self._time_left())
                )
        except KeyboardInterrupt:
            save()
            self.bar.done(
                f"interrupted: study {c.study_name!r} saved in {self.store_display}; "
                "rerun the same command to continue"
            )
            raise
        save()
        self.bar.done(search_line(count_trials(search), best_value(search), 0.0))


def _lr_free() -> list[str]:
    """The optimizers the finals run at their defaults beside Adam (learning-rate-free)."""
    return [b.optimizer for b in schema.lr_free_baselines()]


def _load(config: TuneConfig, flat: bool) -> Dataset:
    """The data: the named dataset, or the user's (``flat`` for the seed MLP)."""
    if config.data is not None:
        kind = config.the_task.kind
        return load_user_data(config.data, kind=kind, seed=config.seed, flatten=flat)
    return as_dataset(config.dataset, config.seed, config.data_dir)


def _choose(rec: Recommendation, config: TuneConfig) -> list[str]:
    """The optimizers to search: those the user named, else the rules' top candidates."""
    if config.optimizers:
        return list(config.optimizers)
    return [c.optimizer for c in rec.candidates[: config.candidates]]


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".advisor-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InvalidValueError(
            f"--out {str(folder)!r} is not a writable folder ({exc.strerror or exc}). "
            "Choose another folder."
        ) from exc


def _wait_for_settings(search: optuna.Study, wait_s: float = 300.0) -> StudySettings:
    deadline = time.monotonic() + wait_s
    while (settings := schema.read_settings(search)) is None:
        if time.monotonic() > deadline:
            raise StorageError(
                f"study {search.study_name!r} exists but was not made by advisor (no settings). "
                "Use another --study name."
            )
        time.sleep(0.5)
    return settings


def _check_resume(config: TuneConfig, stored: StudySettings) -> None:
    problems = []
    if stored.dataset != config.dataset_name:
        problems.append(f"dataset {stored.dataset!r} (now {config.dataset_name!r})")
    if stored.epochs != config.epochs:
        problems.append(f"epochs {stored.epochs} (now {config.epochs})")
    if stored.batch_size != config.batch_size:
        problems.append(f"batch size {stored.batch_size} (now {config.batch_size})")
    if config.optimizers:
        have = list(stored.space.get("optimizers", []))
        if sorted(config.optimizers) != sorted(have):
            problems.append(f"optimizers {', '.join(have)} (now {', '.join(config.optimizers)})")
    if problems:
        raise StorageError(
            f"study {config.study_name!r} already exists with a different search: "
            f"{'; '.join(problems)}. Continue it with the same options, or start a new study "
            "with another --study name."
        )
