"""The forecasting steps as Prefect tasks: train, load the champion, issue, report."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from forecasting.config import Settings
from forecasting.jobs.forecast import IssuedForecast, issue_forecast
from forecasting.jobs.reporting import write_daily_report
from forecasting.jobs.train import TrainResult, train
from forecasting.lake.files import LakeFS
from forecasting.model import registry
from forecasting.model.artifact import ArtifactFormatError
from forecasting.model.pipeline import DeepARPipeline

log = logging.getLogger("spotcast.flows")


@task(name="train", cache_policy=NO_CACHE)
def train_task(settings: Settings, as_of: pd.Timestamp, tags: dict[str, str] | None = None) -> TrainResult:
    return train(settings, as_of, tags)


@task(name="load champion", cache_policy=NO_CACHE)
def champion_task(settings: Settings, as_of: pd.Timestamp) -> DeepARPipeline:
    """The model that was champion at `as_of` (never one trained on data published later). Trains and
    promotes one first when the registry holds none yet, or when that champion was written by a
    Spotcast whose model format this version cannot forecast with; refuses (NoChampion, saying how
    to train one) when every model was trained on data published after `as_of`."""
    lake = LakeFS.of(settings)
    try:
        return _load(lake, settings, as_of)
    except registry.NoChampion:
        if registry.promotions(lake):
            raise
        log.info("no model yet: training the first one")
        train(settings, as_of, tags={"trigger": "daily: no model yet"})
    except ArtifactFormatError as exc:
        log.warning("%s: training a model of this version", exc)
        train(settings, as_of, tags={"trigger": "daily: champion of an older format"})
    return _load(lake, settings, as_of)


def _load(lake: LakeFS, settings: Settings, as_of: pd.Timestamp) -> DeepARPipeline:
    model = registry.load_champion(lake, settings, as_of)
    chosen = registry.champion(lake, as_of)
    log.info(
        "forecasting with %s (run %s), the champion from %s on",
        chosen.model_id,
        chosen.run_id,
        f"{pd.Timestamp(chosen.as_of):%Y-%m-%d %H:%M} UTC",
    )
    return model


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
def report_task(settings: Settings, issued: IssuedForecast, ingest_table: pd.DataFrame | None) -> str:
    return write_daily_report(settings, issued, ingest_table, publish=True)
