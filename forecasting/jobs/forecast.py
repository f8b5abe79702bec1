"""Forecast job: with the champion model and what the lake knew at the issue instant, issue the
four-week forecast of every zone, with the input status beside it, and store both in the lake."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from forecasting.config import Settings
from forecasting.errors import UsageError
from forecasting.features.covariates import COVARIATE
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import issue_date_of, write_forecast
from forecasting.lake.series_store import read_series
from forecasting.lake.track_record import LakeTrackRecord
from forecasting.model.pipeline import DeepARPipeline
from forecasting.schema import SERIES_COL, ZONE

log = logging.getLogger("spotcast.forecast")

FEED_STATUS = "feed_status"


@dataclass(frozen=True)
class IssuedForecast:
    issue_date: date
    forecast: pd.DataFrame
    inputs: pd.DataFrame  # per zone × covariate: newest published hour, extension, feed status
    files: list[str]


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
    """Forecast from the rows published by `issued_at` and store the issue (replacing a re-issue)."""
    lake = LakeFS.of(settings)
    start = issued_at - model.history_needed
    history = read_series(lake, zones=list(model.zones_), start=start, as_of=issued_at)
    record = model.predict(history, issued_at, LakeTrackRecord(lake))
    forecast = record.frame
    inputs = input_status(record.input_status, ingest_table).assign(
        issued_at=issued_at, model_id=model.model_id_
    )
    issue_date = issue_date_of(issued_at, settings.schedule.timezone)
    files = write_forecast(lake, forecast, inputs, issue_date)
    if out is not None:
        files.append(str(export_forecast(forecast, out)))
    log.info("issued %s forecast of %s with %s", issue_date, ", ".join(model.zones_), model.model_id_)
    return IssuedForecast(issue_date, forecast, inputs, files)


def export_forecast(forecast: pd.DataFrame, out: Path) -> Path:
    """The forecast in the lake's schema as CSV or Parquet, by the file's suffix (for spreadsheets)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        forecast.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    elif out.suffix.lower() == ".parquet":
        forecast.to_parquet(out, index=False)
    else:
        raise UsageError(f"--out must end in .csv or .parquet, got {out.name}")
    return out
