"""The forecasting model: ONE scikit-learn style estimator that turns a tidy series frame into
four-week hourly sample paths of every configured zone.

    covariate preparation  →  StandardScaler  →  PCA  →  GluonTS DeepAR (torch)  ─┐ quantile average
    (windows: extended covariates + calendar;   →  LightGBM deciles (optional)  ─┘ in DeepAR's paths
     anchored price target and anchor features)

One global DeepAR model serves all zones (zone = static categorical with a learned embedding).
Training and forecasting build their windows with the same code, from what was published at each
issue instant. `predict` returns the RAW sample paths (`forecasting.paths.RawForecast`); the
spread calibration of the hourly marginals and of the calendar products are stages after the model
(`forecasting.model.forecaster` composes them with a track record of raw forecasts).
`predict` never changes the estimator; persistence goes through `fitted_state` / `from_state`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from forecasting.clock import WEEK, WEEK_HOURS, weekly_issues_before
from forecasting.errors import MissingData
from forecasting.features.covariates import LAST_YEAR, NEWEST_SEARCH_HOURS, RATIO_HOURS, pivot_zone
from forecasting.features.hydro import with_derived_covariates
from forecasting.features.windows import (
    ANCHOR_FEATURES,
    Window,
    WindowMaker,
    covariate_feature_names,
)
from forecasting.forecast_frame import forecast_hours, forecast_start
from forecasting.model.calibration import (
    DELIVERED_AFTER,
    HORIZON_WEEKS,
    NEWEST_CALIBRATION_WEEKS,
)
from forecasting.model.combination import combine_paths
from forecasting.model.gbm import QuantileMember, TrainingRows, feature_names
from forecasting.paths import PATH_DTYPE, IssuePaths, RawForecast, ZonePaths
from forecasting.publication import known_at
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOURS,
    PRICE,
    PUBLISHED_AT,
    SERIES_COL,
    VALUE,
    ZONE,
)

if TYPE_CHECKING:
    from gluonts.torch.model.predictor import PyTorchPredictor

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Europe/Oslo"
DEFAULT_COVARIATES: tuple[str, ...] = ("load_da", "generation_da", "wind_onshore_da")
SCALER_ROWS = 200_000  # covariate rows, drawn at random from all training windows, that fit scaler and PCA
MEMBER_ROWS = 100_000  # horizon hours, drawn at random from all training windows, that fit the LightGBM member
# History a window reads before its issue: the last-year covariate extension (52 weeks + the 2-week
# ratio) behind the oldest published covariate hour it may use (8 weeks back), plus a margin.
WINDOW_LOOKBACK = pd.Timedelta(hours=LAST_YEAR + RATIO_HOURS + NEWEST_SEARCH_HOURS) + WEEK
REQUIRED_COLUMNS = [ZONE, SERIES_COL, DELIVERY_HOUR, VALUE, PUBLISHED_AT]
NOT_IN_MODEL_ID = ("model_id", "n_jobs")  # parameters that do not change what the model forecasts


@dataclass(frozen=True)
class FittedState:
    """Everything `fit` learns: what an artifact stores and `from_state` restores."""

    zones: dict[str, str]
    covariate_features: tuple[str, ...]
    anchor_features: tuple[str, ...]
    scaler: StandardScaler
    pca: PCA
    predictors: list[PyTorchPredictor]
    calibration_from: pd.Timestamp
    training_range: tuple[str, str]
    training_data_hash: str
    model_id: str
    member: QuantileMember | None = None  # the LightGBM member (gbm_weight > 0)


class DeepARPipeline(BaseEstimator):
    """Global DeepAR price forecaster for several bidding zones (implements `Forecaster`).

    zones: zone → IANA time zone (the local clock of calendar features and `local_time`); None
        takes every zone in the training history on Europe/Oslo.
    covariates: series used as covariates, extended beyond their published horizon.
    n_components: PCA components kept, an int count or a float explained-variance fraction.
    context_length, lags_seq: DeepAR's conditioning range and target lags (hours). Weekly lags only
        by default: with short lags (1, 24, …) every step feeds the network its own samples and the
        672-step paths drift off the level (R&D, 2019 weekly origins: rMAE 1.31 vs seasonal naive
        with lags 1,2,24,48,168; 0.88 with 168,336).
    origin_stride_days: one training window per zone every this many days (issued at `issue_hour`
        local time, like the daily flow).
    ensemble_size: DeepAR networks trained with consecutive seeds; their sample paths are pooled
        (num_samples in all), which steadies the median and the spread.
    calibration_weeks: how many weekly out-of-sample forecasts calibrate the decile spread per
        horizon week: the newest ones before each issue whose horizon is delivered, never before the
        weeks held out of training at the end of the fit history; 0 keeps the raw sample deciles.
    gbm_weight: the weight of the LightGBM quantile member (`forecasting.model.gbm`) in the
        quantile average of each hour's marginal (`forecasting.model.combination`); 0 trains none.
    n_jobs: ensemble members trained at once, each in its own process of cores // n_jobs torch
        threads (None: every member at once, up to two per CPU core: on CPU a small LSTM gains less
        from a second thread than from a second member beside it). Does not change the model id.
    """

    def __init__(
        self,
        zones: Mapping[str, str] | None = None,
        covariates: tuple[str, ...] = DEFAULT_COVARIATES,
        n_components: int | float = 0.95,
        context_length: int = 168,
        lags_seq: tuple[int, ...] = (168, 336),
        embedding_dimension: int = 3,
        hidden_size: int = 32,
        num_layers: int = 2,
        dropout_rate: float = 0.1,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        num_batches_per_epoch: int = 100,
        max_epochs: int = 10,
        num_samples: int = 200,
        ensemble_size: int = 1,
        origin_stride_days: int = 2,
        issue_hour: int = 14,
        calibration_weeks: int = 16,
        gbm_weight: float = 0.0,
        random_state: int = 0,
        n_jobs: int | None = None,
        model_id: str | None = None,
    ) -> None:
        self.zones = zones
        self.covariates = covariates
        self.n_components = n_components
        self.context_length = context_length
        self.lags_seq = lags_seq
        self.embedding_dimension = embedding_dimension
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout_rate = dropout_rate
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.num_batches_per_epoch = num_batches_per_epoch
        self.max_epochs = max_epochs
        self.num_samples = num_samples
        self.ensemble_size = ensemble_size
        self.origin_stride_days = origin_stride_days
        self.issue_hour = issue_hour
        self.calibration_weeks = calibration_weeks
        self.gbm_weight = gbm_weight
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.model_id = model_id

    # --- fit -----------------------------------------------------------------------------------

    def fit(self, history: pd.DataFrame) -> Self:
        """Learn scaler, PCA and the DeepAR ensemble from a tidy series frame."""
        from forecasting.model import deepar  # torch and lightning load only where a model trains

        history = self._validate(history)
        self.check_params()
        zones = self._zone_timezones(history)
        makers = self._makers(history, zones)
        calibration_from = self._calibration_from(makers)
        issues = [(maker, issue) for maker in makers.values() for issue in self._training_issues(maker, calibration_from)]
        with tempfile.TemporaryDirectory(prefix="spotcast-windows-") as folder:
            scaler, pca = self._fit_preprocessing(issues, folder)
            writer = deepar.TrainingSetWriter(folder)
            rows = TrainingRows(len(self.covariates), -(-MEMBER_ROWS // len(issues)), self.random_state)
            zone_index = {zone: k for k, zone in enumerate(zones)}
            for maker, issue in issues:
                if (window := maker.window(issue, with_future=True)) is not None:
                    writer.add(window, _dynamic(scaler, pca, window), zone_index[window.zone])
                    if self.gbm_weight > 0:
                        rows.add(window)
            training = writer.close()
            if training.count == 0:
                raise MissingData(self._too_short())
            log.info(
                "%d training windows over %d zones; PCA keeps %d of %d covariate features",
                training.count, len(zones), pca.n_components_, len(covariate_feature_names(self.covariates)),
            )
            seeds = [self.random_state + member for member in range(self.ensemble_size)]
            predictors = deepar.train_ensemble(
                self._estimator_kwargs(len(zones), pca), training, seeds, self._workers()
            )
        member = None
        if self.gbm_weight > 0:
            member = QuantileMember.fit(rows, feature_names(tuple(self.covariates)), self.random_state)

        hours = history.loc[history[ZONE].isin(list(zones)), DELIVERY_HOUR]
        data = data_hash(history, tuple(zones), (PRICE, *self.covariates))
        self._set_state(
            FittedState(
                zones=dict(zones),
                covariate_features=covariate_feature_names(tuple(self.covariates)),
                anchor_features=ANCHOR_FEATURES,
                scaler=scaler,
                pca=pca,
                predictors=predictors,
                calibration_from=calibration_from,
                training_range=(str(hours.min()), str(hours.max())),
                training_data_hash=data,
                model_id=self.model_id or f"deepar-{self._model_hash(data)[:12]}",
                member=member,
            )
        )
        return self

    def check_params(self) -> None:
        """Refuse parameter values `set_params` takes but no fit can use (scikit-learn checks in fit;
        the configuration checks earlier, through this)."""
        if not 1 <= self.ensemble_size <= self.num_samples:
            raise ValueError(
                f"ensemble_size = {self.ensemble_size!r} must be 1…num_samples ({self.num_samples}): "
                "the members share the num_samples sample paths"
            )
        if not 0.0 <= self.gbm_weight <= 1.0:
            raise ValueError(f"gbm_weight = {self.gbm_weight!r} must be within 0…1 (the member's share)")

    def _too_short(self) -> str:
        past_weeks = -(-self._past_length // WEEK_HOURS)
        weeks = self.calibration_weeks + NEWEST_CALIBRATION_WEEKS + past_weeks + HORIZON_WEEKS
        return (
            f"history too short: no complete training window; needs prices of at least ~{weeks} weeks per "
            f"zone ({self.calibration_weeks} weekly issues held out to calibrate the deciles, "
            f"{past_weeks} weeks of context, the 4-week horizon); two years or more forecast better"
        )

    def _workers(self) -> int:
        if multiprocessing.current_process().daemon:
            return 1  # a daemon (a Dask worker) may not start processes: members train here in turn
        cores = os.cpu_count() or 1
        return max(1, min(self.ensemble_size, self.n_jobs or 2 * cores))

    def _model_hash(self, data: str) -> str:
        """sha256 of the training data hash and every parameter that shapes the forecasts."""
        params = {k: v for k, v in self.get_params().items() if k not in NOT_IN_MODEL_ID}
        if not self.gbm_weight:
            del params["gbm_weight"]  # models without the member keep the ids they had before it
        return hashlib.sha256((data + json.dumps(params, default=str, sort_keys=True)).encode()).hexdigest()

    def _validate(self, history: pd.DataFrame) -> pd.DataFrame:
        """`history` checked, with the rows of the derived covariates it asks for added (every fit and
        forecast path comes through here, before any cut by publication or time)."""
        missing = [c for c in REQUIRED_COLUMNS if c not in history.columns]
        if missing:
            raise ValueError(f"history lacks columns {missing}; expected a tidy series frame")
        unknown_zones = set(self.zones or ()) - set(history[ZONE].unique())
        if unknown_zones:
            raise MissingData(f"history holds no rows of configured zones {sorted(unknown_zones)}")
        return with_derived_covariates(history, tuple(self.covariates))

    def _zone_timezones(self, history: pd.DataFrame) -> dict[str, str]:
        if self.zones is not None:
            return dict(self.zones)
        return {zone: DEFAULT_TIMEZONE for zone in sorted(history[ZONE].unique())}

    def _makers(
        self, history: pd.DataFrame, zones: Mapping[str, str], until: pd.Timestamp | None = None
    ) -> dict[str, WindowMaker]:
        series = (PRICE, *self.covariates)
        return {
            zone: WindowMaker(pivot_zone(history, zone, tz, series, until), self.covariates, self._past_length)
            for zone, tz in zones.items()
        }

    @property
    def _past_length(self) -> int:
        return self.context_length + max(self.lags_seq)

    def _issue_instants(self, maker: WindowMaker, stride_days: int) -> pd.DatetimeIndex:
        """Daily-flow issue instants (issue_hour local) every `stride_days` across the grid."""
        hours = maker.grid.hours
        tz = maker.grid.timezone
        first = hours[0].tz_convert(tz).normalize() + pd.Timedelta(days=1, hours=self.issue_hour)
        last = hours[-1].tz_convert(tz).normalize()
        days = pd.date_range(first.tz_localize(None), last.tz_localize(None), freq=f"{stride_days}D")
        return days.tz_localize(tz, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")

    def _training_issues(self, maker: WindowMaker, until: pd.Timestamp) -> pd.DatetimeIndex:
        """Issue instants whose whole horizon is delivered before `until` (the calibration start)."""
        issues = self._issue_instants(maker, self.origin_stride_days)
        return issues[issues + DELIVERED_AFTER <= until]

    def _calibration_from(self, makers: dict[str, WindowMaker]) -> pd.Timestamp:
        """Start of the weeks held out of training: the last `calibration_weeks` weekly issues whose
        horizons are delivered, so the first forecasts after the fit can be calibrated."""
        end = min(m.grid.hours[-1] for m in makers.values())
        weekly = self._issue_instants(next(iter(makers.values())), 7)
        weekly = weekly[weekly + DELIVERED_AFTER <= end]
        if not self.calibration_weeks or len(weekly) == 0:
            return end + pd.Timedelta(hours=1)
        return weekly[max(0, len(weekly) - self.calibration_weeks)]

    def _fit_preprocessing(self, issues: list[tuple[WindowMaker, pd.Timestamp]], folder: str) -> tuple[StandardScaler, PCA]:
        """Scaler and PCA on SCALER_ROWS covariate rows drawn at random from all training windows.
        The rows go through a float64 file in `folder` read back in chunks, so neither the windows
        nor all their rows are ever in memory; the draw is that of `default_rng(random_state).choice`
        over the rows of every window in order."""
        path = f"{folder}/covariates.f64"
        count, width = 0, 0
        with open(path, "wb") as handle:
            for maker, issue in issues:
                if (window := maker.window(issue, with_future=True)) is not None:
                    handle.write(np.ascontiguousarray(window.covariate_features, dtype="float64").tobytes())
                    count, width = count + len(window.covariate_features), window.covariate_features.shape[1]
        if count == 0:
            raise MissingData(self._too_short())
        chosen = np.arange(count)
        if count > SCALER_ROWS:
            chosen = np.random.default_rng(self.random_state).choice(count, SCALER_ROWS, replace=False)
        rows = _rows_of_file(path, width, chosen)
        names = covariate_feature_names(tuple(self.covariates))
        empty = [name for name, none in zip(names, np.isnan(rows).all(axis=0), strict=True) if none]
        if empty:
            log.warning("no value of %s in the training windows: left out of this model", ", ".join(empty))
        with np.errstate(invalid="ignore"):  # an empty column's mean is NaN (said above); it scales to 0
            scaler = StandardScaler().fit(rows)
        scaled = np.nan_to_num(scaler.transform(rows))  # a missing covariate → its mean
        return scaler, PCA(n_components=self.n_components, random_state=self.random_state).fit(scaled)

    def _estimator_kwargs(self, num_zones: int, pca: PCA) -> dict:
        return {
            "num_features": int(pca.n_components_) + len(ANCHOR_FEATURES),
            "num_zones": num_zones,
            "embedding_dimension": self.embedding_dimension,
            "context_length": self.context_length,
            "lags_seq": list(self.lags_seq),
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dropout_rate": self.dropout_rate,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "num_batches_per_epoch": self.num_batches_per_epoch,
            "max_epochs": self.max_epochs,
            "num_samples": self.num_samples,
        }

    # --- state (persistence: forecasting.model.artifact) ----------------------------------------

    def fitted_state(self) -> FittedState:
        self._check_fitted()
        return FittedState(
            zones=self.zones_,
            covariate_features=self.covariate_features_,
            anchor_features=self.anchor_features_,
            scaler=self.scaler_,
            pca=self.pca_,
            predictors=self.predictors_,
            calibration_from=self.calibration_from_,
            training_range=self.training_range_,
            training_data_hash=self.training_data_hash_,
            model_id=self.model_id_,
            member=self.member_,
        )

    @classmethod
    def from_state(cls, params: dict[str, Any], state: FittedState) -> DeepARPipeline:
        pipeline = cls(**params)
        pipeline._set_state(state)
        return pipeline

    def _set_state(self, state: FittedState) -> None:
        self.zones_ = dict(state.zones)
        self.covariate_features_ = tuple(state.covariate_features)
        self.anchor_features_ = tuple(state.anchor_features)
        self.scaler_ = state.scaler
        self.pca_ = state.pca
        self.predictors_ = list(state.predictors)
        self.calibration_from_ = state.calibration_from
        self.training_range_ = tuple(state.training_range)
        self.training_data_hash_ = state.training_data_hash
        self.model_id_ = state.model_id
        self.member_ = state.member
        if self.gbm_weight > 0 and state.member is None:
            raise ValueError(f"gbm_weight = {self.gbm_weight} but the fitted state holds no LightGBM member")

    def _check_fitted(self) -> None:
        if not hasattr(self, "predictors_"):
            raise NotFittedError("DeepARPipeline is not fitted yet: call fit(history) or load an artifact")

    # --- predict -------------------------------------------------------------------------------

    @property
    def history_needed(self) -> pd.Timedelta:
        """How far before an issue `predict` reads history (see `history_needed`)."""
        return history_needed(self.calibration_weeks)

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> RawForecast:
        """The raw sample paths of every fitted zone from the rows of `history` public at
        `issued_at`, with the input status they were made from. Uncalibrated: the spread stages run
        after the model (`forecasting.model.forecaster`). The estimator itself is left unchanged."""
        issued_at = pd.Timestamp(issued_at).tz_convert("UTC")
        known, makers = self._known_makers(history, issued_at)
        windows = self._windows(makers, issued_at, strict=True)
        paths = self._sampled_paths(windows, known, issued_at)
        return RawForecast(paths, pd.concat([w.input_status() for w in windows], ignore_index=True))

    def input_status(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> pd.DataFrame:
        """The input status `predict` reports at `issued_at`, without sampling (for a forecast whose
        raw paths are stored in a track record)."""
        _, makers = self._known_makers(history, issued_at)
        return pd.concat([w.input_status() for w in self._windows(makers, issued_at, strict=True)], ignore_index=True)

    def _known_makers(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, WindowMaker]]:
        self._check_fitted()
        issued_at = pd.Timestamp(issued_at).tz_convert("UTC")
        history = self._validate(history)
        known = known_at(history[history[DELIVERY_HOUR] >= issued_at - self.history_needed], issued_at)
        present = set(known[ZONE].unique())
        for zone in self.zones_:
            if zone not in present:
                raise MissingData(f"history holds no rows of fitted zone {zone} published by {issued_at}")
        return known, self._makers(known, self.zones_, until=issued_at + pd.Timedelta(hours=HORIZON_HOURS + 72))

    def calibration_issues(self, issued_at: pd.Timestamp, clock: str) -> pd.DatetimeIndex:
        """The newest `calibration_weeks` weekly issues before `issued_at` on the local `clock`
        (same weekday and hour) whose horizon is delivered by then and which the network never
        trained on: the out-of-sample evidence of the spread stages."""
        self._check_fitted()
        weeks_back = np.arange(NEWEST_CALIBRATION_WEEKS, NEWEST_CALIBRATION_WEEKS + self.calibration_weeks)
        issues = weekly_issues_before(issued_at, clock, weeks_back)
        return issues[(issues + DELIVERED_AFTER <= issued_at) & (issues >= self.calibration_from_)]

    def raw_forecasts(self, history: pd.DataFrame, issues: pd.DatetimeIndex) -> list[IssuePaths]:
        """The raw paths of `issues` (those a zone cannot be forecast at are left out): the same
        paths `predict` makes, since a raw forecast depends only on the model and on what was
        published by its issue. A track record filled with these ahead of the forecasts, in
        parallel chunks of issues, is how a backtest uses every core."""
        self._check_fitted()
        issues = pd.DatetimeIndex(issues).tz_convert("UTC").sort_values()
        if issues.empty:
            return []
        history = self._validate(history)
        first, last = issues[0], issues[-1]
        known = known_at(history[history[DELIVERY_HOUR] >= first - self.history_needed], last)
        makers = self._makers(known, self.zones_, until=last + pd.Timedelta(hours=HORIZON_HOURS + 72))
        made = (self._raw_paths(makers, known, issue) for issue in issues)
        return [paths for paths in made if paths is not None]

    def _windows(self, makers: dict[str, WindowMaker], issued_at: pd.Timestamp, strict: bool) -> list[Window] | None:
        """The forecast window of every zone at `issued_at`; a zone without one raises when `strict`,
        else there are none (None)."""
        windows = []
        for zone, maker in makers.items():
            window = maker.window(issued_at)
            if window is None:
                if not strict:
                    return None
                raise MissingData(
                    f"{zone}: cannot forecast at {issued_at}: needs the prices of the "
                    f"{self._past_length} hours before the forecast start, published within the last week"
                )
            windows.append(window)
        return windows

    def _raw_paths(
        self, makers: dict[str, WindowMaker], known: pd.DataFrame, issued_at: pd.Timestamp
    ) -> IssuePaths | None:
        """Raw paths of every zone issued at `issued_at`; None when a zone has no window."""
        windows = self._windows(makers, issued_at, strict=False)
        return None if windows is None else self._sampled_paths(windows, known, issued_at)

    def _sampled_paths(self, windows: list[Window], known: pd.DataFrame, issued_at: pd.Timestamp) -> IssuePaths:
        zones = [
            self._zone_paths(window, known, issued_at, samples)
            for window, samples in zip(windows, self._anchored_samples(windows), strict=True)
        ]
        return IssuePaths(issued_at, self.model_id_, tuple(zones))

    def _anchored_samples(self, windows: list[Window]) -> list[np.ndarray]:
        """Anchored sample paths of forecast windows; the same windows always give the same paths."""
        from forecasting.model import deepar

        zone_index = {zone: k for k, zone in enumerate(self.zones_)}
        entries = [
            deepar.to_entry(w, _dynamic(self.scaler_, self.pca_, w), zone_index[w.zone])
            for w in windows
        ]
        shares = np.array_split(np.arange(self.num_samples), len(self.predictors_))
        members = [
            deepar.sample_paths(predictor, entries, len(share), self.random_state)
            for predictor, share in zip(self.predictors_, shares, strict=True)
        ]
        return [np.concatenate(paths) for paths in zip(*members, strict=True)]

    def _zone_paths(
        self, window: Window, known: pd.DataFrame, issued_at: pd.Timestamp, samples: np.ndarray
    ) -> ZonePaths:
        hours = forecast_hours(forecast_start(known, window.zone, issued_at))
        if not hours.equals(window.forecast_hours):
            raise ValueError(f"{window.zone}: forecast start disagrees with the anchored window")
        return ZonePaths(
            zone=window.zone,
            timezone=self.zones_[window.zone],
            issued_at=issued_at,
            delivery_hours=hours,
            values=self._combined(window, window.horizon_prices(samples)).astype(PATH_DTYPE),
            model_id=self.model_id_,
        )

    def _combined(self, window: Window, paths: np.ndarray) -> np.ndarray:
        """DeepAR's paths (EUR/MWh) with each hour's marginal averaged with the member's deciles."""
        if self.member_ is None:
            return paths
        return combine_paths(paths, self.member_.deciles(window, len(self.covariates)), self.gbm_weight)


