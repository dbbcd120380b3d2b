"""Time accounting for tuning: what each optimizer costs, what the finalist stage needs,
how many epochs a pruned trial runs, and how much wall time a study has already used.

The wall budget counts from the call of :func:`advisor.tune` to its return. The search
stops early enough for the finalist stage (its cost re-estimated before every batch from
the trials that would be finalists now, at the measured cost of their optimizers), the
report (:data:`REPORT_RESERVE_S`) and the way out (:data:`EXIT_RESERVE_S`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from advisor.knowledge.optimizers import get_optimizer_info
from advisor.train import MemberConfig
from advisor.tuning import schema

if TYPE_CHECKING:
    import optuna

    from advisor.data.dataset import Dataset


#: Seconds kept for writing ``result.json``, ``report.md`` and the figures, and reading the
#: result back (measured about 1.5 s on the seed study; importance gets slower with trials).
REPORT_RESERVE_S = 3.0
#: Seconds kept for what the clock of :func:`advisor.tune` does not see: the CLI's imports
#: before it (torch and optuna, about 2 s), printing and the interpreter's exit (a 30 s
#: budget measured from outside overran its bound by 0.15 s with 1 s here).
EXIT_RESERVE_S = 3.0
#: Weight of the newest batch in a cost's running estimate.
_EMA = 0.5


def subset(data: Dataset, n_train: int) -> Dataset:
    frac = n_train / len(data.x_train)
    n_val = max(int(len(data.x_val) * frac), 32)
    return replace(
        data,
        x_train=data.x_train[:n_train],
        y_train=data.y_train[:n_train],
        x_val=data.x_val[:n_val],
        y_val=data.y_val[:n_val],
    )


def calibrate(
    train: Callable[..., Any],
    data: Dataset,
    k: int,
    batch_size: int,
    optimizer: str | Sequence[str],
) -> float:
    """Seconds per member-epoch on the full data at population size ``k``, timed on a slice.

    Several optimizers take turns in the population: their steps cost very different times
    (Muon's bfloat16 Newton-Schulz iterations cost 100x an Adam step on a CPU without
    native bfloat16), so the search is timed with the optimizers it will train.
    """

    steps = 8
    n = min(len(data.x_train), steps * batch_size)
    sub = subset(data, n)
    stamps: list[float] = []
    names = [optimizer] if isinstance(optimizer, str) else list(optimizer)
    turns = [names[i % len(names)] for i in range(k)]
    configs = [
        MemberConfig(o, _timing_hp(o), "constant", init_seed=0, key=i) for i, o in enumerate(turns)
    ]
    # a full-batch epoch (L-BFGS) is up to max_iter iterations and their line searches: it
    # ends early when the loss stops changing, so its slowest epoch is the one to plan with
    full_batch = all(get_optimizer_info(o).full_batch for o in names)

    def on_epoch(report: Any) -> list[Any]:
        stamps.append(time.perf_counter())
        return []

    train(configs, sub, epochs=3, data_seed=0, on_epoch=on_epoch)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    per_epoch = (max if full_batch else min)(gaps) if gaps else 0.0
    # with one member per call (reference trainer) on_epoch fires per member-epoch
    members_per_stamp = 1 if len(stamps) > 3 else k
    return per_epoch * (len(data.x_train) / n) / members_per_stamp


def _timing_hp(optimizer: str) -> dict[str, float]:
    """The hyperparameters an optimizer is timed with: the middle of its learning-rate range
    (geometric), where the search's trials train. At its default rate, L-BFGS (lr 1) can stop
    its epochs early and time 3x too cheap (the transformer encoder: 1.7 s against 5.3 s).

    >>> round(_timing_hp("lbfgs")["lr"], 3), _timing_hp("adam")["lr"] < 1e-2
    (0.224, True)
    """
    r = get_optimizer_info(optimizer).search_space.get("lr")
    if r is None:
        return {}
    return {"lr": math.sqrt(r.low * r.high) if r.log else (r.low + r.high) / 2}


def calibrate_costs(
    train: Callable[..., Any],
    data: Dataset,
    optimizers: Iterable[str],
    *,
    k: int,
    k_final: int,
    batch_size: int,
    reference_only: bool,
    known: CostModel | None = None,
) -> CostModel:
    """Measure what a member-epoch of each optimizer (and of the Adam baseline) costs.

    The optimizers the population trainer batches are timed together, taking turns in one
    population of ``k`` (their updates are a few elementwise passes each, small beside the
    forward and backward passes they share), except those of :func:`timed_apart` (Muon:
    its Newton-Schulz iterations cost far more), each timed in a population of its own.
    Finals costs scale like Adam's from ``k`` to ``k_final`` members. Each optimizer that
    trains alone (full-batch L-BFGS; every optimizer with ``reference_only``, a user's
    model) is timed at one member. What ``known`` holds is not measured again; the running
    estimate after each batch (:meth:`CostModel.observe`) corrects what the shared timing
    averaged out.
    """
    costs = known or CostModel(search={}, final={})
    todo = [o for o in dict.fromkeys(["adam", *optimizers]) if o not in costs.search]
    alone = [o for o in todo if reference_only or not get_optimizer_info(o).population]
    apart = [o for o in todo if o not in alone and timed_apart(o)]
    together = [o for o in todo if o not in alone and o not in apart]
    for o in alone:
        costs.search[o] = costs.final[o] = calibrate(train, data, 1, batch_size, o)
        costs.alone.add(o)
    if "adam" in together:
        costs.final["adam"] = calibrate(train, data, k_final, batch_size, "adam")
    if together:
        shared = calibrate(train, data, k, batch_size, together)
        costs.search.update(dict.fromkeys(together, shared))
    for o in apart:
        costs.search[o] = calibrate(train, data, k, batch_size, o)
    scale = costs.final["adam"] / costs.search["adam"]
    for o in [*together, *apart]:
        costs.final.setdefault(o, costs.search[o] * scale)
    return costs


def timed_apart(optimizer: str) -> bool:
    """Whether a population optimizer's step is costly enough to be timed on its own: Muon
    (hidden 2-D weights only), whose bfloat16 Newton-Schulz iterations cost 100-200 Adam
    steps on a CPU without native bfloat16 (docs/optimizers.md)."""
    return get_optimizer_info(optimizer).param_shapes == "2d"


def sessions_spent(study: optuna.Study) -> float:
    """Wall time already spent on the study: the union of all workers' session intervals."""
    return schema.union_length(schema.session_spans(study))


