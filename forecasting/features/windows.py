"""Forecast windows: everything the model sees for one zone and one issue instant.

A window spans `past` hours before the forecast start and the HORIZON_HOURS after it. It holds

* the anchored price target (`anchor.Anchor`: price minus the level + weekly-shape baseline, over
  scale) – over the past part only, unless built for training,
* the *covariate features* (extended covariates + calendar), which go through scaler and PCA,
* the *anchor features*, already in anchored units, which bypass the PCA so the level/shape signal
  cannot be rotated away: the baseline's weekly shape and the position in the horizon.

Training windows are built exactly like forecast windows, at past issue instants, from what was
published by then – the model learns on the same (extended) covariates it will be given.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from forecasting.features.anchor import Anchor, price_anchor
from forecasting.features.calendar import CALENDAR_FEATURES, calendar_features
from forecasting.features.covariates import (
    EXTENSION_METHODS,
    WEEK_PROFILE,
    Extended,
    ZoneGrid,
    extend_covariate,
    input_status,
)
from forecasting.schema import HORIZON_HOURS, PRICE

PRICE_SHAPE = "price_shape"
HORIZON_POSITION = "horizon_position"
ANCHOR_FEATURES: tuple[str, ...] = (PRICE_SHAPE, HORIZON_POSITION)


def covariate_feature_names(covariates: tuple[str, ...]) -> tuple[str, ...]:
    """Columns of the covariate feature matrix, in order (the scaler/PCA input)."""
    return (*covariates, *CALENDAR_FEATURES)


@dataclass(frozen=True)
class Window:
    zone: str
    anchor: Anchor
    first_hour: pd.Timestamp  # UTC hour of the window's first row
    target: np.ndarray  # anchored price, past part (+ horizon for training windows); NaN = gap
    covariate_features: np.ndarray  # hours × covariate_feature_names
    anchor_features: np.ndarray  # hours × ANCHOR_FEATURES
    extended: dict[str, Extended]
    grid: ZoneGrid

    @property
    def forecast_hours(self) -> pd.DatetimeIndex:
        start = self.grid.hours[self.anchor.start]
        return pd.date_range(start, periods=HORIZON_HOURS, freq="h", tz="UTC")

    def horizon_prices(self, anchored: np.ndarray) -> np.ndarray:
        """Anchored values over the forecast hours (last axis) back in EUR/MWh."""
        keys = self.grid.hour_of_week[self.anchor.start : self.anchor.start + HORIZON_HOURS]
        return self.anchor.to_price(anchored, keys)

    def input_status(self) -> pd.DataFrame:
        return input_status(self.grid, self.extended)


class WindowMaker:
    """Builds windows of one zone's grid; calendar features are computed once per grid."""

    def __init__(self, grid: ZoneGrid, covariates: tuple[str, ...], past: int) -> None:
        self.grid = grid
        self.covariates = covariates
        self.past = past

    @cached_property
    def _calendar(self) -> np.ndarray:
        return calendar_features(self.grid.hours, self.grid.timezone).to_numpy(dtype="float64")

    def window(self, issued_at: pd.Timestamp, with_future: bool = False) -> Window | None:
        """The window of a forecast issued at `issued_at`; None where the grid cannot hold it (too
        little history before, or – for training windows – not the whole horizon after)."""
        issued_at = pd.Timestamp(issued_at).tz_convert("UTC")
        issue_index = self.grid.index_of(issued_at.floor("h"))
        if not 0 <= issue_index < len(self.grid.hours):
            return None
        anchor = price_anchor(self.grid, issued_at.value, issue_index)
        if anchor is None:
            return None
        lo, hi = anchor.start - self.past, anchor.start + HORIZON_HOURS
        if lo < 0 or hi > len(self.grid.hours):
            return None
        target_end = hi if with_future else anchor.start
        price = self.grid.values[PRICE][lo:target_end]
        if not with_future:  # a forecast sees only what was published (training targets are truth)
            price = np.where(self.grid.published[PRICE][lo:target_end] <= issued_at.value, price, np.nan)
        extended = {
            name: extend_covariate(
                self.grid, name, issued_at.value, lo, hi, EXTENSION_METHODS.get(name, WEEK_PROFILE)
            )
            for name in self.covariates
        }
        covariate_features = np.column_stack([*(e.values for e in extended.values()), self._calendar[lo:hi]])
        position = np.clip(np.arange(lo, hi) - anchor.start + 1, 0, None) / HORIZON_HOURS
        keys = self.grid.hour_of_week[lo:hi]
        anchor_features = np.column_stack([anchor.shape[keys] / anchor.scale, position])
        return Window(
            zone=self.grid.zone,
            anchor=anchor,
            first_hour=self.grid.hours[lo],
            target=anchor.to_anchored(price, keys[: target_end - lo]),
            covariate_features=covariate_features,
            anchor_features=anchor_features,
            extended=extended,
            grid=self.grid,
        )
