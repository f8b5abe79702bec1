"""Forecast job: with the champion model and what the lake knew at the issue instant, issue the
four-week forecast of every zone — calibrated sample paths, their hourly deciles and the calendar
products set against the forwards settled by then — with the input status beside it, and store them
in the lake in one atomic write."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from forecasting import progress
from forecasting.config import Settings
from forecasting.features.covariates import COVARIATE
from forecasting.jobs.train import forecaster_of
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import issue_date_of, write_forecast
from forecasting.lake.forward_store import read_forwards
from forecasting.lake.series_store import read_series
from forecasting.lake.track_record import LakeTrackRecord
from forecasting.model.pipeline import DeepARPipeline
from forecasting.products import ProductForecast, forward_view
from forecasting.reports.export import check_destination, export_table, is_workbook
from forecasting.schema import SERIES_COL, ZONE

log = logging.getLogger("spotcast.forecast")

FEED_STATUS = "feed_status"
# The running month's published prices settle its month product: up to 31 days before the forecast.
PRODUCT_LOOKBACK = pd.Timedelta(days=32)


@dataclass(frozen=True)
class IssuedForecast:
    issue_date: date
    forecast: pd.DataFrame  # the hourly view (forecast frame)
    inputs: pd.DataFrame  # per zone × covariate: newest published hour, extension, feed status
    files: list[str]
    products: ProductForecast  # the calendar products of the same paths
    view: pd.DataFrame  # the products with the forward view (forward columns empty where none)


def input_status(model_inputs: pd.DataFrame, ingest_table: pd.DataFrame | None) -> pd.DataFrame:
    """The model's covariate extension report joined with this run's feed status (ok, stale, …)."""
    inputs = model_inputs.copy()
    if ingest_table is None or ingest_table.empty:
        inputs[FEED_STATUS] = "not pulled in this run"
        return inputs
    worst = ingest_table.groupby([ZONE, SERIES_COL])["status"].agg(
        lambda s: next((v for v in ("failed", "unavailable", "empty") if v in set(s)), "ok")
    )
    pairs = list(zip(inputs[ZONE], inputs[COVARIATE], strict=True))
    inputs[FEED_STATUS] = [worst.get(pair, "not pulled in this run") for pair in pairs]
    return inputs


def issue_forecast(
    settings: Settings,
    model: DeepARPipeline,
    issued_at: pd.Timestamp,
    ingest_table: pd.DataFrame | None = None,
    out: Path | None = None,
) -> IssuedForecast:
    """Forecast from the rows published by `issued_at` and store the issue (replacing a re-issue).
    `out`: also the forecast frame as .csv/.parquet, or the issue as an .xlsx workbook (a sheet per
    zone, Weekly, Products); checked before anything is computed, so a bad destination stores nothing."""
    if out is not None:
        check_destination(out)
    lake = LakeFS.of(settings)
    start = issued_at - model.history_needed - PRODUCT_LOOKBACK
    zones = list(model.zones_)
    # Three steps, each shown (a bar on a terminal): reading, sampling the paths, storing the issue.
    with progress.task(f"forecasting {len(zones)} zone(s)", total=3) as step:
        history = read_series(lake, zones=zones, start=start, as_of=issued_at)
        step.advance(detail=f"read {len(history)} rows published by {issued_at:%Y-%m-%d %H:%M} UTC")
        record = forecaster_of(settings, model, LakeTrackRecord(lake)).predict(history, issued_at)
        step.advance(detail="sampled the paths")
        forecast = record.frame
        inputs = input_status(record.input_status, ingest_table).assign(
            issued_at=issued_at, model_id=model.model_id_
        )
        view = forward_view(record.products, read_forwards(lake, as_of=issued_at, zones=zones))
        issue_date = issue_date_of(issued_at, settings.schedule.timezone)
        stored = ProductForecast(view, record.products.samples)  # the view keeps the products' row order
        files = write_forecast(lake, forecast, inputs, issue_date, paths=record.paths, products=stored)
        step.advance(detail=f"stored the issue of {issue_date}")
    if out is not None and is_workbook(out):
        from forecasting.reports.workbook import write_workbook

        files.append(str(write_workbook(out, forecast, view, settings.zone_timezones, issue_date=issue_date)))
    elif out is not None:
        files.append(str(export_table(forecast, out)))
    log.info("issued %s forecast of %s with %s", issue_date, ", ".join(model.zones_), model.model_id_)
    return IssuedForecast(issue_date, forecast, inputs, files, record.products, view)
