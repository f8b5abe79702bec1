"""Calendar products in a backtest: the two product baselines and the product scores.

Baselines, on the same issues and product rows as the model:

* `no_change` — what a desk without a model quotes: each product's unsettled hours at the last 7
  days' average (base, or peak hours for peak) before the forecast start, its settled hours at their
  price; quantiles from the empirical distribution of the same rule's errors on the same product
  moved back 1 … 52 weeks (168 h each: k-week-ahead errors of the previous 52 weekly issues, those
  settled by the issue). Moving back 168 UTC hours keeps weekday and hour, except that a move across a
  DST change shifts the period by one hour.
* `mean_of_hourly_deciles` — what the old weekly table printed: the period mean of the model's
  hourly mean and deciles (`forecasting.products.hourly_decile_products`); not a quantile of the
  settlement, so its band is too wide.

Scores per model × kind × load × horizon week (and over all horizon weeks): CRPS of the settlement
from the deciles (as the hourly CRPS, `metrics.crps_from_quantiles`), MAE of the mean, 10–90
coverage and width.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from forecasting.clock import WEEK_HOURS
from forecasting.config import PeakHours
from forecasting.evaluation.metrics import (
    ALL,
    MODEL,
    crps_from_quantiles,
    interval_coverage,
    interval_width,
    mae,
)
from forecasting.forecast_frame import ForecastRecord
from forecasting.products import (
    DELIVERY_END,
    DELIVERY_START,
    HORIZON_WEEK,
    KIND,
    LOAD,
    PEAK,
    SETTLEMENT,
    STAT_COLUMNS,
    hourly_decile_products,
)
from forecasting.schema import DELIVERY_HOUR, MEAN, QUANTILE_COLUMNS, QUANTILE_LEVELS, VALUE, ZONE

NO_CHANGE = "no_change"
HOURLY_DECILES = "mean_of_hourly_deciles"
PRODUCT_BASELINES = (NO_CHANGE, HOURLY_DECILES)
ISSUES_BACK = 52
MIN_ERRORS = 10  # fewer past errors give no decile worth scoring
LEVEL_HOURS = 7 * 24
PRODUCT_METRICS = ["products", "crps", "mae", "coverage_10_90", "width_10_90"]


def product_baselines(
    record: ForecastRecord, known: pd.DataFrame, timezones: Mapping[str, str], peak: PeakHours
) -> dict[str, pd.DataFrame]:
    """Both baselines on the product rows of the model's `record`, from `known` (the price rows
    published by the issue)."""
    table = record.products.table
    return {
        NO_CHANGE: no_change_products(table, known, timezones, peak),
        HOURLY_DECILES: hourly_decile_products(record.frame, known, table, timezones, peak),
    }


def no_change_products(
    table: pd.DataFrame, known: pd.DataFrame, timezones: Mapping[str, str], peak: PeakHours
) -> pd.DataFrame:
    """The no-change baseline of every product row in `table` (one issue); see the module docstring."""
    scored = table.copy()
    scored[STAT_COLUMNS] = np.nan
    for zone, rows in table.groupby(ZONE, sort=False):
        grid = _ZoneGrid(known[known[ZONE] == zone], timezones[zone], peak, rows)
        for index, row in rows.iterrows():
            scored.loc[index, STAT_COLUMNS] = grid.no_change(row)
    return scored


class _ZoneGrid:
    """One zone's published prices on a regular UTC hour grid ending at the forecast start, with
    each hour's local date and peak flag (to find a product's hours and the level window)."""

    def __init__(self, prices: pd.DataFrame, timezone: str, peak: PeakHours, rows: pd.DataFrame) -> None:
        series = prices.set_index(DELIVERY_HOUR)[VALUE].sort_index()
        self.start = series.index.max() + pd.Timedelta(hours=1)  # the forecast start
        last_day = pd.Timestamp(max(rows[DELIVERY_END])) + pd.Timedelta(days=2)
        first = self.start - pd.Timedelta(hours=(ISSUES_BACK + 6) * WEEK_HOURS)
        hours = pd.date_range(first, last_day.tz_localize("UTC"), freq="h")
        self.origin = int(hours.get_loc(self.start))
        self.price = series.reindex(hours).to_numpy(dtype="float64")
        self.price[self.origin :] = np.nan  # unpublished at the issue
        local = hours.tz_convert(timezone)
        self.day = local.tz_localize(None).normalize().to_numpy()
        self.peak = np.isin(local.weekday, peak.weekdays) & (local.hour >= peak.start_hour) & (local.hour < peak.end_hour)

    def no_change(self, row: pd.Series) -> np.ndarray:
        """Mean and deciles of the no-change rule for one product row (NaN where too little history)."""
        mask = (self.day >= np.datetime64(row[DELIVERY_START])) & (self.day <= np.datetime64(row[DELIVERY_END]))
        if row[LOAD] == PEAK:
            mask &= self.peak
        hours = np.flatnonzero(mask)
        peak_only = row[LOAD] == PEAK
        point = self._point(hours, 0, peak_only)
        errors = []
        for back in range(1, ISSUES_BACK + 1):
            moved = hours - back * WEEK_HOURS
            if self.origin - back * WEEK_HOURS - LEVEL_HOURS < 0 or moved[-1] >= self.origin:
                continue  # its level window is before the grid, or it is not settled by the issue
            settlement = self.price[moved].mean()
            errors.append(settlement - self._point(hours, back, peak_only))
        errors = np.asarray(errors)
        errors = errors[np.isfinite(errors)]
        if not np.isfinite(point) or len(errors) < MIN_ERRORS:
            return np.full(len(STAT_COLUMNS), np.nan)
        return np.concatenate([[point], point + np.quantile(errors, QUANTILE_LEVELS)])

    def _point(self, hours: np.ndarray, back: int, peak_only: bool) -> float:
        """The rule's forecast of `hours` at the issue `back` weeks before: settled hours at their
        price, the others at the level of the 7 days before that issue's forecast start."""
        start = self.origin - back * WEEK_HOURS
        moved = hours - back * WEEK_HOURS
        window = np.arange(start - LEVEL_HOURS, start)
        if peak_only:
            window = window[self.peak[window]]
        prices = self.price[window]
        level = np.nanmean(prices) if np.isfinite(prices).any() else np.nan
        values = np.where(moved < start, self.price[moved], level)
        return float(values.mean())


