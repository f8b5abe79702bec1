"""The forecasting core: ONE scikit-learn style estimator that turns a tidy series frame into the
four-week hourly decile forecast of every configured zone.

    covariate preparation  →  StandardScaler  →  PCA  →  GluonTS DeepAR (torch)
    (windows: extended covariates + calendar; anchored price target and anchor features)

One global DeepAR model serves all zones (zone = static categorical with a learned embedding).
Training and forecasting build their windows with the same code, from what was published at each
issue instant. Deciles come from sample paths widened/narrowed per horizon week by spread factors
calibrated at every forecast on the model's own out-of-sample forecasts of the newest weekly issues
whose four weeks are delivered (rolling conformal style): the spread follows the current regime.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
from gluonts.torch.model.predictor import PyTorchPredictor
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from forecasting.errors import MissingData
from forecasting.features.covariates import pivot_zone
from forecasting.features.windows import (
    ANCHOR_FEATURES,
    Window,
    WindowMaker,
    covariate_feature_names,
)
from forecasting.forecast_frame import forecast_hours, forecast_start, make_forecast_frame
from forecasting.model import deepar
from forecasting.publication import known_at
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOURS,
    PRICE,
    PUBLISHED_AT,
    QUANTILE_LEVELS,
    SERIES_COL,
    VALUE,
    ZONE,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Europe/Oslo"
DEFAULT_COVARIATES: tuple[str, ...] = ("load_da", "generation_da", "wind_onshore_da")
HORIZON_WEEKS = HORIZON_HOURS // 168
CALIBRATION_COVERAGE = 0.8  # p10…p90
SCALER_ROWS = 200_000  # rows sampled to fit scaler and PCA
DELIVERED_AFTER = pd.Timedelta(hours=HORIZON_HOURS + 48)  # an issue's horizon is published by then
REQUIRED_COLUMNS = [ZONE, SERIES_COL, DELIVERY_HOUR, VALUE, PUBLISHED_AT]


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
        random_state: int = 0,
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
        self.random_state = random_state
        self.model_id = model_id

    # --- fit -----------------------------------------------------------------------------------

    def fit(self, history: pd.DataFrame) -> Self:
        """Learn scaler, PCA, DeepAR and the decile calibration from a tidy series frame."""
        history = self._validate(history)
        if not 1 <= self.ensemble_size <= self.num_samples:
            raise ValueError(f"ensemble_size must be 1…num_samples, got {self.ensemble_size}")
        self._calibration_cache: dict[str, np.ndarray] = {}  # samples of a previous fit are stale
        zones = self._zone_timezones(history)
        series = (PRICE, *self.covariates)
        makers = {
            zone: WindowMaker(pivot_zone(history, zone, tz, series), self.covariates, self._past_length)
            for zone, tz in zones.items()
        }
        calibration_from = self._calibration_from(makers)
        train_windows = [
            w
            for maker in makers.values()
            for issue in self._training_issues(maker, until=calibration_from)
            if (w := maker.window(issue, with_future=True)) is not None
        ]
        if not train_windows:
            raise MissingData("history too short: no complete training window (needs ≥ ~6 weeks per zone)")

        self.zones_ = dict(zones)
        self.covariate_features_ = covariate_feature_names(tuple(self.covariates))
        self.anchor_features_ = ANCHOR_FEATURES
        self._fit_preprocessing(train_windows)
        log.info(
            "%d training windows over %d zones; PCA keeps %d of %d covariate features",
            len(train_windows), len(zones), self.pca_.n_components_, len(self.covariate_features_),
        )
        entries = [self._entry(w) for w in train_windows]
        self.predictors_ = [self._train_member(entries, member) for member in range(self.ensemble_size)]
        self.calibration_from_ = calibration_from

        hours = history.loc[history[ZONE].isin(list(zones)), DELIVERY_HOUR]
        self.training_range_ = (str(hours.min()), str(hours.max()))
        self.training_data_hash_ = data_hash(history, tuple(zones), series)
        self.model_id_ = self.model_id or f"deepar-{self.training_data_hash_[:12]}"
        return self

    def _train_member(self, entries: list[dict], member: int) -> PyTorchPredictor:
        seed = self.random_state + member
        log.info("ensemble member %d/%d (seed %d)", member + 1, self.ensemble_size, seed)
        return deepar.train(self._estimator_kwargs(), entries, seed)

    def _validate(self, history: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in REQUIRED_COLUMNS if c not in history.columns]
        if missing:
            raise ValueError(f"history lacks columns {missing}; expected a tidy series frame")
        unknown_zones = set(self.zones or ()) - set(history[ZONE])
        if unknown_zones:
            raise MissingData(f"history holds no rows of configured zones {sorted(unknown_zones)}")
        return history

    def _zone_timezones(self, history: pd.DataFrame) -> dict[str, str]:
        if self.zones is not None:
            return dict(self.zones)
        return {zone: DEFAULT_TIMEZONE for zone in sorted(history[ZONE].unique())}

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

    def _calibration_issues(self, issued_at: pd.Timestamp) -> pd.DatetimeIndex:
        """The newest `calibration_weeks` weekly issues before `issued_at` (same weekday and hour)
        whose horizon is delivered by then and which the network never trained on."""
        newest = -(-DELIVERED_AFTER // pd.Timedelta(days=7))  # weeks back to the newest delivered one
        weeks_back = np.arange(newest, newest + self.calibration_weeks)
        issues = issued_at - pd.to_timedelta(7 * weeks_back, unit="D")
        return issues[issues >= self.calibration_from_]

    def _fit_preprocessing(self, windows: list[Window]) -> None:
        rows = np.vstack([w.covariate_features for w in windows])
        rng = np.random.default_rng(self.random_state)
        if len(rows) > SCALER_ROWS:
            rows = rows[rng.choice(len(rows), SCALER_ROWS, replace=False)]
        self.scaler_ = StandardScaler().fit(rows)
        scaled = np.nan_to_num(self.scaler_.transform(rows))  # a missing covariate → its mean
        self.pca_ = PCA(n_components=self.n_components, random_state=self.random_state).fit(scaled)

    def _entry(self, window: Window) -> dict:
        scaled = np.nan_to_num(self.scaler_.transform(window.covariate_features))
        dynamic = np.column_stack([self.pca_.transform(scaled), window.anchor_features])
        zone_index = list(self.zones_).index(window.zone)
        return deepar.to_entry(window, dynamic, zone_index)

    def _estimator_kwargs(self) -> dict:
        return {
            "num_features": int(self.pca_.n_components_) + len(self.anchor_features_),
            "num_zones": len(self.zones_),
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

    def _anchored_samples(self, windows: list[Window]) -> list[np.ndarray]:
        """Anchored sample paths of forecast windows (the training part of a window is cut off)."""
        entries = []
        for window in windows:
            entry = self._entry(window)
            entry["target"] = entry["target"][: self._past_length]
            entries.append(entry)
        shares = np.array_split(np.arange(self.num_samples), len(self.predictors_))
        members = [
            deepar.sample_paths(predictor, entries, len(share), self.random_state)
            for predictor, share in zip(self.predictors_, shares, strict=True)
        ]
        return [np.concatenate(paths) for paths in zip(*members, strict=True)]

    def _spread_factors(self, makers: Mapping[str, WindowMaker], issued_at: pd.Timestamp) -> np.ndarray:
        """Per horizon week, the factor on the sample spread around the median that makes p10–p90
        cover 80 % of the truths of the calibration issues (1.0 where there is nothing to go on).

        Each issue's paths are sampled with the fixed seed, so they do not depend on what was
        sampled before, and kept (by window content) until the next forecast: a rolling backtest or
        a second forecast of the day samples only the issues it has not seen yet."""
        previous = getattr(self, "_calibration_cache", {})  # none yet in a loaded artifact
        current: dict[str, np.ndarray] = {}
        samples, truths = [], []
        for issue in self._calibration_issues(issued_at):
            windows = [w for m in makers.values() if (w := m.window(issue, with_future=True)) is not None]
            if windows:
                key = content_key(windows)
                current[key] = previous[key] if key in previous else np.stack(self._anchored_samples(windows))
                samples.append(current[key])
                truths += [w.target[self._past_length :] for w in windows]
        self._calibration_cache = current
        if not truths:
            log.warning("no delivered out-of-sample issue to calibrate on: raw sample deciles")
            return np.ones(HORIZON_WEEKS)
        return self._calibrate(np.concatenate(samples), np.stack(truths))

    @staticmethod
    def _calibrate(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Spread factors per horizon week from (windows × samples × hours) anchored sample paths
        and the (windows × hours) anchored truths."""
        median = np.median(samples, axis=1)
        low, high = np.quantile(samples, [0.1, 0.9], axis=1)
        # how far out (in units of the own-side half width) each truth lies
        ratio = np.where(
            truth >= median,
            (truth - median) / np.maximum(high - median, 1e-6),
            (median - truth) / np.maximum(median - low, 1e-6),
        )
        weeks = [ratio[:, week * 168 : (week + 1) * 168] for week in range(HORIZON_WEEKS)]
        factors = [np.nanquantile(w, CALIBRATION_COVERAGE) if (~np.isnan(w)).any() else 1.0 for w in weeks]
        return np.asarray(factors, dtype="float64")

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the fitted pipeline to ONE artifact directory (see `forecasting.model.artifact`)."""
        from forecasting.model.artifact import save_pipeline  # the artifact module imports this one

        return save_pipeline(self, path)

    @classmethod
    def load(
        cls, path: str | Path, zones: Iterable[str] | None = None, covariates: Iterable[str] | None = None
    ) -> DeepARPipeline:
        """Read an artifact; raises ArtifactMismatchError if it was trained for other zones/covariates.
        Only load trusted artifacts (the GluonTS/torch part can run code)."""
        from forecasting.model.artifact import load_pipeline

        return load_pipeline(path, zones, covariates)

    # --- predict -------------------------------------------------------------------------------

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> pd.DataFrame:
        """Forecast frame of every fitted zone, from the rows of `history` public at `issued_at`."""
        if not hasattr(self, "predictors_"):
            raise NotFittedError("DeepARPipeline is not fitted yet: call fit(history) or load an artifact")
        issued_at = pd.Timestamp(issued_at).tz_convert("UTC")
        known = known_at(self._validate(history), issued_at)
        series = (PRICE, *self.covariates)
        until = issued_at + pd.Timedelta(hours=HORIZON_HOURS + 72)
        windows, makers = [], {}
        present = set(known[ZONE])
        for zone, tz in self.zones_.items():
            if zone not in present:
                raise MissingData(f"history holds no rows of fitted zone {zone} published by {issued_at}")
            makers[zone] = WindowMaker(pivot_zone(known, zone, tz, series, until), self.covariates, self._past_length)
            window = makers[zone].window(issued_at)
            if window is None:
                raise MissingData(
                    f"{zone}: cannot forecast at {issued_at}: needs the prices of the "
                    f"{self._past_length} hours before the forecast start, published within the last week"
                )
            windows.append(window)
        self.spread_factors_ = self._spread_factors(makers, issued_at)
        log.info("decile spread factors per horizon week: %s", np.round(self.spread_factors_, 2))
        frames = [
            self._forecast_frame(window, known, issued_at, samples)
            for window, samples in zip(windows, self._anchored_samples(windows), strict=True)
        ]
        self.input_status_ = pd.concat([w.input_status() for w in windows], ignore_index=True)
        return pd.concat(frames, ignore_index=True)

    def _forecast_frame(
        self, window: Window, known: pd.DataFrame, issued_at: pd.Timestamp, samples: np.ndarray
    ) -> pd.DataFrame:
        hours = forecast_hours(forecast_start(known, window.zone, issued_at))
        if not hours.equals(window.forecast_hours):
            raise ValueError(f"{window.zone}: forecast start disagrees with the anchored window")
        median = np.median(samples, axis=0)
        factors = np.repeat(self.spread_factors_, 168)
        calibrated = window.horizon_prices(median + factors * (samples - median))
        return make_forecast_frame(
            zone=window.zone,
            timezone=self.zones_[window.zone],
            issued_at=issued_at,
            delivery_hours=hours,
            mean=calibrated.mean(axis=0),
            quantiles=np.quantile(calibrated, QUANTILE_LEVELS, axis=0).T,
            model_id=self.model_id_,
        )


def content_key(windows: list[Window]) -> str:
    """sha256 of what the model sees of these windows (anchored target, covariates)."""
    parts = (w.target.tobytes() + w.covariate_features.tobytes() for w in windows)
    return hashlib.sha256(b"".join(parts)).hexdigest()


def data_hash(history: pd.DataFrame, zones: tuple[str, ...], series: tuple[str, ...]) -> str:
    """sha256 of the (zone, series, hour, value) rows the model was trained on, order-independent."""
    rows = history[history[ZONE].isin(zones) & history[SERIES_COL].isin(series)]
    rows = rows[[ZONE, SERIES_COL, DELIVERY_HOUR, VALUE]].sort_values([ZONE, SERIES_COL, DELIVERY_HOUR])
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
