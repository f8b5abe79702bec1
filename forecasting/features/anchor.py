"""The price anchor of one forecast: level, scale and weekly shape of the price known at issue time.

The model forecasts the *anchored* price z = (price − level) / scale instead of the price itself, so
every window – 2019 at 40 EUR/MWh, 2020 near zero, the 2022 crisis at 200 – looks alike to the
network and its samples stay around the level instead of drifting over 672 autoregressive steps.
The map is affine (negative prices pass through unharmed) and back-transforms samples exactly.

The anchor uses only prices published by the issue instant, so it is known over the whole horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecasting.features.covariates import WEEK, ZoneGrid, newest_known_index, week_profile
from forecasting.schema import PRICE

LEVEL_HOURS = WEEK  # median of the last week: the level the horizon starts from
SCALE_HOURS = 2 * WEEK  # spread of the last two weeks
PROFILE_HOURS = 2 * WEEK  # hour-of-week shape of the last two weeks
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
    profile: np.ndarray  # 168 anchored hour-of-week means of the recent prices

    def to_anchored(self, price: np.ndarray) -> np.ndarray:
        return (price - self.level) / self.scale

    def to_price(self, anchored: np.ndarray) -> np.ndarray:
        return self.level + self.scale * anchored


def price_anchor(grid: ZoneGrid, issued_at_ns: int, issue_index: int) -> Anchor | None:
    """Anchor of a forecast issued at `issued_at_ns` (grid hour `issue_index`); None without a
    price published in the last week before it."""
    before = min(len(grid.hours), issue_index + PRICE_PUBLICATION_LEAD)
    newest = newest_known_index(grid, PRICE, issued_at_ns, before)
    if newest is None or newest < issue_index - WEEK:
        return None
    recent = slice(max(0, newest + 1 - max(SCALE_HOURS, PROFILE_HOURS, LEVEL_HOURS)), newest + 1)
    known = np.where(grid.published[PRICE][recent] <= issued_at_ns, grid.values[PRICE][recent], np.nan)
    if np.isnan(known[-LEVEL_HOURS:]).all():
        return None
    level = float(np.nanmedian(known[-LEVEL_HOURS:]))
    scale = SCALE_FLOOR + SCALE_LEVEL_SHARE * abs(level)
    scale += float(np.nanmean(np.abs(known[-SCALE_HOURS:] - level)))
    keys = grid.hour_of_week[recent][-PROFILE_HOURS:]
    profile = (week_profile(known[-PROFILE_HOURS:], keys) - level) / scale
    return Anchor(newest + 1, level, scale, profile)
