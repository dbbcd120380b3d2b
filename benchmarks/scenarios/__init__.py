"""The problems rule validation trains on: data, model and the profile overrides of each.

Each :class:`Scenario` stands for a kind of model users bring. Its profile is *measured*
by :func:`advisor.profile_model` (params, samples, convexity, gradient health, ...), as
``advisor tune`` does; ``overrides`` add only what a user states and no measurement can
see (sparse gradients, a trial budget). The data and models live in one module per
source: :mod:`.mlp` (the first scenarios), :mod:`.images` (CNN, noisy labels, L2
logistic), :mod:`.text` (word lists and fortunes from Debian packages), :mod:`.series`
(statsmodels' CO2 record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from advisor.data.dataset import Dataset

from .images import l2_logistic, noisy_digits, small_cnn
from .mlp import (
    VALIDATION,
    BagOfWordsClassifier,
    bag_of_words,
    bag_of_words_model,
    deep_plain_mlp,
    digits,
    fashion,
    fashion_subset,
    logistic_regression,
    mnist_5k,
    tiny_mnist,
)
from .series import co2_forecast, series_gru
from .text import (
    char_rnn,
    fortune_tokens,
    hashed_ngram_bag,
    text_transformer,
    word_characters,
    word_ngrams,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    data: Callable[[], Dataset]
    #: None: the seed MLP (trained by the population trainer); else a factory
    model: Callable[[Dataset], Callable[[], nn.Module]] | None = None
    #: the epochs trained; with ``converge`` the most, and the best configuration's
    #: validation curve is checked for convergence (validation_stats.converged)
    epochs: int = 5
    batch_size: int = 128
    overrides: dict[str, Any] = field(default_factory=dict)
    #: a tight budget: the truth is the best of this many learning-rate draws, not the grid's best
    lr_draws: int | None = None
    #: learning rates added to the grid (large batches want larger ones)
    extra_lrs: tuple[float, ...] = ()
    #: "classification", or "regression" (train_members' ``task=``)
    task: str = "classification"
    #: whether the truth wants the best configuration trained to convergence (False: the
    #: scenario is about a fixed short budget)
    converge: bool = True
    #: seeds per grid point (None: validation_grid.SEEDS): validation_stats.plan's answer for
    #: a 0.5 pp difference at the s_d of the saved grids' closest scenario (digits: 0.6 pp ->
    #: 14; fashion-mnist: 0.23 pp -> 4); 5 where no grid was close (re-plan after the run)
    seeds: int | None = None
    #: epochs of the full-batch optimizers (L-BFGS: up to 20 passes over the data each);
    #: None: ``epochs``. Caps their CPU on the large scenarios at about the others' work.
    full_batch_epochs: int | None = None
    #: train_members' ``max_population``: 1 trains each grid point alone, for a model whose
    #: steps are compute-bound (a population of them is slower than one at a time)
    population: int = 32
    #: stop each run once its own validation curve has converged (the rule the judge
    #: applies to the best configuration, validation_stats.converged); its test score is the
    #: stopped model's. Set on the grids (re-)run from 2026-11-30 on: in the saved grids of
    #: 10 to 100 epochs it would have cut 4 to 78 % of the epochs, the more the longer.
    stop_converged: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "seed-mlp-mnist-5k",
        "the seed MLP on mnist-5k (3,600 training digits)",
        mnist_5k,
        # 20 epochs did not converge (the best rose 0.23 pp in its last 5: validation_stats)
        epochs=40,
        seeds=16,
    ),
    Scenario(
        "seed-mlp-fashion",
        "the seed MLP on fashion-mnist (55,000 images)",
        fashion,
        epochs=15,
        seeds=5,
    ),
    Scenario(
        "logistic-digits",
        "logistic regression (convex) on scikit-learn's digits",
        digits,
        logistic_regression,
        # 20 epochs did not converge (the best rose 0.27 pp in its last 5); the L2
        # variant converged in 100
        epochs=100,
        seeds=14,
    ),
    Scenario(
        "tiny-data-mlp",
        "the seed MLP on 500 digits of mnist-5k",
        tiny_mnist,
        epochs=40,
        seeds=13,
    ),
    Scenario(
        "sparse-bag-of-words",
        "an embedding-bag classifier on synthetic bag-of-words documents (scikit-learn's make_multilabel_classification, not real text)",
        bag_of_words,
        bag_of_words_model,
        epochs=30,
        seeds=5,
        overrides={"sparse_gradients": True, "domain": "language"},
    ),
    Scenario(
        "deep-exploding",
        "a 16-layer plain ReLU MLP with an amplifying init on mnist-5k (exploding gradients, measured)",
        mnist_5k,
        deep_plain_mlp(),
        # 20 epochs did not converge (10 seeds: the best rose 0.85 pp in its last 5)
        epochs=40,
        seeds=10,
        stop_converged=True,
    ),
    Scenario(
        "large-batch-4096",
        "the seed MLP on fashion-mnist with batch 4096",
        fashion,
        batch_size=4096,
        epochs=5,
        extra_lrs=(3.0, 10.0),
        converge=False,
        seeds=12,
    ),
    Scenario(
        "tight-budget",
        "the seed MLP on fashion-mnist when only 3 trials fit the budget",
        fashion,
        overrides={"trials": 3},
        lr_draws=3,
        converge=False,
        seeds=5,
    ),
    # ---- issue 15: beyond MLPs, real data only
    Scenario(
        "cnn-fashion",
        "a two-layer CNN (8 and 16 channels) on 20,000 fashion-mnist images (stratified; "
        "the 10,000 test images whole)",
        fashion_subset,
        small_cnn,
        # 10 epochs did not converge (5 seeds: the best peaked at the ninth, 0.17 pp above
        # its first 5 epochs' best), nor did 15 (the best rose 0.19 pp in its last 5)
        epochs=30,
        seeds=5,
        full_batch_epochs=2,
        # one run at a time, as `advisor tune` trains a model with convolutions on a CPU
        # (train.user_population): on the 20,000 images, one thread, a population of 8 took
        # 9.9-12.7 s per run-epoch, alone 7.5 s (three processes on two cores)
        population=1,
        stop_converged=True,
    ),
    Scenario(
        "gru-language-words",
        "a character GRU telling the language of a word (7 Debian word lists, 70,000 words)",
        word_characters,
        char_rnn("gru"),
        # 12 epochs did not converge (5 seeds: the best rose 1.5 pp in its last 5); 5 seeds
        # detected 0.59 pp, the planner asks 7
        epochs=40,
        batch_size=256,
        seeds=7,
        full_batch_epochs=2,
        overrides={"domain": "language"},
        stop_converged=True,
    ),
    Scenario(
        "rnn-exploding-words",
        "a tanh Elman RNN with an amplifying recurrent init (orthogonal x 8) on the language "
        "of words: exploding gradients, measured",
        word_characters,
        char_rnn("tanh", recurrent_gain=8.0),
        # 12 epochs did not converge (the best rose 2.6 pp in its last 5)
        epochs=40,
        batch_size=256,
        seeds=5,
        full_batch_epochs=2,
        overrides={"domain": "language"},
        stop_converged=True,
    ),
    Scenario(
        "transformer-fortunes",
        "a 2-layer pre-norm transformer encoder (d 64, 4 heads) telling a fortune's topic "
        "(Debian's fortunes, 10 files, about 8,500 texts)",
        fortune_tokens,
        text_transformer,
        epochs=15,
        seeds=5,
        full_batch_epochs=2,
        # 2.4 GFLOP per step (step_flops): a population of 8 took 8.6 s per run-epoch, alone 6.0 s
        population=1,
        overrides={"domain": "language"},
    ),
    Scenario(
        "sparse-hashed-ngrams",
        "fastText-style: a 65,537-row table of hashed character n-grams, averaged, on the "
        "language of 70,000 words (sparse gradients)",
        word_ngrams,
        hashed_ngram_bag,
        epochs=15,
        batch_size=256,
        seeds=5,
        full_batch_epochs=2,
        overrides={"sparse_gradients": True, "domain": "language"},
        stop_converged=True,
    ),
    Scenario(
        "logistic-l2-digits",
        "logistic regression + L2 penalty 1e-3 (strongly convex) on scikit-learn's digits",
        digits,
        l2_logistic,
        epochs=100,
        seeds=14,
    ),
    Scenario(
        "noisy-digits",
        "the seed MLP on scikit-learn's digits with 30 % of training labels flipped",
        noisy_digits,
        # 40 epochs did not converge (the best rose 0.13 pp in its last 5)
        epochs=80,
        batch_size=64,
        seeds=16,
    ),
    Scenario(
        "regression-co2",
        "a GRU forecasting next week's CO2 change at Mauna Loa (statsmodels' co2, 2,231 "
        "windows of 52 weeks); a regression",
        co2_forecast,
        series_gru,
        # 40 epochs did not converge (the best's validation MSE fell 0.009 in its last 5)
        epochs=80,
        batch_size=64,
        seeds=5,
        task="regression",
        stop_converged=True,
    ),
)

#: Held out from rule changes, chosen on 2026-11-30 before any of their results existed:
#: no rule may be changed because of these; validate_rules reports the top-3 criterion on
#: them apart (the generalization check of issue 15).
HELD_OUT: tuple[str, ...] = (
    "cnn-fashion",
    "gru-language-words",
    "transformer-fortunes",
    "noisy-digits",
)

__all__ = [
    "HELD_OUT",
    "SCENARIOS",
    "VALIDATION",
    "BagOfWordsClassifier",
    "Scenario",
    "bag_of_words",
    "bag_of_words_model",
    "char_rnn",
    "co2_forecast",
    "deep_plain_mlp",
    "digits",
    "fashion",
    "fashion_subset",
    "fortune_tokens",
    "hashed_ngram_bag",
    "l2_logistic",
    "logistic_regression",
    "mnist_5k",
    "noisy_digits",
    "series_gru",
    "small_cnn",
    "text_transformer",
    "tiny_mnist",
    "word_characters",
    "word_ngrams",
]
