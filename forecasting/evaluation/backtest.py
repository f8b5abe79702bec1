"""Rolling-origin backtest: weekly issues over a period, each forecaster refitted on schedule on what
was published by its training origin, each forecast made from what was published by its issue, all
scored on the realised prices next to the seasonal-naive baselines computed in the same run.

Results go to Parquet (hive-partitioned by `period` and `model`) and to a markdown report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from time import perf_counter
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecasting import progress
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
from forecasting.evaluation.report import render_markdown
from forecasting.forecast_frame import Forecaster, ForecastRecord, frame_of
from forecasting.publication import known_at
from forecasting.schema import FORECAST_COLUMNS, PRICE, SERIES_COL, ZONE

log = logging.getLogger("spotcast.evaluation")

PERIOD = "period"
RetrainEvery = int | Literal["once"]
ForecasterFactory = Callable[[], Forecaster]


def weekly_origins(
    start: date | str,
    end: date | str,
    weekday: int = 0,
    local_time: time = time(12, 0),
    timezone: str = "Europe/Oslo",
) -> pd.DatetimeIndex:
    """UTC issue instants: every `weekday` (0 = Monday) at `local_time` in `timezone`, for the local
    dates in [start, end). The default, Monday 12:00 Oslo, is before that day's auction result, so
    the forecast starts with Tuesday."""
    days = pd.date_range(pd.Timestamp(start).date(), pd.Timestamp(end).date(), freq="D", inclusive="left")
    days = days[days.weekday == weekday]
    local = days + pd.Timedelta(hours=local_time.hour, minutes=local_time.minute)
    return local.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


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

    def to_markdown(self) -> str:
        title = f"Backtest {self.period}: {len(self.origins)} weekly issues"
        return render_markdown(self.metrics, title=title)

    def write_markdown(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_markdown())
        return path

    def write_parquet(self, destination: str | Path) -> Path:
        """Write `forecasts/` and `metrics/` under `destination`, partitioned period=…/model=…;
        rewriting a period replaces its partitions."""
        root = Path(destination)
        metrics = self.metrics.assign(**{PERIOD: self.period})
        for name, frame in (("forecasts", self.forecasts), ("metrics", metrics)):
            pq.write_to_dataset(
                pa.Table.from_pandas(frame, preserve_index=False),
                root / name,
                partition_cols=[PERIOD, MODEL],
                basename_template="part-{i}.parquet",
                existing_data_behavior="delete_matching",
            )
        return root


def _forecast_origin(
    history: pd.DataFrame,
    factories: Mapping[str, ForecasterFactory],
    fitted: dict[str, Forecaster],
    origin: pd.Timestamp,
    refit: bool,
) -> list[pd.DataFrame]:
    """Every forecaster's forecast issued at `origin`, refitting first when `refit`."""
    known = known_at(history, origin)
    frames = []
    for name, factory in factories.items():
        if refit:
            fitted[name] = factory().fit(known)
        forecast = frame_of(fitted[name].predict(known, origin))
        frames.append(forecast[FORECAST_COLUMNS].assign(**{MODEL: name}))
    return frames


def backtest(
    history: pd.DataFrame,
    factories: Mapping[str, ForecasterFactory],
    origins: pd.DatetimeIndex,
    *,
    retrain_every: RetrainEvery = "once",
    period: str,
    by_zone: bool = False,
) -> BacktestResult:
    """Run `factories` (name → new forecaster; must include the seasonal-naive reference) over
    `origins` and score them on the prices in `history`."""
    if SEASONAL_NAIVE not in factories:
        raise ValueError(f"the backtest needs the {SEASONAL_NAIVE!r} reference for rMAE")
    fitted: dict[str, Forecaster] = {}
    frames, training = [], []
    with progress.task(f"{period} origins", total=len(origins)) as step:
        for position, origin in enumerate(origins):
            began = perf_counter()
            refit = is_training_origin(position, retrain_every)
            if refit:
                training.append(origin)
            frames += _forecast_origin(history, factories, fitted, origin, refit)
            log.debug(
                "%s origin %d/%d %s%s: %d forecasters in %.1f s",
                period, position + 1, len(origins), f"{origin:%Y-%m-%d %H:%M} UTC",
                " (refit)" if refit else "", len(factories), perf_counter() - began,
            )
            step.advance(detail=f"{origin:%Y-%m-%d}{' (refit)' if refit else ''}")
    forecasts = pd.concat(frames, ignore_index=True)
    forecasts.insert(0, PERIOD, period)
    forecasts.insert(1, MODEL, forecasts.pop(MODEL))
    actuals = history[history[SERIES_COL] == PRICE]
    metrics = score(forecasts, actuals, model_col=MODEL, by_zone=by_zone)
    return BacktestResult(period, origins, pd.DatetimeIndex(training), forecasts, metrics)


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
) -> BacktestResult:
    """Weekly-origin backtest of `forecaster_factory()` (None: the baselines alone) for the local dates
    [start, end), next to `SeasonalNaive`, `SeasonalNaiveEmpirical` and `LevelShapeNaive` on the same
    issues and hours.

    `timezones` maps zone → wall clock (settings.zones); `zones` restricts the run (default: every
    zone with prices in `history`); `period` labels the run (default "<start>_<end>").
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
    return backtest(history, factories, origins, retrain_every=retrain_every, period=label, by_zone=by_zone)


class Prefitted:
    """A fitted forecaster whose `fit` keeps what it learnt: scores a given model (e.g. a new
    challenger and the champion) on recent origins without retraining it."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster

    def fit(self, history: pd.DataFrame) -> Prefitted:
        return self

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> pd.DataFrame | ForecastRecord:
        return self.forecaster.predict(history, issued_at)
