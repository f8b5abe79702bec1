"""Backtest job: rolling weekly origins of the configured model over a period, next to the
seasonal-naive baselines, from the lake's full history (each origin sees only what was published
before it); results go to the lake (Parquet) and to a markdown report."""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd

from forecasting.config import Settings
from forecasting.errors import MissingData
from forecasting.evaluation.backtest import BacktestResult, RetrainEvery, run_backtest
from forecasting.fanout import Fanout, in_process
from forecasting.jobs.train import build_pipeline, forecaster_of, model_series
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import read_series

log = logging.getLogger("spotcast.backtest")

BACKTESTS = "backtests"


def model_history(settings: Settings) -> pd.DataFrame:
    """Every row of the configured zones and the model's series in the lake (backtests and tuning cut
    it at each origin's publication time themselves)."""
    lake = LakeFS.of(settings)
    history = read_series(lake, series=model_series(build_pipeline(settings)), zones=settings.zone_names)
    if history.empty:
        raise MissingData(f"the lake {settings.lake_root} is empty: run `spotcast backfill` first")
    return history


def run_configured_backtest(
    settings: Settings,
    start: date,
    end: date,
    retrain_every: int | None = None,
    fanout: Fanout = in_process,
    origin_tasks: int = 1,
) -> BacktestResult:
    lake = LakeFS.of(settings)
    history = model_history(settings)
    every: RetrainEvery = retrain_every or "once"
    result = run_backtest(
        history,
        lambda: forecaster_of(settings, build_pipeline(settings)),
        start,
        end,
        timezones=settings.zone_timezones,
        retrain_every=every,
        zones=settings.zone_names,
        model_name="deepar",
        origin_timezone=settings.schedule.timezone,
        fanout=fanout,
        origin_tasks=origin_tasks,
        peak=settings.products.peak,
    )
    write_backtest(lake, result)
    return result


def write_backtest(lake: LakeFS, result: BacktestResult) -> None:
    """The result into the lake, local or object store: Parquet under `backtests/` (a rerun of the
    period replaces its partitions) and the markdown report `reports/backtest_<period>.md`."""
    folder = lake.path(BACKTESTS)
    result.write_parquet(folder, filesystem=lake.fs)
    report = result.write_markdown(lake.path("reports", f"backtest_{result.period}.md"), filesystem=lake.fs)
    log.info("backtest results in %s, report %s", lake.shown(folder), lake.shown(report))
