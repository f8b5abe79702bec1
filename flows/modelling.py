"""On-demand model flows: train a challenger, issue a forecast, run the backtest."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from prefect import flow

from flows.cluster import cluster_size, current_fanout
from flows.forecast_tasks import champion, forecast_task, train_task
from forecasting.config import settings_for
from forecasting.evaluation.backtest import BacktestResult
from forecasting.jobs.backtest import run_configured_backtest
from forecasting.jobs.forecast import IssuedForecast
from forecasting.jobs.ingest import resolve_as_of
from forecasting.jobs.train import TrainResult


@flow(name="train")
def train_flow(config: str | None = None, as_of: datetime | None = None) -> TrainResult:
    settings = settings_for(config, None)
    as_of_utc = resolve_as_of(settings, as_of)
    return train_task(settings, as_of_utc, tags={"trigger": "manual"})


@flow(name="forecast")
def forecast_flow(
    config: str | None = None, as_of: datetime | None = None, out: Path | None = None
) -> IssuedForecast:
    settings = settings_for(config, None)
    as_of_utc = resolve_as_of(settings, as_of)
    return forecast_task(settings, champion(settings, as_of_utc), as_of_utc, None, out)


@flow(name="backtest")
def backtest_flow(
    config: str | None = None,
    start: date | None = None,
    end: date | None = None,
    retrain_every: int | None = None,
    zones: list[str] | None = None,
) -> BacktestResult:
    """Serial, or on the Dask cluster of the flow's task runner (see `flows.cluster.run_on_cluster`):
    fits and origins as task runs, the same numbers."""
    settings = settings_for(config, zones)
    return run_configured_backtest(settings, start, end, retrain_every, current_fanout(), cluster_size())
