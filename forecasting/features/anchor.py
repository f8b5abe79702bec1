"""The price anchor of one forecast: level, scale and weekly shape of the price known at issue time.

The model forecasts the *anchored* price z = (price − baseline) / scale instead of the price itself,
where baseline = level + weekly shape (per local hour of the week). So every window – 2019 at
40 EUR/MWh, 2020 near zero, the 2022 crisis at 200 – looks alike to the network, its samples stay
around the level instead of drifting over 672 autoregressive steps, and z = 0 is already a sound
forecast: the network only learns what the covariates and the calendar add to it.

* shape: per hour of the week, the median over the last 8 weeks of each week's deviation from its
  own mean (robust to a single windy or spiky week);
* level: the mean of the newest two days of published prices minus their shape (prices are close
  to a random walk at this horizon, so the newest level is the best guess; a whole week's level
  lags behind).

Chosen on price history alone, NO1–NO5 weekly Monday issues, MAE relative to the seasonal naive
(repeat the last week): last week's median + 2-week mean shape 0.96 / 0.97 (2019 / 2022-07…2023-06);
this baseline 0.88 / 0.88. The map is affine per hour (negative prices pass through unharmed) and
back-transforms samples exactly. It uses only prices published by the issue instant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecasting.clock import WEEK_HOURS
from forecasting.features.covariates import ZoneGrid, newest_known_index
from forecasting.schema import PRICE

LEVEL_HOURS = 48  # newest published hours that set the level
SCALE_HOURS = 2 * WEEK_HOURS  # spread of the last two weeks around the baseline
SHAPE_WEEKS = 8
# scale = floor + share × |level| + mean absolute deviation: never ~0 in a flat low-price week, and
# proportional to the level where relative moves dominate (the crisis).
SCALE_FLOOR = 1.0  # EUR/MWh
SCALE_LEVEL_SHARE = 0.1
PRICE_PUBLICATION_LEAD = 72  # day-ahead prices are never published more than 3 days ahead


@dataclass(frozen=True)
class Anchor:
    start: int  # grid index of the first unpublished price hour (the forecast's first hour)
    level: float
    scale: float
    shape: np.ndarray  # 168 EUR/MWh deviations from the level, per local hour of the week

    def baseline(self, hour_of_week: np.ndarray) -> np.ndarray:
        return self.level + self.shape[hour_of_week]

    def to_anchored(self, price: np.ndarray, hour_of_week: np.ndarray) -> np.ndarray:
        return (price - self.baseline(hour_of_week)) / self.scale

    def to_price(self, anchored: np.ndarray, hour_of_week: np.ndarray) -> np.ndarray:
        return self.baseline(hour_of_week) + self.scale * anchored


def weekly_shape(values: np.ndarray, hour_of_week: np.ndarray) -> np.ndarray:
    """Per hour of the week, the median of each whole week's deviation from its own mean (the
    newest weeks of `values`); 0 where an hour was never seen."""
    weeks = len(values) // WEEK_HOURS
    if weeks == 0:
        return np.zeros(WEEK_HOURS)
    blocks = values[-weeks * WEEK_HOURS :].reshape(weeks, WEEK_HOURS)
    counts = (~np.isnan(blocks)).sum(axis=1, keepdims=True)
    means = np.nansum(blocks, axis=1, keepdims=True) / np.maximum(counts, 1)
    deviations = np.full((weeks, WEEK_HOURS), np.nan)
    rows = np.repeat(np.arange(weeks), WEEK_HOURS)
    deviations[rows, hour_of_week[-weeks * WEEK_HOURS :]] = (blocks - means).ravel()
    seen = ~np.isnan(deviations).all(axis=0)
    shape = np.zeros(WEEK_HOURS)
    shape[seen] = np.nanmedian(deviations[:, seen], axis=0)
    return shape


def price_anchor(grid: ZoneGrid, issued_at_ns: int, issue_index: int) -> Anchor | None:
    """Anchor of a forecast issued at `issued_at_ns` (grid hour `issue_index`); None without a
    price published in the last week before it."""
    before = min(len(grid.hours), issue_index + PRICE_PUBLICATION_LEAD)
    newest = newest_known_index(grid, PRICE, issued_at_ns, before)
    if newest is None or newest < issue_index - WEEK_HOURS:
        return None
    recent = slice(max(0, newest + 1 - SHAPE_WEEKS * WEEK_HOURS), newest + 1)
    known = np.where(grid.published[PRICE][recent] <= issued_at_ns, grid.values[PRICE][recent], np.nan)
    if np.isnan(known[-WEEK_HOURS:]).all():
        return None
    keys = grid.hour_of_week[recent]
    shape = weekly_shape(known, keys)
    deseasonalised = known - shape[keys]
    level = float(np.mean(deseasonalised[~np.isnan(deseasonalised)][-LEVEL_HOURS:]))
    spread = np.abs(deseasonalised[-SCALE_HOURS:] - level)
    scale = SCALE_FLOOR + SCALE_LEVEL_SHARE * abs(level) + float(np.nanmean(spread))
    return Anchor(newest + 1, level, scale, shape)
