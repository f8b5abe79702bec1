"""The forecasting steps as Prefect tasks: train, load the champion, issue, report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from forecasting.config import Settings
from forecasting.jobs.forecast import IssuedForecast, issue_forecast
from forecasting.jobs.reporting import write_daily_report
from forecasting.jobs.train import TrainResult, train
from forecasting.lake.files import LakeFS
from forecasting.model import registry
from forecasting.model.artifact import ArtifactFormatError
from forecasting.model.pipeline import DeepARPipeline


@task(name="train", cache_policy=NO_CACHE)
def train_task(settings: Settings, as_of: pd.Timestamp, tags: dict[str, str] | None = None) -> TrainResult:
    return train(settings, as_of, tags)


@task(name="load champion", cache_policy=NO_CACHE)
def champion_task(settings: Settings, as_of: pd.Timestamp) -> DeepARPipeline:
    """The promoted model; trains and promotes one first when none exists yet, or when the champion
    was written by a Spotcast whose model format this version cannot forecast with."""
    lake = LakeFS.open(settings.lake_root)
    try:
        return registry.load_champion(lake, settings)
    except registry.NoChampion:
        get_run_logger().info("no model yet: training the first one")
        train(settings, as_of, tags={"trigger": "daily: no model yet"})
    except ArtifactFormatError as exc:
        get_run_logger().warning("%s: training a model of this version", exc)
        train(settings, as_of, tags={"trigger": "daily: champion of an older format"})
    return registry.load_champion(lake, settings)


@task(name="forecast", cache_policy=NO_CACHE)
def forecast_task(
    settings: Settings,
    model: DeepARPipeline,
    issued_at: pd.Timestamp,
    ingest_table: pd.DataFrame | None = None,
    out: Path | None = None,
) -> IssuedForecast:
    return issue_forecast(settings, model, issued_at, ingest_table, out)


@task(name="report", cache_policy=NO_CACHE)
def report_task(settings: Settings, issued: IssuedForecast, ingest_table: pd.DataFrame | None) -> Path:
    return write_daily_report(settings, issued, ingest_table, publish=True)
