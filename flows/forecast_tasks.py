"""The forecasting steps as Prefect tasks: train, load the champion, issue, report (the bundle in the
lake, published as the run's artifacts)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import publish_prefect_artifacts
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


@dataclass(frozen=True)
class TrainFirst:
    """What "load champion" answers when a model must be trained first: the trigger tag its run gets."""

    trigger: str


@task(name="load champion", cache_policy=NO_CACHE)
def champion_task(
    settings: Settings, as_of: pd.Timestamp, may_train: bool = True
) -> DeepARPipeline | TrainFirst:
    """The model that was champion at `as_of` (never one trained on data published later). Asks for a
    model to be trained first (`TrainFirst`, with `may_train`) when the registry holds none yet, or
    when that champion was written by a Spotcast whose model format this version cannot forecast
    with; refuses (NoChampion, saying how to train one) when every model was trained on data
    published after `as_of`. Training is not done here: it is the "train" task (`champion`)."""
    lake = LakeFS.of(settings)
    try:
        return _load(lake, settings, as_of)
    except registry.NoChampion:
        if registry.promotions(lake) or not may_train:
            raise
        log.info("no model yet: training the first one")
        return TrainFirst("daily: no model yet")
    except ArtifactFormatError as exc:
        if not may_train:
            raise
        log.warning("%s: training a model of this version", exc)
        return TrainFirst("daily: champion of an older format")


def champion(
    settings: Settings, as_of: pd.Timestamp, on_step: Callable[[str], None] = lambda _name: None
) -> DeepARPipeline:
    """In a flow: the champion at `as_of` ("load champion"), training one first where it asks for it
    as a task run of its own ("train": minutes of fitting and validation the UI shows as such), then
    loading again. `on_step` hears the name of each task before it runs (a failure names its step)."""
    on_step(champion_task.name)
    loaded = champion_task(settings, as_of)
    if isinstance(loaded, TrainFirst):
        on_step(train_task.name)
        train_task(settings, as_of, tags={"trigger": loaded.trigger})
        on_step(champion_task.name)
        # no second training: without `may_train` it returns a model or raises
        return cast(DeepARPipeline, champion_task(settings, as_of, may_train=False))
    return loaded


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
    """The report bundle in the lake (its folder returned), mirrored as this run's artifacts."""
    return write_daily_report(settings, issued, ingest_table, publish=publish_prefect_artifacts)
