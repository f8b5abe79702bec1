"""Sample paths: the forecast itself. One zone's issue is `samples × 672` joint price paths in
EUR/MWh; hourly deciles and calendar-product quantiles are two views of the same paths, so they
agree with each other.

Raw paths come from the model; calibrated paths keep the raw paths' rank order in every hour
(ensemble copula coupling, `forecasting.model.calibration`), so the joint behaviour across hours —
what decides how wide a week's average is — is the model's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.forecast_frame import make_forecast_frame
from forecasting.schema import QUANTILE_LEVELS

PATH_DTYPE = np.float32  # 200 × 672 × 4 bytes = 0.5 MB per zone and issue; prices need no more digits


@dataclass(frozen=True)
class ZonePaths:
    """One zone's sample paths of one issue: `values[i, h]` is path i's price at `delivery_hours[h]`."""

    zone: str
    timezone: str
    issued_at: pd.Timestamp  # UTC
    delivery_hours: pd.DatetimeIndex  # UTC, consecutive hours
    values: np.ndarray  # samples × hours, PATH_DTYPE, EUR/MWh
    model_id: str

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.delivery_hours):
            raise ValueError(
                f"{self.zone}: paths must be samples × {len(self.delivery_hours)} hours, got {self.values.shape}"
            )

    @property
    def samples(self) -> int:
        return self.values.shape[0]

    def with_values(self, values: np.ndarray) -> ZonePaths:
        return ZonePaths(
            self.zone, self.timezone, self.issued_at, self.delivery_hours, values.astype(PATH_DTYPE), self.model_id
        )

    def forecast_frame(self) -> pd.DataFrame:
        """The hourly view: mean and deciles of the paths per hour (the forecast frame schema)."""
        values = self.values.astype("float64")
        return make_forecast_frame(
            zone=self.zone,
            timezone=self.timezone,
            issued_at=self.issued_at,
            delivery_hours=self.delivery_hours,
            mean=values.mean(axis=0),
            quantiles=np.quantile(values, QUANTILE_LEVELS, axis=0).T,
            model_id=self.model_id,
        )



@dataclass(frozen=True)
class IssuePaths:
    """The sample paths of every zone of one issue (one model, one issue instant)."""

    issued_at: pd.Timestamp  # UTC
    model_id: str
    zones: tuple[ZonePaths, ...]

    def forecast_frame(self) -> pd.DataFrame:
        """The hourly view of every zone (forecast frame schema)."""
        return pd.concat([zone.forecast_frame() for zone in self.zones], ignore_index=True)

    def map(self, change: Callable[[ZonePaths], ZonePaths]) -> IssuePaths:
        return IssuePaths(self.issued_at, self.model_id, tuple(change(zone) for zone in self.zones))


@dataclass(frozen=True)
class RawForecast:
    """What the model returns for one issue: its raw (uncalibrated) paths and the input status per
    zone × covariate (newest published hour, hours extended, method)."""

    paths: IssuePaths
    input_status: pd.DataFrame

    @property
    def frame(self) -> pd.DataFrame:
        """The raw hourly deciles."""
        return self.paths.forecast_frame()
