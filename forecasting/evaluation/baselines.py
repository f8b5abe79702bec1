"""The benchmarks every model must beat, as Forecasters (`forecasting.forecast_frame.Forecaster`):

* `SeasonalNaive` – the last published week of prices, repeated over the four-week horizon; all
  deciles equal the point forecast (a point forecast scored as a distribution).
* `SeasonalNaiveEmpirical` – the same point forecast with deciles from its own past errors: the
  seasonal-naive forecasts of the `window_weeks` previous weekly issues (same weekday and hour),
  scored on the prices published by `issued_at`, give the error deciles of each horizon week
  (hours 1–168, 169–336, …); the deciles are the point forecast plus those error deciles.
* `LevelShapeNaive` – the DeepAR pipeline's price anchor on its own (`forecasting.features.anchor`):
  the newest two days' level plus the 8-week median weekly shape; deciles equal the point. A much
  harder point reference than the seasonal naive: it shows what the network adds.

All see only rows published by `issued_at`, whatever history they are handed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import numpy as np
import pandas as pd

from forecasting.clock import WEEK_HOURS
from forecasting.errors import MissingData
from forecasting.features.anchor import SHAPE_WEEKS, price_anchor
from forecasting.features.covariates import pivot_zone
from forecasting.forecast_frame import forecast_hours, forecast_start, make_forecast_frame
from forecasting.publication import known_at
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOURS,
    PRICE,
    QUANTILE_LEVELS,
    SERIES_COL,
    VALUE,
    ZONE,
)

SEASONAL_NAIVE = "seasonal_naive"
SEASONAL_NAIVE_EMPIRICAL = "seasonal_naive_empirical"
LEVEL_SHAPE_NAIVE = "level_shape_naive"


def price_window(prices: pd.DataFrame, start: pd.Timestamp, hours: int) -> np.ndarray:
    """One zone's prices of the `hours` delivery hours before `start`, NaN where there is none."""
    index = pd.date_range(end=start - pd.Timedelta(hours=1), periods=hours, freq="h")
    return prices.set_index(DELIVERY_HOUR)[VALUE].reindex(index).to_numpy()


def interpolate_gaps(values: np.ndarray) -> np.ndarray:
    """Fill missing hours linearly from their neighbours (flat at the ends); all-missing stays NaN."""
    known = ~np.isnan(values)
    if known.all() or not known.any():
        return values
    hours = np.arange(len(values))
    return np.interp(hours, hours[known], values[known])


def seasonal_naive_path(last_week: np.ndarray, horizon: int = HORIZON_HOURS) -> np.ndarray:
    """The week before the forecast start, repeated over `horizon` hours (gaps interpolated)."""
    return np.resize(interpolate_gaps(last_week), horizon)


def past_errors(window: np.ndarray, issues: int, horizon: int = HORIZON_HOURS) -> np.ndarray:
    """(issues × horizon) errors, price − forecast, of the seasonal-naive forecasts issued 1…`issues`
    weeks before the end of `window` (the prices before today's forecast start). Hours not yet
    published, or missing, are NaN."""
    errors = np.full((issues, horizon), np.nan)
    end = len(window)
    for k in range(1, issues + 1):
        start = end - k * WEEK_HOURS
        outcome = window[start : start + horizon]
        path = seasonal_naive_path(window[start - WEEK_HOURS : start], horizon)
        errors[k - 1, : len(outcome)] = outcome - path[: len(outcome)]
    return errors


