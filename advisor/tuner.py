"""``advisor.tune``: rule-guided Optuna tuning on the population trainer, with honest reporting.

Stages: recommend candidates for the problem (rules) → a search space sized by the budget →
search (ask K trials, train them as one population, prune by successive halving, tell) →
finalists and the default ``Adam(lr=1e-3)`` re-run on fresh seeds → a report whose winner is
chosen on validation accuracy and scored on the held-out test set.
"""

from __future__ import annotations

import functools
import importlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.budget import calibrate, expected_epochs, finals_estimate, sessions_spent
from advisor.errors import InvalidValueError, StorageError, TrainingError
from advisor.progress import Progress, search_line
from advisor.results import TuneResult, build_result
from advisor.search import MIN_RESOURCE, REDUCTION_FACTOR
from advisor.units import parse_duration

if TYPE_CHECKING:
    import optuna
    import torch

    from advisor.data import Dataset
    from advisor.recommender import Recommendation
    from advisor.space import SearchSpace

#: Default wall-clock budgets: the embedded digits are small, the 60k sets are not.
DEFAULT_BUDGET_S = {"mnist-5k": 60.0}
DEFAULT_BUDGET_OTHER_S = 300.0
DEFAULT_OUT = Path("advisor-runs")


def _positive_int(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidValueError(f"{name} must be a positive whole number, got {value!r}.")


def resolve_model(
    model: Callable[[], torch.nn.Module] | str | None,
) -> Callable[[], torch.nn.Module] | None:
    """``None`` (the seed MLP), a factory, or ``"module:attribute"`` naming a factory."""
    if model is None or callable(model):
        return model
    if not isinstance(model, str) or ":" not in model:
        raise InvalidValueError(
            f"a model must be a callable or 'module:factory' (e.g. 'advisor.models:mnist_mlp'), got {model!r}."
        )
    module_name, attr = model.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise TrainingError(
            f"cannot import the model module {module_name!r} ({type(exc).__name__}: {exc}). "
            "Check the name and that it is on PYTHONPATH."
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise TrainingError(f"{module_name!r} has no callable {attr!r} to build the model.")
    if module_name == "advisor.models" and attr == "mnist_mlp":
        return None  # the seed MLP: the population trainer handles it
    return factory  # type: ignore[no-any-return]


def _load(
    dataset: str | Dataset, data: Sequence[Any] | None, data_dir: str | None, seed: int
) -> Dataset:
    from advisor.data import Dataset, load_dataset

    if data is not None:
        if len(data) != 4:
            raise InvalidValueError(
                f"data must be (X_train, y_train, X_test, y_test), got {len(data)} items."
            )
        return Dataset.from_arrays(*data, seed=seed)
    if isinstance(dataset, Dataset):
        return dataset
    return load_dataset(dataset, data_dir=data_dir, seed=seed)


def _choose(rec: Recommendation, optimizers: Sequence[str] | None, n: int) -> list[str]:
    from advisor.optimizers import get_optimizer_info

    if optimizers:
        names = [get_optimizer_info(o).name for o in optimizers]
        return list(dict.fromkeys(names))
    return [c.optimizer for c in rec.candidates[:n]]


@dataclass
class _Job:
    """Everything one worker resolved from the arguments of :func:`tune`."""

    study_name: str
    storage_url: str | None
    store: Any
    store_display: str
    ds_name: str
    ds: Dataset
    budget_s: float
    epochs: int
    batch_size: int
    population: int
    finalists: int
    seeds: int
    seed: int
    sampler_seed: int
    trials: int | None
    optimizers: Sequence[str] | None
    candidates: int
    factory: Callable[[], torch.nn.Module] | None
    model_name: str
    device: torch.device
    n_params: int
    rules_dirs: tuple[str | Path, ...]
    probe_lr: bool
    train: Callable[..., Any]
    worker: str
    bar: Progress


def tune(
    dataset: str | Dataset = "mnist-5k",
    *,
    model: Callable[[], torch.nn.Module] | str | None = None,
    data: Sequence[Any] | None = None,
    budget: str | float | None = None,
    trials: int | None = None,
    epochs: int = 5,
    batch_size: int = 128,
    population: int | None = None,
    candidates: int = 4,
    optimizers: Sequence[str] | None = None,
    finalists: int = 3,
    seeds: int = 5,
    device: str = "auto",
    seed: int = 0,
    study: str | None = None,
    storage: str | None = None,
    out: str | Path | None = None,
    rules_dirs: Sequence[str | Path] = (),
    data_dir: str | None = None,
    workers: int = 1,
    threads: int | None = None,
    sampler_seed: int | None = None,
    probe_lr: bool = False,
    progress: bool = False,
) -> TuneResult:
    """Tune the optimizer and its hyperparameters for a model and dataset.

    ``budget`` is wall time for the whole run (search and the multi-seed finalist stage),
    e.g. ``"5m"``; default 1 minute on ``mnist-5k``, 5 minutes otherwise. ``trials`` caps
    the search trials. The winner is chosen on validation accuracy over ``seeds`` fresh
    seeds and reported on the test set beside the default ``Adam(lr=1e-3)``.
    A user's model: ``tune(model=factory, data=(X_train, y_train, X_test, y_test))``.
    ``workers`` > 1 runs that many processes on one study (``threads`` CPU threads each,
    default: the cores shared out); on several machines, run ``tune`` on each with the same
    ``study`` and a shared ``storage`` URL instead. ``sampler_seed`` seeds TPE (default
    ``seed``); workers on one study should use distinct ones. ``probe_lr`` narrows each
    candidate's learning-rate range by an LR range test (Smith 2017) before the search.

    >>> r = tune(budget="30s", trials=8, seeds=2, finalists=1)  # doctest: +SKIP
    >>> r.recommendation.torch  # doctest: +SKIP
    'torch.optim.Adam(params, lr=0.0041, betas=(0.9, 0.999))'
    """
    import optuna

    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("population", population),
                        ("candidates", candidates), ("finalists", finalists), ("seeds", seeds),
                        ("trials", trials), ("workers", workers), ("threads", threads)):  # fmt: skip
        _positive_int(name, value)
    if workers > 1:
        if model is not None and not isinstance(model, str):
            raise InvalidValueError(
                "workers > 1 needs the model as 'module:factory' (a string), so that every "
                "worker process can import it."
            )
        from advisor.workers import run_workers

        return run_workers(
            workers,
            threads=threads,
            kwargs=dict(
                dataset=dataset, model=model, data=data, budget=budget, trials=trials, epochs=epochs,
                batch_size=batch_size, population=population, candidates=candidates,
                optimizers=optimizers, finalists=finalists, seeds=seeds, device=device, seed=seed,
                study=study, storage=storage, out=out, rules_dirs=rules_dirs, data_dir=data_dir,
                probe_lr=probe_lr, progress=progress,
            ),
        )  # fmt: skip
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    job = _prepare(
        dataset, model=model, data=data, budget=budget, trials=trials, epochs=epochs,
        batch_size=batch_size, population=population, candidates=candidates,
        optimizers=optimizers, finalists=finalists, seeds=seeds, device=device, seed=seed,
        study=study, storage=storage, out=out, rules_dirs=rules_dirs, data_dir=data_dir,
        progress=progress, sampler_seed=sampler_seed, probe_lr=probe_lr,
    )  # fmt: skip
    return _run(job, Path(out) if out is not None else None)


def _prepare(dataset: str | Dataset, *, model: Any, data: Sequence[Any] | None, budget: str | float | None,
             trials: int | None, epochs: int, batch_size: int, population: int | None,
             candidates: int, optimizers: Sequence[str] | None, finalists: int, seeds: int,
             device: str, seed: int, study: str | None, storage: str | None,
             out: str | Path | None, rules_dirs: Sequence[str | Path], data_dir: str | None,
             progress: bool, sampler_seed: int | None = None, probe_lr: bool = False) -> _Job:  # fmt: skip
    """Check the arguments, open the storage, load the data and ask the rules for candidates."""
    from advisor.devices import resolve_device
    from advisor.storage import open_storage, worker_id
    from advisor.train import default_population, train_members

    ds_name = dataset if isinstance(dataset, str) else getattr(dataset, "name", "custom")
    if data is not None:
        ds_name = "custom"
    budget_s = (
        parse_duration(budget, "budget")
        if budget is not None
        else DEFAULT_BUDGET_S.get(ds_name, DEFAULT_BUDGET_OTHER_S)
    )
    if optimizers:
        from advisor.optimizers import get_optimizer_info

        optimizers = [get_optimizer_info(o).name for o in optimizers]
    factory = resolve_model(model)
    dev = resolve_device(device)
    out_dir = Path(out) if out is not None else DEFAULT_OUT
    if out is not None:
        _check_writable(out_dir)
    store, store_display = open_storage(storage, out_dir / "studies.journal")
    bar = Progress(enabled=progress)
    bar.update(f"loading {ds_name} ...", force=True)
    ds = _load(dataset, data, data_dir, seed).to(dev)
    n_params = sum(p.numel() for p in (factory() if factory else _seed_mlp(ds)).parameters())
    k = 1 if factory is not None else (population or default_population(dev))
    train = functools.partial(train_members, batch_size=batch_size, device=dev, model_factory=factory, max_population=k)  # fmt: skip
    return _Job(
        study_name=study or f"{ds_name}-{time.strftime('%Y%m%d-%H%M%S')}",
        storage_url=storage, store=store, store_display=store_display, ds_name=ds_name, ds=ds,
        budget_s=budget_s, epochs=epochs, batch_size=batch_size, population=k,
        finalists=finalists, seeds=seeds, seed=seed,
        sampler_seed=seed if sampler_seed is None else sampler_seed, trials=trials,
        optimizers=optimizers, candidates=candidates, factory=factory,
        model_name=_model_name(model), device=dev, n_params=n_params,
        rules_dirs=tuple(rules_dirs), probe_lr=probe_lr, train=train, worker=worker_id(),
        bar=bar,
    )  # fmt: skip


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


def _run(job: _Job, out: Path | None) -> TuneResult:
    """Search until the budget is spent, run the finalist stage, build (and write) the result."""
    from advisor.finals import run_finals

    t_start = time.time()
    search, space, member_epoch_s, final_epoch_s = _open_search(job)
    spent_before = sessions_spent(search)
    _search(job, search, space, member_epoch_s, final_epoch_s, spent_before)

    def on_seed(done: int, total: int) -> None:
        job.bar.update(f"finalists  seed {done}/{total} done", force=True)

    job.bar.update(
        f"finalists  {job.finalists} best trials and the default Adam on {job.seeds} fresh seeds ...",
        force=True,
    )
    final = run_finals(search, space, finalists=job.finalists, seeds=job.seeds, seed=job.seed, train=job.train, data=job.ds, epochs=job.epochs, worker=job.worker, on_seed=on_seed)  # fmt: skip
    if "advisor_elapsed_s" not in final.user_attrs:
        final.set_user_attr("advisor_elapsed_s", time.time() - t_start + spent_before)
    job.bar.done()
    result = build_result(job.store, job.study_name, storage_display=job.store_display, storage_url=job.storage_url)  # fmt: skip
    if out is not None:
        from advisor.report import write_outputs

        write_outputs(result, out)
    return result


def _open_search(job: _Job) -> tuple[optuna.Study, SearchSpace, float, float]:
    """Create the search study (first worker) or join/resume it; return it with its timings."""
    import optuna

    from advisor.search import make_pruner, make_sampler
    from advisor.space import space_from_dict
    from advisor.storage import fail_stale_trials

    search = _try_load(job.study_name, job.store)
    if search is None:
        try:
            return _create_search(job)
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
            search = optuna.load_study(study_name=job.study_name, storage=job.store)
    stored = _wait_for_settings(search)
    _check_resume(job.study_name, stored, ds_name=job.ds_name, epochs=job.epochs, batch_size=job.batch_size, optimizers=job.optimizers)  # fmt: skip
    space = space_from_dict(stored["space"])
    search.sampler = make_sampler(
        job.sampler_seed, int(stored.get("n_startup", job.population)), job.worker
    )
    search.pruner = make_pruner()
    failed = fail_stale_trials(search)
    if failed:
        job.bar.update(f"resuming {job.study_name}: {len(failed)} interrupted trial(s) queued again", force=True)  # fmt: skip
    member_epoch_s = float(stored["member_epoch_s"])
    return search, space, member_epoch_s, float(stored.get("final_member_epoch_s", member_epoch_s))


def _create_search(job: _Job) -> tuple[optuna.Study, SearchSpace, float, float]:
    import optuna

    from advisor.profile import Profile
    from advisor.recommender import recommend
    from advisor.search import make_pruner, make_sampler
    from advisor.space import build_space

    job.bar.update("timing the trainer ...", force=True)
    member_epoch_s = calibrate(job.train, job.ds, job.population, job.batch_size, "adam")
    final_epoch_s = (
        calibrate(job.train, job.ds, job.finalists + 1, job.batch_size, "adam")
        if job.factory is None
        else member_epoch_s
    )
    reserve = finals_reserve(final_epoch_s, job)
    search_s = max(job.budget_s - reserve, 0.0)
    expected = job.trials or max(int(search_s / (member_epoch_s * expected_epochs(job.epochs))), 1)
    # the rules see what the budget buys here: how many trials, not just how many minutes
    profile = Profile(
        params=job.n_params, samples=len(job.ds.x_train), convexity="nonconvex",
        budget=job.budget_s, batch_size=job.batch_size, device=job.device.type, trials=expected,
    )  # fmt: skip
    rec = recommend(profile, rules_dirs=job.rules_dirs)
    chosen = _choose(rec, job.optimizers, job.candidates)
    lr_ranges = {c.optimizer: c.search_space["lr"] for c in rec.candidates}
    if job.probe_lr:
        from advisor.lr_range import probe_ranges

        job.bar.update("LR range test ...", force=True)
        lr_ranges.update(probe_ranges(chosen, job.ds, model=job.factory, device=job.device, batch_size=job.batch_size, seed=job.seed))  # fmt: skip
    mom_ranges = {
        c.optimizer: r
        for c in rec.candidates
        for name, r in c.search_space.items()
        if name in ("momentum", "beta1")
    }
    space = build_space(chosen, lr_ranges, mom_ranges, expected)
    n_startup = min(job.population, expected)
    search = optuna.create_study(
        study_name=job.study_name, storage=job.store, direction="maximize",
        sampler=make_sampler(job.sampler_seed, n_startup, job.worker), pruner=make_pruner(),
    )  # fmt: skip
    for params in space.initial_design(n_startup, job.seed):
        search.enqueue_trial(params)
    ds = job.ds
    settings = {
        "dataset": job.ds_name, "model": job.model_name, "epochs": job.epochs,
        "batch_size": job.batch_size, "population": job.population, "finalists": job.finalists,
        "seeds": job.seeds, "seed": job.seed, "device": job.device.type,
        "n_classes": ds.n_classes, "budget_s": job.budget_s, "trials": job.trials,
        "n_train": len(ds.x_train), "n_val": len(ds.x_val), "n_test": len(ds.x_test),
        "space": space.to_dict(), "n_startup": n_startup, "expected_trials": expected,
        "member_epoch_s": member_epoch_s, "final_member_epoch_s": final_epoch_s,
        "sampler": (
            f"quasi-random (scrambled Sobol) first batch of {n_startup} trials, stratified over "
            "the optimizers, then TPE (multivariate, grouped, constant liar): quasi-random "
            "search to explore in parallel batches, Bayesian optimization after (Tuning Playbook)"
        ),
        "pruner": f"successive halving (first rung after {MIN_RESOURCE} epoch, keep the best 1/{REDUCTION_FACTOR})",
        "candidates": [c.to_dict() for c in rec.candidates[: max(len(chosen), job.candidates)]],
        "chosen": chosen,
        "probe_lr": job.probe_lr,
        "advice": [a.to_dict() for a in rec.advice],
        "profile": profile.to_dict(),
    }  # fmt: skip
    search.set_user_attr("advisor_settings", settings)  # last: its presence means "ready"
    return search, space, member_epoch_s, final_epoch_s


def _wait_for_settings(search: optuna.Study, wait_s: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while "advisor_settings" not in search.user_attrs:
        if time.monotonic() > deadline:
            raise StorageError(
                f"study {search.study_name!r} exists but was not made by advisor (no settings). "
                "Use another --study name."
            )
        time.sleep(0.5)
    settings: dict[str, Any] = search.user_attrs["advisor_settings"]
    return settings


def _search(job: _Job, search: optuna.Study, space: SearchSpace, member_epoch_s: float,
            final_epoch_s: float, spent_before: float) -> None:  # fmt: skip
    """Ask, train, tell in batches until the trial cap or the time left for searching is reached."""
    from advisor.results import count_trials
    from advisor.search import SearchState, best_value, finished_trials, run_batch

    session_key = f"advisor_session:{job.worker}"
    session_start = time.time()
    reserve = finals_reserve(final_epoch_s, job)
    deadline = session_start + max(job.budget_s - spent_before, 0.0) - reserve
    state = SearchState(member_epoch_s=member_epoch_s, epochs_per_trial=expected_epochs(job.epochs))
    k = job.population
    member_epochs_done = 0.0
    try:
        while True:
            done = finished_trials(search)
            if job.trials is not None and done >= job.trials:
                break
            left = deadline - time.time()
            batch = k if job.trials is None else min(k, job.trials - done)
            per_member = state.member_epoch_s * state.epochs_per_trial * 1.15
            if per_member * batch > left and best_value(search) is not None:
                # out of time; but a study with no complete trial has nothing to recommend,
                # so the first batch always runs
                batch = int(left / per_member) if job.factory is None else 0
                if batch < min(2, k):
                    break
            t0 = time.time()
            results = run_batch(search, space, batch, train=job.train, data=job.ds, epochs=job.epochs, seed=job.seed, worker=job.worker, n_classes=job.ds.n_classes)  # fmt: skip
            dt = time.time() - t0
            epochs_run = sum(max(r.epochs_run, 1) for r in results)
            member_epochs_done += epochs_run
            state.trials += len(results)
            state.batches += 1
            state.epochs_per_trial = member_epochs_done / state.trials
            if batch == k:  # smaller batches run less efficiently; keep the K estimate
                state.member_epoch_s = dt / epochs_run
            search.set_user_attr(session_key, [session_start, time.time()])
            job.bar.update(search_line(count_trials(search), best_value(search), deadline - time.time()))  # fmt: skip
    except KeyboardInterrupt:
        search.set_user_attr(session_key, [session_start, time.time()])
        job.bar.done(f"interrupted: study {job.study_name!r} saved in {job.store_display}; rerun the same command to continue")  # fmt: skip
        raise
    search.set_user_attr(session_key, [session_start, time.time()])
    job.bar.done(search_line(count_trials(search), best_value(search), 0.0))


def _seed_mlp(ds: Dataset) -> torch.nn.Module:
    from advisor.models import mnist_mlp

    return mnist_mlp(n_features=ds.n_features, n_classes=ds.n_classes)


def _model_name(model: object) -> str:
    if model is None:
        return "advisor.models:mnist_mlp"
    if isinstance(model, str):
        return model
    return f"{getattr(model, '__module__', '?')}:{getattr(model, '__qualname__', repr(model))}"


def finals_reserve(final_epoch_s: float, job: _Job) -> float:
    """Time kept for the finalist stage: its estimate, but at most half the budget."""
    return min(
        finals_estimate(final_epoch_s, job.finalists, job.seeds, job.epochs), job.budget_s / 2
    )


def _try_load(name: str, storage: Any) -> optuna.Study | None:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _check_resume(name: str, stored: dict[str, Any], *, ds_name: str, epochs: int, batch_size: int, optimizers: Sequence[str] | None) -> None:  # fmt: skip
    problems = []
    if stored.get("dataset") != ds_name:
        problems.append(f"dataset {stored.get('dataset')!r} (now {ds_name!r})")
    if stored.get("epochs") != epochs:
        problems.append(f"epochs {stored.get('epochs')} (now {epochs})")
    if stored.get("batch_size") != batch_size:
        problems.append(f"batch size {stored.get('batch_size')} (now {batch_size})")
    if optimizers:
        from advisor.optimizers import get_optimizer_info

        want = [get_optimizer_info(o).name for o in optimizers]
        have = stored.get("space", {}).get("optimizers", [])
        if sorted(want) != sorted(have):
            problems.append(f"optimizers {', '.join(have)} (now {', '.join(want)})")
    if problems:
        raise StorageError(
            f"study {name!r} already exists with a different search: {'; '.join(problems)}. "
            "Continue it with the same options, or start a new study with another --study name."
        )
