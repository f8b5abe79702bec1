"""Rolling-origin backtest: weekly issues over a period, each forecaster refitted on schedule on what
was published by its training origin, each forecast made from what was published by its issue, all
scored on the realised prices next to the seasonal-naive baselines computed in the same run.

Results go to Parquet (hive-partitioned by `period` and `model`) and to a markdown report.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from time import perf_counter
from typing import Any, Literal, Protocol

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from forecasting import progress
from forecasting.clock import weekly_origins
from forecasting.config import PeakHours
from forecasting.errors import MissingData, UsageError
from forecasting.evaluation.baselines import (
    LEVEL_SHAPE_NAIVE,
    SEASONAL_NAIVE,
    SEASONAL_NAIVE_EMPIRICAL,
    LevelShapeNaive,
    SeasonalNaive,
    SeasonalNaiveEmpirical,
)
from forecasting.evaluation.metrics import MODEL, score
from forecasting.evaluation.product_scores import product_baselines, score_products
from forecasting.evaluation.report import render_markdown, render_product_markdown
from forecasting.fanout import Fanout, in_process
from forecasting.forecast_frame import Forecaster, ForecastRecord, frame_of
from forecasting.products import SETTLEMENT, settle_products
from forecasting.publication import known_at
from forecasting.schema import DELIVERY_HOUR, FORECAST_COLUMNS, ISSUED_AT, PRICE, SERIES_COL, ZONE

log = logging.getLogger("spotcast.evaluation")

PERIOD = "period"
NORDIC_PEAK = PeakHours()  # Monday–Friday 08:00–20:00 local, the exchanges' peak
RetrainEvery = int | Literal["once"]
ForecasterFactory = Callable[[], Forecaster]


def is_training_origin(position: int, retrain_every: RetrainEvery) -> bool:
    """Whether the forecasters are (re)fitted at the `position`-th origin (0-based) of a period."""
    if retrain_every == "once":
        return position == 0
    if not isinstance(retrain_every, int) or retrain_every < 1:
        raise ValueError(f"retrain_every must be 'once' or a positive origin count, got {retrain_every!r}")
    return position % retrain_every == 0


@dataclass(frozen=True)
class BacktestResult:
    """All forecasts of one backtest (long frame: period, model, then the forecast frame columns) and
    their metric table (see `forecasting.evaluation.metrics.score`)."""

    period: str
    origins: pd.DatetimeIndex
    training_origins: pd.DatetimeIndex
    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage
    raw_forecasts: int = 0  # raw forecasts made ahead of the origins (see fill_track_records)
    # The calendar products (period, model, product frame, settlement) of the models that make them
    # and of the product baselines on the same rows, and their metric table (`score_products`).
    products: pd.DataFrame = field(default_factory=pd.DataFrame)
    product_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_markdown(self) -> str:
        title = f"Backtest {self.period}: {len(self.origins)} weekly issues"
        text = render_markdown(self.metrics, title=title)
        if not self.product_metrics.empty:
            text += "\n" + render_product_markdown(self.product_metrics, f"Products {self.period}")
        return text

    def write_markdown(self, path: str | Path, filesystem: fsspec.AbstractFileSystem | None = None) -> str:
        """Write the report at `path`: a local path, or one on `filesystem` (the lake's)."""
        fs = filesystem or LocalFileSystem()
        path = str(path)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        fs.pipe_file(path, self.to_markdown().encode())
        return path

    def write_parquet(
        self, destination: str | Path, filesystem: fsspec.AbstractFileSystem | None = None
    ) -> str:
        """Write `forecasts/` and `metrics/` under `destination` (a local folder, or one on
        `filesystem`: the lake's), partitioned period=…/model=…; rewriting a period replaces its
        partitions."""
        root = str(destination)
        metrics = self.metrics.assign(**{PERIOD: self.period})
        tables = [("forecasts", self.forecasts), ("metrics", metrics)]
        if not self.products.empty:
            product_metrics = self.product_metrics.assign(**{PERIOD: self.period})
            tables += [("products", self.products), ("product_metrics", product_metrics)]
        for name, frame in tables:
            pq.write_to_dataset(
                pa.Table.from_pandas(frame, preserve_index=False),
                f"{root}/{name}",
                partition_cols=[PERIOD, MODEL],
                basename_template="part-{i}.parquet",
                existing_data_behavior="delete_matching",
                filesystem=filesystem,
            )
        return root


@dataclass(frozen=True)
class OriginJob:
    """Consecutive issues of a backtest forecast by the forecasters fitted at their training origin."""

    fitted: Mapping[str, Forecaster]
    origins: tuple[pd.Timestamp, ...]
    peak: PeakHours = NORDIC_PEAK  # the peak hours of the product baselines and settlements


@dataclass(frozen=True)
class OriginForecasts:
    """The hourly forecasts of a job's origins (period-less long frame: model, forecast frame) and
    the product forecasts of the forecasters that make products, with the product baselines on the
    same rows (model, product frame)."""

    forecasts: pd.DataFrame
    products: pd.DataFrame


def fit_forecasters(
    history: pd.DataFrame, job: tuple[Mapping[str, ForecasterFactory], pd.Timestamp]
) -> dict[str, Forecaster]:
    """Every forecaster fitted on what was published by the training origin."""
    factories, training_origin = job
    known = known_at(history, training_origin)
    return {name: factory().fit(known) for name, factory in factories.items()}


def _lookback(forecasters: Mapping[str, Forecaster]) -> pd.Timedelta | None:
    """How far before an issue the forecasters read (None: one of them does not say)."""
    needs = [getattr(forecaster, "history_needed", None) for forecaster in forecasters.values()]
    return None if any(need is None for need in needs) else max(needs)


def forecast_origins(history: pd.DataFrame, job: OriginJob) -> OriginForecasts:
    """Every fitted forecaster's forecasts issued at the job's origins, in order (a pure function of
    the fitted forecasters, the history and the origins: the same wherever it runs). A forecaster that
    keeps a track record (CalibratedForecaster) reads the raw paths stored there (see
    `fill_track_records`) and makes the missing ones; one that makes products has them scored next
    to the product baselines. Each origin's copy of the history holds only the rows the forecasters
    read (their `history_needed`), not all years."""
    lookback = _lookback(job.fitted)
    frames, products = [], []
    for origin in progress.track(job.origins, f"origins from {job.origins[0]:%Y-%m-%d}"):
        began = perf_counter()
        recent = history if lookback is None else history[history[DELIVERY_HOUR] >= origin - lookback]
        known = known_at(recent, origin)
        for name, forecaster in job.fitted.items():
            forecast = forecaster.predict(known, origin)
            frames.append(frame_of(forecast)[FORECAST_COLUMNS].assign(**{MODEL: name}))
            if isinstance(forecast, ForecastRecord) and forecast.products is not None:
                products += _with_baselines(name, forecast, recent[recent[SERIES_COL] == PRICE], job.peak)
        log.debug("origin %s: %d forecasters in %.1f s", f"{origin:%Y-%m-%d}", len(job.fitted), perf_counter() - began)
    return OriginForecasts(
        pd.concat(frames, ignore_index=True),
        pd.concat(products, ignore_index=True) if products else pd.DataFrame(),
    )


def _with_baselines(name: str, forecast: ForecastRecord, prices: pd.DataFrame, peak: PeakHours) -> list[pd.DataFrame]:
    """The model's products and both product baselines on the same rows, each with the realised
    settlement (`prices` runs past the issue: what was published by it is the baselines' input)."""
    timezones = {zone.zone: zone.timezone for zone in forecast.paths.zones}
    table = forecast.products.table
    settlement = settle_products(table, prices, timezones, peak).to_numpy()
    known = known_at(prices, pd.Timestamp(table[ISSUED_AT].iloc[0])) if len(table) else prices
    tables = {name: table, **product_baselines(forecast, known, timezones, peak)}
    return [rows.assign(**{MODEL: model, SETTLEMENT: settlement}) for model, rows in tables.items()]


class KeepsRawForecasts(Protocol):
    """A forecaster whose raw forecasts can be made ahead of its `predict`, in any order and process
    (CalibratedForecaster): its `pipeline.raw_forecasts(history, issues)` makes them, `keep` stores them."""

    pipeline: Any

    def missing_raw_issues(self, origins: pd.DatetimeIndex) -> pd.DatetimeIndex: ...

    def keep(self, frames: list[pd.DataFrame]) -> None: ...


@dataclass(frozen=True)
class RawForecastJob:
    """Consecutive issues whose raw forecasts one fitted pipeline makes in one run."""

    pipeline: Any
    issues: pd.DatetimeIndex


def raw_forecasts(history: pd.DataFrame, job: RawForecastJob) -> list[pd.DataFrame]:
    return job.pipeline.raw_forecasts(history, job.issues)


def fill_track_records(
    history: pd.DataFrame,
    fitted: list[dict[str, Forecaster]],
    origins_of_fit: list[pd.DatetimeIndex],
    fanout: Fanout,
    tasks: int,
    description: str,
) -> int:
    """Make every raw forecast the origins will read (the origins and their calibration issues) in
    at most `tasks` runs of consecutive issues per fitted model, through `fanout`, and keep them in
    each forecaster's track record. The expensive sampling then runs on every worker at once, where
    forecasting origin after origin would wait for each calibration issue in turn; the numbers are
    the same. Returns the number of raw forecasts made."""
    owners: list[KeepsRawForecasts] = []
    jobs: list[RawForecastJob] = []
    for models, origins in zip(fitted, origins_of_fit, strict=True):
        for forecaster in models.values():
            if not hasattr(forecaster, "missing_raw_issues"):
                continue
            issues = forecaster.missing_raw_issues(origins)
            for run in consecutive_runs(len(issues), tasks):
                owners.append(forecaster)
                jobs.append(RawForecastJob(forecaster.pipeline, issues[run]))
    if not jobs:
        return 0
    for owner, frames in zip(owners, fanout(raw_forecasts, history, jobs, description), strict=True):
        owner.keep(frames)
    return sum(len(job.issues) for job in jobs)


def consecutive_runs(count: int, tasks: int) -> list[np.ndarray]:
    """Positions 0…count-1 in at most `tasks` runs of consecutive positions, as even as can be."""
    return np.array_split(np.arange(count), min(tasks, count)) if count else []


def origins_of_fits(origins: pd.DatetimeIndex, refits: list[bool]) -> list[pd.DatetimeIndex]:
    """The origins each fit forecasts: from its training origin up to the next one."""
    fit_of = np.cumsum(refits) - 1
    return [origins[fit_of == k] for k in range(int(sum(refits)))]


def origin_jobs(
    origins: pd.DatetimeIndex,
    refits: list[bool],
    fitted: list[dict[str, Forecaster]],
    tasks: int,
    peak: PeakHours = NORDIC_PEAK,
) -> list[OriginJob]:
    """The origins of each fit in at most `tasks` runs of consecutive origins."""
    jobs = []
    for models, mine in zip(fitted, origins_of_fits(origins, refits), strict=True):
        jobs += [OriginJob(models, tuple(mine[run]), peak) for run in consecutive_runs(len(mine), tasks)]
    return jobs


def backtest(
    history: pd.DataFrame,
    factories: Mapping[str, ForecasterFactory],
    origins: pd.DatetimeIndex,
    *,
    retrain_every: RetrainEvery = "once",
    period: str,
    by_zone: bool = False,
    fanout: Fanout = in_process,
    origin_tasks: int = 1,
    peak: PeakHours = NORDIC_PEAK,
) -> BacktestResult:
    """Run `factories` (name → new forecaster; must include the seasonal-naive reference) over
    `origins` and score them on the prices in `history`. Three stages go through `fanout` (serially
    here by default, or on worker processes or a cluster; the numbers are the same): the fits (one
    per training origin), the raw forecasts the origins read (`fill_track_records`, in
    `origin_tasks` runs per fit), then the origins of each fit in `origin_tasks` runs. Forecasters
    that make calendar products have them scored next to the product baselines
    (`forecasting.evaluation.product_scores`), with `peak` as the peak hours."""
    if SEASONAL_NAIVE not in factories:
        raise ValueError(f"the backtest needs the {SEASONAL_NAIVE!r} reference for rMAE")
    refits = [is_training_origin(position, retrain_every) for position in range(len(origins))]
    training = origins[refits]
    stages: dict[str, float] = {}
    began = perf_counter()
    fitted = fanout(fit_forecasters, history, [(factories, origin) for origin in training], f"{period} fits")
    stages["fits"] = perf_counter() - began
    began = perf_counter()
    made = fill_track_records(
        history, fitted, origins_of_fits(origins, refits), fanout, origin_tasks, f"{period} raw forecasts"
    )
    stages["raw forecasts"] = perf_counter() - began
    began = perf_counter()
    jobs = origin_jobs(origins, refits, fitted, origin_tasks, peak)
    outputs = fanout(forecast_origins, history, jobs, f"{period} origins")
    forecasts = pd.concat([output.forecasts for output in outputs], ignore_index=True)
    products = pd.concat([output.products for output in outputs], ignore_index=True)
    stages["origins"] = perf_counter() - began
    forecasts.insert(0, PERIOD, period)
    forecasts.insert(1, MODEL, forecasts.pop(MODEL))
    hours = forecasts[DELIVERY_HOUR]  # the prices of the forecast hours, not of every year
    actuals = history[(history[SERIES_COL] == PRICE) & history[DELIVERY_HOUR].between(hours.min(), hours.max())]
    metrics = score(forecasts, actuals, model_col=MODEL, by_zone=by_zone)
    product_metrics = pd.DataFrame()
    if not products.empty:
        products.insert(0, PERIOD, period)
        products.insert(1, MODEL, products.pop(MODEL))
        product_metrics = score_products(products)
    return BacktestResult(
        period, origins, pd.DatetimeIndex(training), forecasts, metrics, stages, made, products, product_metrics
    )


def run_backtest(
    history: pd.DataFrame,
    forecaster_factory: ForecasterFactory | None,
    start: date | str,
    end: date | str,
    *,
    timezones: Mapping[str, str],
    retrain_every: RetrainEvery = "once",
    zones: Sequence[str] | None = None,
    model_name: str = "model",
    period: str | None = None,
    origin_weekday: int = 0,
    origin_time: time = time(12, 0),
    origin_timezone: str = "Europe/Oslo",
    by_zone: bool = False,
    fanout: Fanout = in_process,
    origin_tasks: int = 1,
    peak: PeakHours = NORDIC_PEAK,
) -> BacktestResult:
    """Weekly-origin backtest of `forecaster_factory()` (None: the baselines alone) for the local dates
    [start, end), next to `SeasonalNaive`, `SeasonalNaiveEmpirical` and `LevelShapeNaive` on the same
    issues and hours.

    `timezones` maps zone → wall clock (settings.zones); `zones` restricts the run (default: every
    zone with prices in `history`); `period` labels the run (default "<start>_<end>"); `fanout`
    and `origin_tasks`: how the fits and origins run; `peak`: the products' peak hours (see `backtest`).
    """
    if model_name in (SEASONAL_NAIVE, SEASONAL_NAIVE_EMPIRICAL, LEVEL_SHAPE_NAIVE):
        raise ValueError(f"model_name {model_name!r} is taken by a baseline of the same run")
    if zones is not None:
        unknown = set(zones) - set(history[ZONE].unique())
        if unknown:
            raise MissingData(f"no history for zones {sorted(unknown)}")
        history = history[history[ZONE].isin(zones)]
    origins = weekly_origins(start, end, origin_weekday, origin_time, origin_timezone)
    if origins.empty:
        raise UsageError(f"no weekly origins between {start} and {end}")
    factories: dict[str, ForecasterFactory] = {}
    if forecaster_factory is not None:
        factories[model_name] = forecaster_factory
    factories[SEASONAL_NAIVE] = lambda: SeasonalNaive(timezones)
    factories[SEASONAL_NAIVE_EMPIRICAL] = lambda: SeasonalNaiveEmpirical(timezones)
    factories[LEVEL_SHAPE_NAIVE] = lambda: LevelShapeNaive(timezones)
    label = period or f"{pd.Timestamp(start):%Y-%m-%d}_{pd.Timestamp(end):%Y-%m-%d}"
    return backtest(
        history, factories, origins, retrain_every=retrain_every, period=label, by_zone=by_zone, fanout=fanout,
        origin_tasks=origin_tasks, peak=peak,
    )


class Prefitted:
    """A fitted forecaster whose `fit` keeps what it learnt: scores a given model (e.g. a new
    challenger and the champion) on recent origins without retraining it."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster

    def fit(self, history: pd.DataFrame) -> Prefitted:
        return self

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> pd.DataFrame | ForecastRecord:
        return self.forecaster.predict(history, issued_at)
