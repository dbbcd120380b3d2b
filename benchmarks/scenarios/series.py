"""A real time series for regression: the Mauna Loa CO2 record shipped inside statsmodels.

``statsmodels.datasets.co2``: weekly atmospheric CO2 (ppm) at Mauna Loa, March 1958 to
December 2001 (2,284 weeks, a few missing and filled here by interpolation); public domain
(NOAA / Scripps), bundled in the statsmodels wheel, read offline. Task: from the last 52
weekly *changes*, predict the next week's change (standardized), a one-step forecast.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from advisor.data.dataset import Dataset

WINDOW = 52


def co2_windows() -> tuple[np.ndarray, np.ndarray]:
    """``x`` float32 ``[N, 52]`` (standardized weekly changes), ``y`` float32 ``[N]`` (the next)."""
    from statsmodels.datasets import co2

    series = co2.load_pandas().data["co2"].interpolate().bfill().to_numpy(np.float64)
    change = np.diff(series)
    change = (change - change.mean()) / change.std()
    x = np.stack([change[i : i + WINDOW] for i in range(len(change) - WINDOW)])
    return x.astype(np.float32), change[WINDOW:].astype(np.float32)


def co2_forecast() -> Dataset:
    """The windows in time order: the first 70 % train, the next 10 % validation, the
    last 20 % test (a forecast is judged on the future). Targets are float: it trains
    with ``task=Task("regression")``."""
    x, y = co2_windows()
    n = len(y)
    a, b = int(0.7 * n), int(0.8 * n)
    t = torch.from_numpy
    return Dataset(
        name="co2-forecast",
        x_train=t(x[:a]),
        y_train=t(y[:a]),
        x_val=t(x[a:b]),
        y_val=t(y[a:b]),
        x_test=t(x[b:]),
        y_test=t(y[b:]),
        n_classes=1,
        source="statsmodels.datasets.co2",
    )


class SeriesGRU(nn.Module):
    """A GRU over the window (one value per step), its last state to one output ``[N, 1]``."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x.unsqueeze(-1))  # [N, 52, hidden]
        return self.out(states.select(1, -1))


def series_gru(data: Dataset) -> Callable[[], nn.Module]:
    return lambda: SeriesGRU()