def score_products(products: pd.DataFrame) -> pd.DataFrame:
    """Product metrics per model × kind × load × horizon week ("all" over the weeks) of the product
    rows with a settlement and deciles."""
    scored = products[products[SETTLEMENT].notna() & products["p50"].notna()]
    rows = []
    for by_week in (False, True):
        keys = [MODEL, KIND, LOAD, *([HORIZON_WEEK] if by_week else [])]
        for key, group in scored.groupby(keys, sort=True):
            labels = dict(zip(keys, key, strict=True))
            rows.append({HORIZON_WEEK: ALL, **labels, **_summary(group)})
    table = pd.DataFrame(rows, columns=[MODEL, KIND, LOAD, HORIZON_WEEK, *PRODUCT_METRICS])
    table[HORIZON_WEEK] = table[HORIZON_WEEK].astype(str)
    return table.sort_values([KIND, LOAD, HORIZON_WEEK, MODEL], ignore_index=True)


def _summary(group: pd.DataFrame) -> dict[str, float]:
    actual = group[SETTLEMENT].to_numpy(dtype="float64")
    quantiles = group[list(QUANTILE_COLUMNS)].to_numpy(dtype="float64")
    return {
        "products": len(group),
        "crps": crps_from_quantiles(actual, quantiles),
        "mae": mae(actual, group[MEAN].to_numpy(dtype="float64")),
        "coverage_10_90": interval_coverage(actual, quantiles[:, 0], quantiles[:, -1]),
        "width_10_90": interval_width(quantiles[:, 0], quantiles[:, -1]),
    }
