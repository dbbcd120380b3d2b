"""What advisor stores on its Optuna studies: one name per attribute, one type per value.

Every reader and writer of a study or trial attribute goes through this module, so that a
key is spelled once and its defaults are stated once.

The search study ``S``:

- study attribute :data:`SETTINGS`: :class:`StudySettings`, written last when the study is
  created (its presence means the study is ready for other workers);
- study attribute ``advisor_session:<worker>``: ``[start, end]`` wall-clock seconds of each
  worker's session (:func:`session_key`, :func:`session_spans`);
- study attribute ``advisor_spend:<worker>``: :class:`Spend`, where that worker's time went;
- trial attributes :data:`WORKER` and :data:`HEARTBEAT` (who runs it, alive when),
  :data:`STATUS` and :data:`REASON` (``diverged``, ``pruned`` or ``interrupted``, and why),
  :data:`RETRY_OF` (the trial an interrupted one is retried for).

The finalist study ``S.final`` (:data:`FINAL_SUFFIX`):

- study attribute :data:`FINALISTS`: a list of :class:`FinalistSpec` (empty: nothing to run);
- study attribute :data:`ELAPSED`: wall time of the whole run, set by the first worker done;
- study attribute :data:`FINAL_PLAN`: ``{"seeds": n, "reason": ...}`` when the stage runs
  fewer seeds than asked, to keep the budget;
- study attribute ``advisor_spend:<worker>``: :class:`Spend` (``finals_s``);
- trial attributes :data:`TASK` (``setup``: the trial that chooses the finalists) or
  :data:`SEED` (the seed that trial runs) and :data:`RESULTS` (:class:`SeedRun`: every
  finalist's curve and test accuracy on that seed); :data:`WORKER`, :data:`HEARTBEAT`, and
  :data:`STATUS` ``duplicate`` for a second copy of a task, failed without running.

>>> s = StudySettings(dataset="mnist-5k", epochs=5, batch_size=128)
>>> StudySettings.from_dict(s.to_dict()) == s
True
>>> FinalistSpec.from_dict(BASELINE.to_dict()).label
'baseline'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from advisor.knowledge.optimizers import OPTIMIZERS

if TYPE_CHECKING:
    import optuna

#: Suffix of the study that holds the multi-seed finalist stage.
FINAL_SUFFIX = ".final"

# study attributes
SETTINGS = "advisor_settings"
FINALISTS = "advisor_finalists"
ELAPSED = "advisor_elapsed_s"
SESSION_PREFIX = "advisor_session:"
SPEND_PREFIX = "advisor_spend:"
FINAL_PLAN = "advisor_final_plan"

# trial attributes
WORKER = "advisor_worker"
HEARTBEAT = "advisor_heartbeat"
STATUS = "advisor_status"
REASON = "advisor_reason"
RETRY_OF = "advisor_retry_of"
SEED = "advisor_seed"
TASK = "advisor_task"
RESULTS = "advisor_results"
#: Trial attributes copied to the retry of an interrupted trial (what identifies its work).
RETRY_ATTRS = (SEED, TASK)

# values of TASK
SETUP_TASK = "setup"

# values of STATUS
DIVERGED = "diverged"
PRUNED = "pruned"
INTERRUPTED = "interrupted"
DUPLICATE = "duplicate"

#: The label of the default configuration run beside the finalists.
BASELINE_LABEL = "baseline"


@dataclass(frozen=True)
class StudySettings:
    """How a search study was set up: what ``advisor report`` and a resuming worker read.

    ``to_dict()`` is the ``settings`` object of ``result.json``; ``from_dict`` fills what an
    older study did not store with the defaults below.
    """

    dataset: str = ""
    model: str = ""
    epochs: int = 5
    batch_size: int = 128
    population: int = 1
    finalists: int = 3
    seeds: int = 5
    seed: int = 0
    device: str = "cpu"
    n_classes: int = 10
    budget_s: float = 0.0
    trials: int | None = None
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    space: Mapping[str, Any] = field(default_factory=dict)
    n_startup: int = 1
    expected_trials: int = 1
    member_epoch_s: float = 0.0
    final_member_epoch_s: float = 0.0
    sampler: str = ""
    pruner: str = ""
    candidates: tuple[Mapping[str, Any], ...] = ()
    chosen: tuple[str, ...] = ()
    probe_lr: bool = False
    advice: tuple[Mapping[str, Any], ...] = ()
    profile: Mapping[str, Any] = field(default_factory=dict)
    #: measured seconds per member-epoch of each optimizer: in the search, in the finals
    costs: Mapping[str, float] = field(default_factory=dict)
    final_costs: Mapping[str, float] = field(default_factory=dict)
    #: what the report must say about how the run was set up (e.g. a default budget too small)
    notes: tuple[str, ...] = ()
    #: what was learned and how it was judged (:meth:`advisor.data.task.Task.to_dict`, or
    #: ``kind = "objective"``); empty for studies from before: classification by accuracy
    task: Mapping[str, str] = field(default_factory=dict)

    @property
    def chance(self) -> float | None:
        """What a diverged member scores: chance level (``1 / n_classes``) when the metric is
        accuracy; None for any other metric (a loss, an objective's value), where no value
        is known to be as bad as garbage: the worst value seen beside it stands in.

        >>> StudySettings().chance, StudySettings(task={"metric": "neg_mse"}).chance
        (0.1, None)
        """
        return 1.0 / self.n_classes if self.task.get("metric", "accuracy") == "accuracy" else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("candidates", "chosen", "advice", "notes"):
            d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudySettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for name in ("candidates", "chosen", "advice", "notes"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


@dataclass(frozen=True)
class FinalistSpec:
    """One configuration of the finalist stage: a search trial's, or the baseline."""

    label: str
    optimizer: str
    hyperparameters: Mapping[str, float]
    schedule: str
    trial: int | None = None
    search_val_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hyperparameters": dict(self.hyperparameters)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinalistSpec:
        return cls(
            label=str(d["label"]),
            optimizer=str(d["optimizer"]),
            hyperparameters={k: float(v) for k, v in d["hyperparameters"].items()},
            schedule=str(d["schedule"]),
            trial=d.get("trial"),
            search_val_accuracy=d.get("search_val_accuracy"),
        )


#: The default the recommendation must beat: ``torch.optim.Adam(params, lr=1e-3)``, constant.
BASELINE = FinalistSpec(BASELINE_LABEL, "adam", {"lr": 1e-3}, "constant")
#: Labels of the second baselines: each learning-rate-free method at its defaults.
LR_FREE_PREFIX = "defaults:"


def lr_free_baselines() -> list[FinalistSpec]:
    """Every learning-rate-free optimizer at its defaults (Prodigy: ``lr=1``, nothing tuned).

    >>> [s.label for s in lr_free_baselines()]
    ['defaults:prodigy']
    """
    return [
        FinalistSpec(
            LR_FREE_PREFIX + name, name, {}, info.schedules[0] if info.schedules else "constant"
        )
        for name, info in OPTIMIZERS.items()
        if info.lr_free
    ]


def is_lr_free_baseline(label: str) -> bool:
    return label.startswith(LR_FREE_PREFIX)


@dataclass(frozen=True)
class MemberRun:
    """One finalist trained on one seed."""

    status: str
    val_curve: tuple[float, ...]
    test_accuracy: float | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "val_curve": list(self.val_curve)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MemberRun:
        acc = d.get("test_accuracy")
        return cls(
            status=str(d["status"]),
            val_curve=tuple(float(v) for v in d["val_curve"]),
            test_accuracy=None if acc is None else float(acc),
            reason=d.get("reason"),
        )


@dataclass(frozen=True)
class SeedRun:
    """Every finalist of the stage trained on one seed (one trial of ``S.final``)."""

    seed: int
    members: Mapping[str, MemberRun]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "members": {k: m.to_dict() for k, m in self.members.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeedRun:
        members = {str(k): MemberRun.from_dict(m) for k, m in d["members"].items()}
        return cls(seed=int(d["seed"]), members=members)


@dataclass(frozen=True)
class Spend:
    """Where one worker's time went, in seconds.

    ``search_s`` is the search loop's wall time, of which ``optuna_s`` in Optuna (ask,
    suggest, report, prune, tell and their storage writes) and ``train_s`` in training;
    ``by_optimizer[opt]`` is ``{"trials": n, "seconds": s}`` of training time; ``finals_s``
    the finalist stage's wall time; ``expected_trials`` the trial count the whole search
    would reach at the pace of this worker's first batch (Optuna's cost included).
    """

    search_s: float = 0.0
    optuna_s: float = 0.0
    train_s: float = 0.0
    batches: int = 0
    by_optimizer: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    finals_s: float = 0.0
    expected_trials: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["by_optimizer"] = {k: dict(v) for k, v in self.by_optimizer.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Spend:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ---------------------------------------------------------------- readers and writers


def write_spend(study: optuna.Study, worker: str, spend: Spend) -> None:
    study.set_user_attr(SPEND_PREFIX + worker, spend.to_dict())


def read_spends(study: optuna.Study) -> list[Spend]:
    """Every worker's :class:`Spend` on ``study``."""
    return [Spend.from_dict(v) for k, v in study.user_attrs.items() if k.startswith(SPEND_PREFIX)]


def write_settings(study: optuna.Study, settings: StudySettings) -> None:
    study.set_user_attr(SETTINGS, settings.to_dict())


def read_settings(study: optuna.Study) -> StudySettings | None:
    """The study's settings, or ``None`` while it is not ready (or not advisor's)."""
    stored = study.user_attrs.get(SETTINGS)
    return None if stored is None else StudySettings.from_dict(stored)


def write_finalists(final: optuna.Study, specs: list[FinalistSpec]) -> None:
    final.set_user_attr(FINALISTS, [s.to_dict() for s in specs])


def read_finalists(final: optuna.Study) -> list[FinalistSpec] | None:
    """The finalists of the stage; ``None`` while the leading worker has not chosen them."""
    stored = final.user_attrs.get(FINALISTS)
    return None if stored is None else [FinalistSpec.from_dict(s) for s in stored]


def read_seed_run(trial: optuna.trial.FrozenTrial) -> SeedRun | None:
    stored = trial.user_attrs.get(RESULTS)
    return None if stored is None else SeedRun.from_dict(stored)


def read_elapsed(search: optuna.Study, final: optuna.Study) -> float:
    """Wall time of the whole run (0 when no worker has finished it)."""
    return float(final.user_attrs.get(ELAPSED, search.user_attrs.get(ELAPSED, 0.0)))


def session_key(worker: str) -> str:
    return SESSION_PREFIX + worker


def session_spans(study: optuna.Study) -> list[tuple[float, float]]:
    """Every worker session's ``(start, end)`` on the study, sorted."""
    return sorted(
        (float(v[0]), float(v[1]))
        for k, v in study.user_attrs.items()
        if k.startswith(SESSION_PREFIX)
    )


def union_length(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of sorted intervals.

    >>> union_length([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)])
    4.0
    """
    total, end = 0.0, -math.inf
    for a, b in spans:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def trial_status(trial: optuna.trial.FrozenTrial) -> str | None:
    """``diverged``, ``pruned`` or ``interrupted`` as advisor recorded it, else ``None``."""
    status = trial.user_attrs.get(STATUS)
    return None if status is None else str(status)
