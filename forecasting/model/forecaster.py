"""The forecaster the desk reads: the model's raw sample paths, then the stages after the model.

    DeepARPipeline.predict ─► raw paths ─► hourly spread stage + copula ─► calibrated paths
        (track record: each                 (SpreadCalibration)              │ hourly deciles
         raw issue made once)                                                 └► calendar products
                                                                                 ─► product spread stage
                                                                                   (ProductSpreadCalibration)

Both spread stages are fitted at every forecast on the same evidence: the model's raw paths of its
newest weekly issues whose four weeks are delivered by the issue instant (rolling conformal style),
read from the track record, against the prices published by then. Their issues fall on the local
`clock` (the schedule's time zone): the same weekday and hour as the forecast's.
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np
import pandas as pd

from forecasting.config import ProductsConfig
from forecasting.forecast_frame import ForecastRecord
from forecasting.lake.track_record import MemoryTrackRecord, TrackRecord
from forecasting.model.calibration import HORIZON_WEEKS, ProductSpreadCalibration, SpreadCalibration
from forecasting.model.pipeline import DeepARPipeline
from forecasting.paths import IssuePaths
from forecasting.products import ProductForecast, concat_products, product_forecast, settle_products
from forecasting.publication import known_at
from forecasting.schema import DELIVERY_HOUR, PRICE, SERIES_COL, VALUE, ZONE

log = logging.getLogger(__name__)

DEFAULT_CLOCK = "Europe/Oslo"


class CalibratedForecaster:
    """A fitted (or to-be-fitted) pipeline with its track record and spread stages (implements
    `Forecaster`). `clock`: the time zone whose weekday and hour the calibration issues share with
    the forecast (the daily schedule's); `products`: peak hours and custom periods;
    `zone_prior_issues`: the hourly spread factors per zone, shrunk towards the pooled ones with this
    prior weight in issues (`SpreadCalibration`; None: pooled factors for every zone)."""

    def __init__(
        self,
        pipeline: DeepARPipeline,
        track_record: TrackRecord | None = None,
        clock: str = DEFAULT_CLOCK,
        products: ProductsConfig | None = None,
        zone_prior_issues: float | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.track_record = track_record if track_record is not None else MemoryTrackRecord()
        self.clock = clock
        self.products = products or ProductsConfig()
        self.zone_prior_issues = zone_prior_issues

    def fit(self, history: pd.DataFrame) -> Self:
        self.pipeline.fit(history)
        return self

    @property
    def model_id(self) -> str:
        return self.pipeline.model_id_

    @property
    def history_needed(self) -> pd.Timedelta:
        return self.pipeline.history_needed

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> ForecastRecord:
        """Calibrated paths, hourly deciles and product forecasts of every zone at `issued_at`,
        from the rows of `history` published by then."""
        issued_at = pd.Timestamp(issued_at).tz_convert("UTC")
        raw = self.track_record.get(self.model_id, issued_at)
        if raw is None:
            made = self.pipeline.predict(history, issued_at)
            raw, status = made.paths, made.input_status
            self.track_record.put(self.model_id, raw)
        else:
            status = self.pipeline.input_status(history, issued_at)
        prices = known_at(history[history[SERIES_COL] == PRICE], issued_at)
        past = self._past_paths(history, self.pipeline.calibration_issues(issued_at, self.clock))
        if not past:
            log.warning("no delivered out-of-sample issue to calibrate on: raw paths")
            products = self._products(raw, prices)
            return ForecastRecord(raw.forecast_frame(), status, np.ones(HORIZON_WEEKS), raw, products)
        hourly = self.hourly_stage(past, prices)
        calibrated = raw.map(hourly.apply)
        products, product_factors = self.calibrated_products(calibrated, past, hourly, prices)
        log.info(
            "spread factors per horizon week: %s (%d past issues)", np.round(hourly.factors_, 2), len(past)
        )
        return ForecastRecord(calibrated.forecast_frame(), status, hourly.factors_, calibrated, products, product_factors)

    def hourly_stage(self, past: list[IssuePaths], prices: pd.DataFrame) -> SpreadCalibration:
        """The hourly spread stage fitted on the raw paths of past issues and the published prices."""
        frames = pd.concat([issue.forecast_frame() for issue in past], ignore_index=True)
        return SpreadCalibration(self.zone_prior_issues).fit(frames, prices)

    def calibrated_products(
        self, calibrated: IssuePaths, past: list[IssuePaths], hourly: SpreadCalibration, prices: pd.DataFrame
    ) -> tuple[ProductForecast, pd.DataFrame]:
        """The products of the calibrated paths through the product spread stage fitted on the past
        issues, and that stage's factors."""
        product_stage = self._fit_product_stage(past, hourly, prices)
        return product_stage.apply(self._products(calibrated, prices)), product_stage.factors_

    def _products(self, paths: IssuePaths, prices: pd.DataFrame) -> ProductForecast:
        """Product forecasts of every zone: the paths over the forecast hours, the prices published
        by the issue over the hours before them."""
        known = known_at(prices, paths.issued_at)
        return concat_products([
            product_forecast(zone, _settled(known, zone.zone), self.products.peak, self.products.custom)
            for zone in paths.zones
        ])

    def _fit_product_stage(
        self, past: list[IssuePaths], hourly: SpreadCalibration, prices: pd.DataFrame
    ) -> ProductSpreadCalibration:
        """The product spread stage fitted on the past issues' products (their raw paths through
        today's hourly stage, as the forecast's own) and their settlements."""
        forecasts = concat_products([self._products(issue.map(hourly.apply), prices) for issue in past])
        timezones = {zone.zone: zone.timezone for zone in past[0].zones}
        settlements = settle_products(forecasts.table, prices, timezones, self.products.peak)
        return ProductSpreadCalibration().fit(forecasts, settlements.to_numpy())

    def _past_paths(self, history: pd.DataFrame, issues: pd.DatetimeIndex) -> list[IssuePaths]:
        """Raw paths of past issues: from the track record, else made now and stored (issues a zone
        could not be forecast at are left out)."""
        stored = {issue: self.track_record.get(self.model_id, issue) for issue in issues}
        missing = pd.DatetimeIndex([issue for issue, paths in stored.items() if paths is None], tz="UTC")
        for made in self.pipeline.raw_forecasts(history, missing):
            self.track_record.put(self.model_id, made)
            stored[made.issued_at] = made
        return [paths for paths in stored.values() if paths is not None]

    # --- what a backtest needs to make raw forecasts ahead, in parallel ---------------------------

    def raw_issues(self, origins: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """Every issue whose raw paths forecasts at `origins` read: the origins and their
        calibration issues."""
        origins = pd.DatetimeIndex(origins).tz_convert("UTC")
        issues = [origins, *(self.pipeline.calibration_issues(origin, self.clock) for origin in origins)]
        return issues[0].append(issues[1:]).unique().sort_values()

    def missing_raw_issues(self, origins: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """The raw forecasts that forecasts at `origins` read and the track record lacks."""
        issues = self.raw_issues(origins)
        return issues[[self.track_record.get(self.model_id, issue) is None for issue in issues]]

    def keep(self, made: list[IssuePaths]) -> None:
        for paths in made:
            self.track_record.put(self.model_id, paths)


def _settled(prices: pd.DataFrame, zone: str) -> pd.Series:
    """A zone's published prices by UTC delivery hour."""
    rows = prices[prices[ZONE] == zone]
    return pd.Series(rows[VALUE].to_numpy(), index=pd.DatetimeIndex(rows[DELIVERY_HOUR]), name=zone).sort_index()