def expected_epochs(epochs: int) -> float:
    """Mean epochs per trial under successive halving with reduction factor 3 (rungs 1, 3, 9...)."""
    total, alive, rung, prev = 0.0, 1.0, 1, 0
    while rung < epochs:
        total += alive * (rung - prev)
        alive /= 3
        prev, rung = rung, rung * 3
    return total + alive * (epochs - prev)


def finals_estimate(member_epoch_s: float, finalists: int, seeds: int, epochs: int) -> float:
    """Seconds the finalist stage needs: seeds × (finalists + baseline) × epochs, plus a margin."""
    return 1.25 * member_epoch_s * (finalists + 1) * seeds * epochs + 1.0


@dataclass
class CostModel:
    """Seconds per member-epoch of each optimizer, measured, and what each one has spent.

    ``search[opt]`` is at the search population size, ``final[opt]`` at the finalist stage's;
    both start from a calibration and ``search`` follows every batch (a running estimate).
    Optimizers the population trainer cannot batch (L-BFGS: full batch, one member at a
    time) cost orders of magnitude more than the others: the budget is shared by time.

    >>> costs = CostModel(search={"adam": 0.01, "lbfgs": 0.5}, final={"adam": 0.02, "lbfgs": 0.5})
    >>> costs.observe("adam", member_epochs=30, seconds=0.6)
    >>> round(costs.search["adam"], 3), costs.trials["adam"], costs.spent["adam"]
    (0.015, 1, 0.6)
    """

    search: dict[str, float]
    final: dict[str, float]
    spent: dict[str, float] = field(default_factory=dict)
    trials: dict[str, int] = field(default_factory=dict)
    #: optimizers that train one member at a time: their finals cost what their trials cost
    alone: set[str] = field(default_factory=set)

    def observe(
        self, optimizer: str, *, member_epochs: float, seconds: float, trials: int = 1
    ) -> None:
        """Account one batch's share of ``optimizer``: its trials, member-epochs and seconds."""
        self.spent[optimizer] = self.spent.get(optimizer, 0.0) + seconds
        self.trials[optimizer] = self.trials.get(optimizer, 0) + trials
        if member_epochs > 0:
            measured = seconds / member_epochs
            old = self.search.get(optimizer, measured)
            self.search[optimizer] = (1 - _EMA) * old + _EMA * measured
            if optimizer in self.alone:
                self.final[optimizer] = self.search[optimizer]

    def trial_s(self, optimizer: str, epochs_per_trial: float) -> float:
        """Expected seconds of one search trial of ``optimizer``."""
        return self.search.get(optimizer, max(self.search.values())) * epochs_per_trial

    def finals_s(self, optimizers: Iterable[str], seeds: int, epochs: int) -> float:
        """Seconds the finalist stage needs for these finalists (the baseline is Adam)."""
        names = [*optimizers, "adam"]
        fallback = max(self.final.values())
        per_epoch = sum(self.final.get(o, fallback) for o in names)
        return 1.25 * per_epoch * seeds * epochs + 1.0

    def seed_s(self, optimizers: Iterable[str], epochs: int) -> float:
        """Seconds one seed of the finalist stage takes for these finalists (the baseline
        is Adam): :meth:`finals_s` of one seed, without the stage's fixed second."""
        return self.finals_s(optimizers, 1, epochs) - 1.0

    def over_share(self, optimizers: Iterable[str], search_s: float) -> set[str]:
        """Optimizers that used more than their share of the search time so far.

        Each optimizer may use up to ``1.5 / n`` of the time (``n`` optimizers), once the
        search has run for a few seconds: one slow optimizer cannot starve the others.
        """
        names = list(optimizers)
        if len(names) < 2 or search_s < 2.0:
            return set()
        cap = 1.5 * search_s / len(names)
        return {o for o in names if self.spent.get(o, 0.0) > cap}

    def avoid(self, optimizers: Sequence[str], epochs_per_trial: float, left_s: float) -> set[str]:
        """Optimizers not to sample now: over their share of the search time so far
        (:meth:`over_share`), or whose one trial no longer fits the ``left_s`` seconds left.
        Never all of them: when none fits, the cheapest trial overruns the least.

        >>> costs = CostModel(search={"adam": 0.01, "lbfgs": 1.0}, final={})
        >>> sorted(costs.avoid(["adam", "lbfgs"], 2.0, left_s=1.0))
        ['lbfgs']
        >>> sorted(costs.avoid(["adam", "lbfgs"], 2.0, left_s=0.0))
        ['lbfgs']
        """
        avoid = self.over_share(optimizers, sum(self.spent.values()))
        avoid |= {o for o in optimizers if self.trial_s(o, epochs_per_trial) > left_s}
        if optimizers and avoid >= set(optimizers):
            avoid.discard(min(optimizers, key=lambda o: self.trial_s(o, epochs_per_trial)))
        return avoid

    def to_dict(self) -> dict[str, Any]:
        return {
            opt: {
                "trials": self.trials.get(opt, 0),
                "seconds": self.spent.get(opt, 0.0),
                "member_epoch_s": self.search.get(opt),
            }
            for opt in sorted({*self.spent, *self.trials})  # what the search spent on
        }


