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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.core.devices import resolve_device
from advisor.core.errors import InvalidValueError, StorageError
from advisor.data.dataset import Dataset
from advisor.data.datasets import as_dataset
from advisor.knowledge.optimizers import get_optimizer_info
from advisor.knowledge.profile import Profile
from advisor.knowledge.recommender import Recommendation, recommend
from advisor.probe.lr_range import probe_ranges
from advisor.train import default_population, train_members
from advisor.train.model_ref import build, resolve_model
from advisor.tuning import schema
from advisor.tuning.budget import calibrate, expected_epochs, finals_estimate, sessions_spent
from advisor.tuning.config import TuneConfig
from advisor.tuning.finals import run_finals
from advisor.tuning.outputs import write_report
from advisor.tuning.progress import Progress, search_line
from advisor.tuning.readback import build_result, count_trials
from advisor.tuning.result import TuneResult
from advisor.tuning.schema import StudySettings
from advisor.tuning.search import (
    MIN_RESOURCE,
    REDUCTION_FACTOR,
    SearchState,
    best_value,
    finished_trials,
    make_pruner,
    make_sampler,
    run_batch,
)
from advisor.tuning.space import SearchSpace, build_space, space_from_dict
from advisor.tuning.storage import fail_stale_trials, open_storage, worker_id

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

    @classmethod
    def open(cls, config: TuneConfig) -> Session:
        """Open the storage, load the data and build the trainer (raises on bad input)."""
        factory = resolve_model(config.model)
        device = resolve_device(config.device)
        if config.out is not None:
            _check_writable(config.out_dir)
        store, display = open_storage(config.storage, config.journal_path)
        bar = Progress(enabled=config.progress)
        bar.update(f"loading {config.dataset_name} ...", force=True)
        data = _load(config).to(device)
        n_params = sum(p.numel() for p in build(factory, data, config.seed).parameters())
        k = 1 if factory is not None else (config.population or default_population(device))
        train = functools.partial(
            train_members,
            batch_size=config.batch_size,
            device=device,
            model_factory=factory,
            max_population=k,
        )
        return cls(
            config, store, display, data, factory, device, n_params, k, train, worker_id(), bar
        )

    @property
    def sampler_seed(self) -> int:
        c = self.config
        return c.seed if c.sampler_seed is None else c.sampler_seed

    def run(self) -> TuneResult:
        """Search until the budget is spent, run the finalist stage, build (and write) the result."""
        c = self.config
        t_start = time.time()
        search, space, settings = self._open_search()
        spent_before = sessions_spent(search)
        self._search(search, space, settings, spent_before)
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
            on_seed=lambda done, total: self.bar.update(
                f"finalists  seed {done}/{total} done", force=True
            ),
        )
        if schema.ELAPSED not in final.user_attrs:
            final.set_user_attr(schema.ELAPSED, time.time() - t_start + spent_before)
        self.bar.done()
        result = build_result(
            self.store, c.study_name, storage_display=self.store_display, storage_url=c.storage
        )
        if c.out is not None:
            write_report(result, c.out_dir)
        return result

    # ------------------------------------------------------------ the search study

    def _finals_reserve(self, final_epoch_s: float) -> float:
        """Time kept for the finalist stage: its estimate, but at most half the budget."""
        c = self.config
        extra = len(schema.lr_free_baselines())  # the second baselines run beside Adam
        estimate = finals_estimate(final_epoch_s, c.finalists + extra, c.seeds, c.epochs)
        return min(estimate, c.budget_s / 2)

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
        search.sampler = make_sampler(self.sampler_seed, settings.n_startup, self.worker)
        search.pruner = make_pruner()
        failed = fail_stale_trials(search)
        if failed:
            self.bar.update(
                f"resuming {c.study_name}: {len(failed)} interrupted trial(s) queued again",
                force=True,
            )
        return search, space_from_dict(dict(settings.space)), settings

    def _create_search(self) -> tuple[optuna.Study, SearchSpace, StudySettings]:
        import optuna

        c = self.config
        self.bar.update("timing the trainer ...", force=True)
        member_epoch_s = calibrate(self.train, self.data, self.population, c.batch_size, "adam")
        baselines = ["adam", *(b.optimizer for b in schema.lr_free_baselines())]
        final_epoch_s = (
            calibrate(self.train, self.data, c.finalists + 1, c.batch_size, baselines)
            if self.factory is None
            else member_epoch_s
        )
        search_s = max(c.budget_s - self._finals_reserve(final_epoch_s), 0.0)
        expected = c.trials or max(int(search_s / (member_epoch_s * expected_epochs(c.epochs))), 1)
        # the rules see what the budget buys here: how many trials, not just how many minutes
        profile = Profile(
            params=self.n_params,
            samples=len(self.data.x_train),
            convexity="nonconvex",
            budget=c.budget_s,
            batch_size=c.batch_size,
            device=self.device.type,
            trials=expected,
        )
        rec = recommend(profile, rules_dirs=c.rules_dirs)
        chosen = _choose(rec, c)
        if set(chosen) != {"adam"}:  # time the search with the optimizers it trains
            self.bar.update("timing the candidates ...", force=True)
            member_epoch_s = calibrate(self.train, self.data, self.population, c.batch_size, chosen)
            if self.factory is None:
                finals_mix = [*chosen[: c.finalists], *baselines]
                final_epoch_s = calibrate(
                    self.train, self.data, c.finalists + 1, c.batch_size, finals_mix
                )
            search_s = max(c.budget_s - self._finals_reserve(final_epoch_s), 0.0)
            per_trial = member_epoch_s * expected_epochs(c.epochs)
            expected = c.trials or max(int(search_s / per_trial), 1)
        space = self._space(rec, chosen, expected)
        n_startup = min(self.population, expected)
        search = optuna.create_study(
            study_name=c.study_name,
            storage=self.store,
            direction="maximize",
            sampler=make_sampler(self.sampler_seed, n_startup, self.worker),
            pruner=make_pruner(),
        )
        for params in space.initial_design(n_startup, c.seed):
            search.enqueue_trial(params)
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
            member_epoch_s=member_epoch_s,
            final_member_epoch_s=final_epoch_s,
            sampler=_SAMPLER_TEXT.format(n=n_startup),
            pruner=_PRUNER_TEXT,
            candidates=tuple(
                cand.to_dict() for cand in rec.candidates[: max(len(chosen), c.candidates)]
            ),
            chosen=tuple(chosen),
            probe_lr=c.probe_lr,
            advice=tuple(a.to_dict() for a in rec.advice),
            profile=profile.to_dict(),
        )
        schema.write_settings(search, settings)  # last: its presence means "ready"
        return search, space, settings

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

    def _search(
        self,
        search: optuna.Study,
        space: SearchSpace,
        settings: StudySettings,
        spent_before: float,
    ) -> None:
        """Ask, train, tell in batches until the trial cap or the time left for searching is reached."""
        c = self.config
        key = schema.session_key(self.worker)
        session_start = time.time()
        reserve = self._finals_reserve(settings.final_member_epoch_s or settings.member_epoch_s)
        deadline = session_start + max(c.budget_s - spent_before, 0.0) - reserve
        state = SearchState(
            member_epoch_s=settings.member_epoch_s, epochs_per_trial=expected_epochs(c.epochs)
        )
        k = self.population
        member_epochs_done = 0.0
        try:
            while True:
                done = finished_trials(search)
                if c.trials is not None and done >= c.trials:
                    break
                left = deadline - time.time()
                batch = k if c.trials is None else min(k, c.trials - done)
                per_member = state.member_epoch_s * state.epochs_per_trial * 1.15
                if per_member * batch > left and best_value(search) is not None:
                    # out of time; but a study with no complete trial has nothing to
                    # recommend, so the first batch always runs
                    batch = int(left / per_member) if self.factory is None else 0
                    if batch < min(2, k):
                        break
                t0 = time.time()
                results = run_batch(
                    search,
                    space,
                    batch,
                    train=self.train,
                    data=self.data,
                    epochs=c.epochs,
                    seed=c.seed,
                    worker=self.worker,
                    n_classes=self.data.n_classes,
                )
                dt = time.time() - t0
                epochs_run = sum(max(r.epochs_run, 1) for r in results)
                member_epochs_done += epochs_run
                state.trials += len(results)
                state.batches += 1
                state.epochs_per_trial = member_epochs_done / state.trials
                if batch == k:  # smaller batches run less efficiently; keep the K estimate
                    state.member_epoch_s = dt / epochs_run
                search.set_user_attr(key, [session_start, time.time()])
                self.bar.update(
                    search_line(count_trials(search), best_value(search), deadline - time.time())
                )
        except KeyboardInterrupt:
            search.set_user_attr(key, [session_start, time.time()])
            self.bar.done(
                f"interrupted: study {c.study_name!r} saved in {self.store_display}; "
                "rerun the same command to continue"
            )
            raise
        search.set_user_attr(key, [session_start, time.time()])
        self.bar.done(search_line(count_trials(search), best_value(search), 0.0))


def _load(config: TuneConfig) -> Dataset:
    if config.data is not None:
        return Dataset.from_arrays(*config.data, seed=config.seed)
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