def error_deciles_by_week(errors: np.ndarray) -> np.ndarray:
    """(horizon weeks × 9) deciles of the known errors of each horizon week."""
    weeks = -(-errors.shape[1] // WEEK_HOURS)
    deciles = np.empty((weeks, len(QUANTILE_LEVELS)))
    for week in range(weeks):
        known = errors[:, week * WEEK_HOURS : (week + 1) * WEEK_HOURS]
        known = known[~np.isnan(known)]
        if known.size == 0:
            raise ValueError(f"no past seasonal-naive errors known for horizon week {week + 1}")
        deciles[week] = np.quantile(known, QUANTILE_LEVELS)
    return deciles


class SeasonalNaive:
    """Next four weeks = last published week, per zone; deciles equal the point forecast."""

    model_id = SEASONAL_NAIVE

    def __init__(self, timezones: Mapping[str, str]) -> None:
        self.timezones = dict(timezones)  # zone → wall clock of its forecast frame
        self.zones: list[str] = []

    def fit(self, history: pd.DataFrame) -> Self:
        """Nothing to learn: remembers the zones that have prices."""
        self.zones = sorted(history.loc[history[SERIES_COL] == PRICE, ZONE].unique())
        if not self.zones:
            raise MissingData(f"{self.model_id}: no day-ahead prices to fit on")
        return self

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> pd.DataFrame:
        if not self.zones:
            raise RuntimeError(f"{self.model_id}: predict called before fit")
        prices = known_at(history[history[SERIES_COL] == PRICE], issued_at)
        by_zone = dict(tuple(prices.groupby(ZONE)))
        empty = prices.iloc[:0]  # a fitted zone without prices fails in forecast_start, by name
        frames = [self._zone_forecast(by_zone.get(zone, empty), zone, issued_at) for zone in self.zones]
        return pd.concat(frames, ignore_index=True)

    def _zone_forecast(self, prices: pd.DataFrame, zone: str, issued_at: pd.Timestamp) -> pd.DataFrame:
        start = forecast_start(prices, zone, issued_at)
        window = price_window(prices, start, self._window_hours())
        path = self._path(prices, zone, issued_at, start, window)
        deciles = self._deciles(path, window)
        timezone = self.timezones[zone]
        return make_forecast_frame(
            zone, timezone, issued_at, forecast_hours(start), path, deciles, self.model_id
        )

    def _path(
        self, prices: pd.DataFrame, zone: str, issued_at: pd.Timestamp, start: pd.Timestamp, window: np.ndarray
    ) -> np.ndarray:
        """The point forecast over the horizon from `start`; `window` holds the hours before it."""
        path = seasonal_naive_path(window[-WEEK_HOURS:])
        if np.isnan(path).any():
            raise MissingData(f"{self.model_id}: no price of {zone} in the week before {start}")
        return path

    def _window_hours(self) -> int:
        return WEEK_HOURS

    @property
    def history_needed(self) -> pd.Timedelta:
        """How far before an issue `predict` reads prices: its window, behind a forecast start up to
        a few days after the issue, with a week's margin (the backtest cuts each origin's copy to it)."""
        return pd.Timedelta(hours=self._window_hours() + 2 * WEEK_HOURS)

    def _deciles(self, path: np.ndarray, window: np.ndarray) -> np.ndarray:
        return np.repeat(path[:, None], len(QUANTILE_LEVELS), axis=1)


class SeasonalNaiveEmpirical(SeasonalNaive):
    """Seasonal-naive point forecast with deciles from its errors over the last `window_weeks` issues.

    The default of 52 weeks spans every season once, so the spread is not that of one season only;
    the errors of the latest weeks enter only for the horizon hours already published.
    """

    model_id = SEASONAL_NAIVE_EMPIRICAL

    def __init__(self, timezones: Mapping[str, str], window_weeks: int = 52) -> None:
        if window_weeks < 1:
            raise ValueError(f"window_weeks must be at least 1, got {window_weeks}")
        super().__init__(timezones)
        self.window_weeks = window_weeks

    def _window_hours(self) -> int:
        # The oldest past issue needs its own previous week as input.
        return (self.window_weeks + 1) * WEEK_HOURS

    def _deciles(self, path: np.ndarray, window: np.ndarray) -> np.ndarray:
        deciles = error_deciles_by_week(past_errors(window, self.window_weeks, len(path)))
        week_of_hour = np.arange(len(path)) // WEEK_HOURS
        return path[:, None] + deciles[week_of_hour]


class LevelShapeNaive(SeasonalNaive):
    """Next four weeks = newest level + recent weekly shape (the model's anchor), per zone."""

    model_id = LEVEL_SHAPE_NAIVE

    @property
    def history_needed(self) -> pd.Timedelta:
        """The anchor's weekly shape reads SHAPE_WEEKS back from the newest price, with margin."""
        return pd.Timedelta(hours=(SHAPE_WEEKS + 3) * WEEK_HOURS)

    def _path(
        self, prices: pd.DataFrame, zone: str, issued_at: pd.Timestamp, start: pd.Timestamp, window: np.ndarray
    ) -> np.ndarray:
        issued_at = pd.Timestamp(issued_at).tz_convert("UTC")
        until = start + pd.Timedelta(hours=HORIZON_HOURS - 1)
        grid = pivot_zone(prices, zone, self.timezones[zone], (PRICE,), until=until)
        anchor = price_anchor(grid, issued_at.value, grid.index_of(issued_at.floor("h")))
        if anchor is None or grid.hours[anchor.start] != start:
            raise MissingData(f"{self.model_id}: no price of {zone} in the week before {start}")
        return anchor.baseline(grid.hour_of_week[anchor.start : anchor.start + HORIZON_HOURS])