def final_seeds_that_fit(asked: int, one_seed_s: float, left_s: float) -> int:
    """How many of the ``asked`` seeds the finalist stage can run in ``left_s`` seconds, when
    one seed takes ``one_seed_s``: never fewer than 2 (the paired t-test needs two).

    >>> final_seeds_that_fit(5, 2.0, 100.0), final_seeds_that_fit(5, 2.0, 7.0)
    (5, 3)
    >>> final_seeds_that_fit(5, 2.0, 1.0)
    2
    """
    fit = int(left_s / one_seed_s) if one_seed_s > 0 else asked
    return max(2, min(asked, fit))


def by_optimizer(
    spends: Iterable[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, float]]:
    """Add up several workers' per-optimizer ``{"trials", "seconds"}``."""
    total: dict[str, dict[str, float]] = {}
    for spend in spends:
        for opt, d in spend.items():
            t = total.setdefault(opt, {"trials": 0, "seconds": 0.0})
            t["trials"] += int(d.get("trials", 0))
            t["seconds"] += float(d.get("seconds", 0.0))
    return dict(sorted(total.items()))


def first_batch_counts(
    optimizers: Sequence[str], n: int, costs: CostModel, epochs_per_trial: float
) -> dict[str, int]:
    """Trials of each optimizer in the first batch (a quasi-random design, stratified).

    Optimizers share the batch evenly, except those whose trial costs more than 4 times the
    cheapest one's (L-BFGS next to a population): they get fewer trials, in proportion, at
    least one, and the cheap ones fill the places freed.

    >>> costs = CostModel(search={"adam": 0.01, "sgd": 0.01, "lbfgs": 1.0}, final={})
    >>> first_batch_counts(["adam", "lbfgs", "sgd"], 12, costs, 2.0)
    {'adam': 6, 'lbfgs': 1, 'sgd': 5}
    """
    per = {o: costs.trial_s(o, epochs_per_trial) for o in optimizers}
    cheapest = min(per.values())
    even = -(-n // len(optimizers))  # ceil
    counts = {
        o: (even if per[o] <= 4 * cheapest else max(1, int(even * cheapest / per[o])))
        for o in optimizers
    }
    cheap = [o for o in optimizers if per[o] <= 4 * cheapest]
    total, i = sum(counts.values()), 0
    while total < n and cheap:
        counts[cheap[i % len(cheap)]] += 1
        total, i = total + 1, i + 1
    while total > n:  # fewer places than optimizers: the most frequent give way, later first
        o = max(counts, key=lambda name: (counts[name], optimizers.index(name)))
        counts[o] -= 1
        total -= 1
    return counts


def batch_s(counts: Mapping[str, int], costs: CostModel, epochs_per_trial: float) -> float:
    """Expected seconds of one batch: population members share their epochs."""
    return sum(n * costs.trial_s(o, epochs_per_trial) for o, n in counts.items())


def expected_trials(
    costs: CostModel, optimizers: Sequence[str], search_s: float, epochs_per_trial: float
) -> int:
    """Trials ``search_s`` seconds buy with these optimizers taken in turn (at least 1).

    >>> expected_trials(CostModel(search={"adam": 0.01, "sgd": 0.03}, final={}), ["adam", "sgd"], 10.0, 2.0)
    250
    """
    per_trial = sum(costs.search[o] for o in optimizers) / len(optimizers) * epochs_per_trial
    return max(int(search_s / per_trial), 1)


def affordable(
    optimizers: Sequence[str],
    costs: CostModel,
    *,
    population: int,
    search_s: float,
    epochs_per_trial: float,
    epochs: int,
    fixed_s: float,
    budget_s: float,
    baselines: Sequence[str] = (),
) -> tuple[list[str], dict[str, float]]:
    """The optimizers a budget can search, and those left out (with the budget each needs).

    The first batch runs in full (one trial of every optimizer at least) and whichever
    optimizer wins then runs in the finalist stage on 2 seeds at least, beside the
    ``baselines``: an optimizer whose trial and finals cannot fit beside ``fixed_s`` (the
    setup, the report, the way out) would overrun the budget whenever it wins. The costliest
    is left out until the rest fit; the cheapest always stays.

    >>> costs = CostModel(search={"adam": 0.01, "lbfgs": 5.0}, final={"adam": 0.02, "lbfgs": 5.0})
    >>> kw = dict(population=16, search_s=40.0, epochs_per_trial=2.0, epochs=5, fixed_s=8.0)
    >>> kept, dropped = affordable(["adam", "lbfgs"], costs, budget_s=60.0, **kw)
    >>> kept, {o: round(s) for o, s in dropped.items()}
    (['adam'], {'lbfgs': 82})
    >>> affordable(["adam", "lbfgs"], costs, budget_s=120.0, **kw)
    (['adam', 'lbfgs'], {})
    """
    kept, dropped = list(optimizers), {}
    while len(kept) > 1:
        n = min(population, expected_trials(costs, kept, search_s, epochs_per_trial))
        counts = first_batch_counts(kept, n, costs, epochs_per_trial)
        costliest = max(kept, key=lambda o: costs.final.get(o, 0.0))
        finals = costs.finals_s([costliest, *baselines], 2, epochs)
        need = fixed_s + batch_s(counts, costs, epochs_per_trial) + finals
        if need <= budget_s:
            break
        kept.remove(costliest)
        dropped[costliest] = need
    return kept, dropped


def finalists_that_fit(
    costs: CostModel,
    finalists: Sequence[str],
    baselines: Sequence[str],
    epochs: int,
    left_s: float,
) -> list[int]:
    """Positions of the finalists (their optimizers, best first) the finalist stage keeps:
    while 2 seeds of them and the ``baselines`` cannot fit in ``left_s`` seconds, the
    costliest after the best is left out. The best always stays.

    >>> costs = CostModel(search={}, final={"adam": 0.1, "lbfgs": 5.0, "sgd": 0.1})
    >>> finalists_that_fit(costs, ["adam", "lbfgs", "sgd"], [], 5, 20.0)
    [0, 2]
    >>> finalists_that_fit(costs, ["lbfgs", "adam", "sgd"], [], 5, 20.0)
    [0]
    """
    kept = list(range(len(finalists)))
    while (
        len(kept) > 1
        and 2 * costs.seed_s([*(finalists[i] for i in kept), *baselines], epochs) > left_s
    ):
        kept.remove(max(kept[1:], key=lambda i: costs.final.get(finalists[i], 0.0)))
    return kept