def history_needed(calibration_weeks: int) -> pd.Timedelta:
    """How far before an issue a forecast reads history, its calibration issues included; older
    rows are ignored, so a forecast is the same however much history the caller passes."""
    return (NEWEST_CALIBRATION_WEEKS + calibration_weeks) * WEEK + WINDOW_LOOKBACK


def _rows_of_file(path: str, width: int, chosen: np.ndarray, chunk_rows: int = 100_000) -> np.ndarray:
    """Rows `chosen` (in that order) of a file of float64 rows `width` wide, read chunk by chunk."""
    order = np.argsort(chosen, kind="stable")
    wanted = chosen[order]
    picked = np.empty((len(chosen), width))
    with open(path, "rb") as handle:
        begin = 0
        while (chunk := np.fromfile(handle, dtype="float64", count=chunk_rows * width)).size:
            chunk = chunk.reshape(-1, width)
            lo, hi = np.searchsorted(wanted, [begin, begin + len(chunk)])
            picked[lo:hi] = chunk[wanted[lo:hi] - begin]
            begin += len(chunk)
    rows = np.empty_like(picked)
    rows[order] = picked
    return rows


def _dynamic(scaler: StandardScaler, pca: PCA, window: Window) -> np.ndarray:
    """The network's dynamic features of a window: PCA of the scaled covariates, then the anchor
    features (already in anchored units, so they bypass the PCA)."""
    scaled = np.nan_to_num(scaler.transform(window.covariate_features))
    return np.column_stack([pca.transform(scaled), window.anchor_features])


def data_hash(history: pd.DataFrame, zones: tuple[str, ...], series: tuple[str, ...]) -> str:
    """sha256 of the (zone, series, hour, value) rows the model was trained on, order-independent."""
    rows = history[history[ZONE].isin(zones) & history[SERIES_COL].isin(series)]
    rows = rows[[ZONE, SERIES_COL, DELIVERY_HOUR, VALUE]].sort_values([ZONE, SERIES_COL, DELIVERY_HOUR])
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
