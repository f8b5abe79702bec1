"""Training job: read what the lake knew at the training instant, fit the pipeline, save the
artifact, score it on recent weekly issues next to the baselines (and the champion), record the run,
and promote it when it is the first model or beats the champion by the configured margin."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.clock import weekly_issues_before
from forecasting.config import ConfigError, Settings
from forecasting.errors import MissingData
from forecasting.evaluation.backtest import Prefitted, backtest
from forecasting.evaluation.baselines import (
    SEASONAL_NAIVE,
    SEASONAL_NAIVE_EMPIRICAL,
    SeasonalNaive,
    SeasonalNaiveEmpirical,
)
from forecasting.evaluation.metrics import MODEL
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import read_series
from forecasting.lake.track_record import LakeTrackRecord, TrackRecord
from forecasting.model import registry
from forecasting.model.artifact import ArtifactFormatError, ArtifactMismatchError
from forecasting.model.calibration import NEWEST_CALIBRATION_WEEKS
from forecasting.model.forecaster import CalibratedForecaster
from forecasting.model.pipeline import DeepARPipeline
from forecasting.schema import PRICE

log = logging.getLogger("spotcast.train")

VALIDATION_WEEKS = 4  # recent weekly issues, fully delivered before the training instant
CHALLENGER, CHAMPION = "challenger", "champion"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_id: str
    artifact: str
    training_seconds: float
    metrics: dict[str, float]
    promoted: bool
    decision: str


def build_pipeline(settings: Settings) -> DeepARPipeline:
    """A new, unfitted pipeline for the configured zones and [model.params]."""
    pipeline = DeepARPipeline(zones=settings.zone_timezones)
    try:
        pipeline = pipeline.set_params(**settings.model.params)
        pipeline.check_params()  # before the history is read, as a configuration error
    except ValueError as exc:
        raise ConfigError(f"[model.params]: {exc}") from None
    if "covariates" not in settings.model.params:  # named ones are checked when the file is loaded
        supplied = {series for feed in settings.enabled_feeds().values() for series in feed.series}
        unsupplied = [series for series in pipeline.covariates if series not in supplied]
        if unsupplied:
            log.warning(
                "the default covariates %s include %s, which no enabled feed supplies: the model learns "
                "without them; set covariates = %s under [model.params], or add them to an enabled feed's series",
                list(pipeline.covariates),
                unsupplied,
                [series for series in pipeline.covariates if series in supplied],
            )
    return pipeline


def forecaster_of(
    settings: Settings, pipeline: DeepARPipeline, track_record: TrackRecord | None = None
) -> CalibratedForecaster:
    """The configured forecaster around `pipeline`: calibration issues on the schedule's clock,
    the configured products, raw paths kept in `track_record` (default: this process only)."""
    return CalibratedForecaster(
        pipeline,
        track_record,
        clock=settings.schedule.timezone,
        products=settings.products,
        zone_prior_issues=settings.model.zone_prior_issues,
    )


def model_series(pipeline: DeepARPipeline) -> list[str]:
    return [PRICE, *pipeline.covariates]


def validation_origins(settings: Settings, as_of: pd.Timestamp) -> pd.DatetimeIndex:
    """The last VALIDATION_WEEKS weekly issues (as-of's local weekday and hour) whose four-week
    horizon was delivered by `as_of`: the newest calibration issues of a forecast at `as_of`, so
    their raw forecasts in the track record serve that forecast's calibration as well."""
    weeks_back = np.arange(NEWEST_CALIBRATION_WEEKS, NEWEST_CALIBRATION_WEEKS + VALIDATION_WEEKS)
    return weekly_issues_before(as_of, settings.schedule.timezone, weeks_back)[::-1]


def score_recent(
    settings: Settings, history: pd.DataFrame, models: dict[str, DeepARPipeline], as_of: pd.Timestamp
) -> pd.DataFrame:
    """Overall metrics of `models` and both baselines on the same recent weekly issues. The models'
    raw forecasts of these issues (and of their calibration issues) go to the lake's track record."""
    timezones = settings.zone_timezones
    record = LakeTrackRecord(LakeFS.of(settings))
    factories = {
        name: (lambda m=model: Prefitted(forecaster_of(settings, m, record))) for name, model in models.items()
    }
    factories[SEASONAL_NAIVE] = lambda: SeasonalNaive(timezones)
    factories[SEASONAL_NAIVE_EMPIRICAL] = lambda: SeasonalNaiveEmpirical(timezones)
    result = backtest(history, factories, validation_origins(settings, as_of), period="validation")
    overall = result.metrics[result.metrics["horizon_week"] == "all"]
    return overall.set_index(MODEL)


def _metrics_of(table: pd.DataFrame, name: str) -> dict[str, float]:
    row = table.loc[name]
    names = ["rmae", "mae", "rmse", "wql", "crps", "coverage_10_90", "width_10_90"]
    metrics = {key: float(row[key]) for key in names}
    metrics["naive_empirical_crps"] = float(table.loc[SEASONAL_NAIVE_EMPIRICAL, "crps"])
    return metrics


def _decide(
    table: pd.DataFrame, has_champion: bool, margin: float, incomparable: str | None = None
) -> tuple[bool, str]:
    """Champion/challenger on the same recent issues: promote when CRPS improves by `margin`.
    A champion this code cannot forecast with (`incomparable` says why) is replaced."""
    if incomparable:
        return True, f"replaces a champion that cannot forecast here: {incomparable}"
    if not has_champion:
        return True, "first model"
    new, old = float(table.loc[CHALLENGER, "crps"]), float(table.loc[CHAMPION, "crps"])
    if new <= old * (1 - margin):
        return True, f"validation CRPS {new:.3f} beats champion {old:.3f} by ≥ {margin:.0%}"
    return False, f"validation CRPS {new:.3f} does not beat champion {old:.3f} by {margin:.0%}"


def train(
    settings: Settings, as_of: pd.Timestamp, tags: dict[str, str] | None = None, promote: bool = True
) -> TrainResult:
    lake = LakeFS.of(settings)
    pipeline = build_pipeline(settings)
    history = read_series(lake, series=model_series(pipeline), zones=settings.zone_names, as_of=as_of)
    if history.empty:
        raise MissingData(f"the lake {settings.lake_root} holds no data published by {as_of}: ingest first")
    log.info("training on %d rows published by %s", len(history), as_of)
    began = time.perf_counter()
    pipeline.fit(history)
    seconds = time.perf_counter() - began
    artifact = registry.save_artifact(settings, pipeline)
    log.info("trained %s in %.0f s → %s", pipeline.model_id_, seconds, artifact)

    models = {CHALLENGER: pipeline}
    incomparable = None
    try:
        models[CHAMPION] = registry.load_champion(lake, settings, as_of)  # the champion then
    except (registry.NoChampion, FileNotFoundError) as exc:
        log.info("no champion to compare with: %s", exc)
    except (ArtifactFormatError, ArtifactMismatchError) as exc:
        incomparable = str(exc)
        log.warning("the champion cannot be compared, the new model replaces it: %s", exc)
    table = score_recent(settings, history, models, as_of)
    metrics = _metrics_of(table, CHALLENGER)
    run_id = registry.record_run(lake, settings, pipeline, artifact, metrics, tags or {}, seconds, as_of)
    promoted, decision = _decide(table, CHAMPION in models, settings.model.promotion_margin, incomparable)
    if promoted and promote:
        registry.promote(lake, run_id, decision, as_of)
    log.info("run %s: %s%s", run_id, decision, "" if promoted and promote else " (not promoted)")
    return TrainResult(
        run_id, pipeline.model_id_, str(artifact), seconds, metrics, promoted and promote, decision
    )
