"""The forecast frame every forecaster returns (schema in `forecasting.schema`), built in one place so
the model and the baselines share the horizon's start, the local clock and non-crossing deciles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self

import numpy as np
import pandas as pd

from forecasting.errors import MissingData
from forecasting.schema import (
    DELIVERY_HOUR,
    FORECAST_COLUMNS,
    HORIZON_HOUR,
    HORIZON_HOURS,
    ISSUED_AT,
    LOCAL_TIME,
    MEAN,
    MODEL_ID,
    PRICE,
    PUBLISHED_AT,
    QUANTILE_COLUMNS,
    SERIES_COL,
    ZONE,
)

if TYPE_CHECKING:
    from forecasting.paths import IssuePaths
    from forecasting.products import ProductForecast


@dataclass(frozen=True)
class ForecastRecord:
    """A model's forecast of one issue: the hourly deciles (`frame`), the calibrated sample paths
    they are the hourly view of, the calendar products (the other view of the same paths), and the
    by-products: the input status (per zone × covariate: newest published hour, hours extended,
    method), the hourly spread factors per horizon week and the product spread factors."""

    frame: pd.DataFrame
    input_status: pd.DataFrame
    spread_factors: np.ndarray
    paths: IssuePaths | None = None
    products: ProductForecast | None = None
    product_factors: pd.DataFrame | None = None


class Forecaster(Protocol):
    """What the daily flow and the backtest need from a model (the DeepAR pipeline, a baseline)."""

    def fit(self, history: pd.DataFrame) -> Self:
        """Learn from a tidy series frame; the caller has already cut it to what was known."""
        ...

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> pd.DataFrame | ForecastRecord:
        """Forecast for every fitted zone (a frame, or a record holding it); ignores rows published
        after `issued_at`."""
        ...


def frame_of(forecast: pd.DataFrame | ForecastRecord) -> pd.DataFrame:
    return forecast.frame if isinstance(forecast, ForecastRecord) else forecast


def forecast_start(history: pd.DataFrame, zone: str, issued_at: pd.Timestamp) -> pd.Timestamp:
    """First delivery hour of `zone` with no day-ahead price published at `issued_at`."""
    prices = history[
        (history[ZONE] == zone) & (history[SERIES_COL] == PRICE) & (history[PUBLISHED_AT] <= issued_at)
    ]
    if prices.empty:
        raise MissingData(f"no day-ahead price of {zone} was published by {issued_at}")
    return prices[DELIVERY_HOUR].max() + pd.Timedelta(hours=1)


def forecast_hours(start: pd.Timestamp, horizon: int = HORIZON_HOURS) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=horizon, freq="h", tz="UTC")


def make_forecast_frame(
    zone: str,
    timezone: str,
    issued_at: pd.Timestamp,
    delivery_hours: pd.DatetimeIndex,
    mean: np.ndarray,
    quantiles: np.ndarray,
    model_id: str,
) -> pd.DataFrame:
    """One zone's forecast rows. `quantiles` is (hours × 9) for p10…p90; sorted per hour so the
    deciles can never cross (sample quantiles of few paths occasionally do)."""
    if quantiles.shape != (len(delivery_hours), len(QUANTILE_COLUMNS)):
        raise ValueError(
            f"quantiles must be {len(delivery_hours)} × {len(QUANTILE_COLUMNS)}, got {quantiles.shape}"
        )
    ordered = np.sort(np.asarray(quantiles, dtype="float64"), axis=1)
    frame = pd.DataFrame(ordered, columns=list(QUANTILE_COLUMNS))
    frame.insert(0, ZONE, zone)
    frame.insert(1, ISSUED_AT, pd.Timestamp(issued_at).tz_convert("UTC").as_unit("ns"))
    frame.insert(2, DELIVERY_HOUR, delivery_hours)
    frame.insert(3, LOCAL_TIME, delivery_hours.tz_convert(timezone).strftime("%Y-%m-%dT%H:%M%z"))
    frame.insert(4, HORIZON_HOUR, np.arange(1, len(delivery_hours) + 1))
    frame.insert(5, MEAN, np.asarray(mean, dtype="float64"))
    frame[MODEL_ID] = model_id
    return frame[FORECAST_COLUMNS]
