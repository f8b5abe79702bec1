"""Decile spread calibration: a stage after the model (like OpenSTEF's confidence-interval
applicator). `fit` learns, per horizon week, how far the model's raw p10–p90 band must be widened or
narrowed around its median so that it held 80 % of the realised prices of recent past issues;
`apply` rescales a raw forecast frame's deciles and mean around the median by those factors.

Working on forecast frames in EUR/MWh is exact: the model's anchored → price map is affine and
increasing per hour, so quantiles, the median and these ratios are the same in either unit.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOUR,
    HORIZON_HOURS,
    ISSUED_AT,
    MEAN,
    QUANTILE_COLUMNS,
    VALUE,
    ZONE,
)

WEEK = 168
HORIZON_WEEKS = HORIZON_HOURS // WEEK
DELIVERED_AFTER = pd.Timedelta(hours=HORIZON_HOURS + 48)  # an issue's horizon is published by then
NEWEST_CALIBRATION_WEEKS = -(-DELIVERED_AFTER // pd.Timedelta(days=7))  # weeks back to the newest delivered issue
COVERAGE = 0.8  # the band p10…p90
MEDIAN, LOW, HIGH = "p50", "p10", "p90"
_TINY = 1e-6  # floor of a half band, EUR/MWh


def weekly_issues_before(issued_at: pd.Timestamp, timezone: str, weeks_back: np.ndarray) -> pd.DatetimeIndex:
    """Issue instants `weeks_back` weeks before `issued_at` on the local clock (same weekday and
    local hour, minutes dropped), so a daily run at 14:00 finds last weeks' 14:00 issues whatever
    the DST offset or the minute it started."""
    local = pd.Timestamp(issued_at).tz_convert(timezone).floor("h").tz_localize(None)
    days = local - pd.to_timedelta(7 * np.asarray(weeks_back), unit="D")
    return pd.DatetimeIndex(days).tz_localize(timezone, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")


def horizon_week(frame: pd.DataFrame) -> np.ndarray:
    return (frame[HORIZON_HOUR].to_numpy() - 1) // WEEK


class SpreadCalibration:
    """Spread factors per horizon week (`factors_`) from past raw forecasts and their outcomes."""

    def fit(self, past_forecasts: pd.DataFrame, prices: pd.DataFrame) -> Self:
        """`past_forecasts`: raw forecast frames of delivered issues; `prices`: zone, delivery_hour,
        value of the realised prices. A week with no outcome keeps factor 1.0 (raw deciles)."""
        outcome = past_forecasts.merge(
            prices[[ZONE, DELIVERY_HOUR, VALUE]], on=[ZONE, DELIVERY_HOUR], how="left"
        )
        truth, median = outcome[VALUE].to_numpy(dtype="float64"), outcome[MEDIAN].to_numpy()
        high = np.maximum(outcome[HIGH].to_numpy() - median, _TINY)
        low = np.maximum(median - outcome[LOW].to_numpy(), _TINY)
        # how far out each outcome lies, in units of the band's half width on its side
        ratio = np.where(truth >= median, (truth - median) / high, (median - truth) / low)
        weeks = horizon_week(outcome)
        factors = np.ones(HORIZON_WEEKS)
        for week in range(HORIZON_WEEKS):
            seen = ratio[(weeks == week) & ~np.isnan(ratio)]
            if seen.size:
                factors[week] = np.quantile(seen, COVERAGE)
        self.factors_ = factors
        self.issues_ = int(past_forecasts[ISSUED_AT].nunique()) if len(past_forecasts) else 0
        return self

    def apply(self, forecast: pd.DataFrame) -> pd.DataFrame:
        """The forecast with deciles and mean moved from the median by the week's factor."""
        if not hasattr(self, "factors_"):
            raise NotFittedError("SpreadCalibration is not fitted yet: call fit(past_forecasts, prices)")
        factor = self.factors_[horizon_week(forecast)]
        median = forecast[MEDIAN].to_numpy()
        calibrated = forecast.copy()
        for column in (*QUANTILE_COLUMNS, MEAN):
            calibrated[column] = median + factor * (forecast[column].to_numpy() - median)
        return calibrated

