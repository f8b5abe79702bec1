"""The second member: LightGBM quantile regressors of the anchored price, one per decile.

It learns from the pipeline's own windows (`forecasting.features.windows`), so it sees exactly the
vintage-honest inputs DeepAR sees at each issue: the extended covariates, the calendar and the
anchor (level, scale and weekly shape of the prices published by the issue). Every row is one
horizon hour of one window: a direct forecast of that hour, no recursion over 672 steps. Its
target is the anchored price z = (price − baseline) / scale, so 2019 at 40 EUR/MWh and the crisis at
200 look alike and z maps back to EUR/MWh exactly (affine and increasing per hour: deciles map to
deciles). Features are dimensionless for the same reason: covariates as z-scores against the
window's own past two weeks, past prices in anchored units.

The boosters persist in LightGBM's own text format (`save` / `load`): plain numbers, no code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecasting import progress
from forecasting.clock import WEEK_HOURS
from forecasting.features.calendar import CALENDAR_FEATURES, YEAR_COS, YEAR_SIN
from forecasting.features.windows import ANCHOR_FEATURES, Window
from forecasting.schema import HORIZON_HOURS, QUANTILE_COLUMNS, QUANTILE_LEVELS

PAST_FEATURES: tuple[str, ...] = (
    "last_day",  # mean anchored price of the newest 24 published hours
    "last_week",  # … of the newest week
    "volatility",  # their standard deviation over the newest week
    "same_hour_last_week",  # the anchored price a week (or two) before the hour, where published
    "same_hour_two_weeks",
)
# Not the season of the year: with eight years of history, trees split on it (and on the price
# regime) to recall what each past autumn did; on the validation periods that lost 9–14 % CRPS
# against the same member without (2018, 2021-H2). DeepAR keeps them: it cannot memorise that way.
CALENDAR = tuple(name for name in CALENDAR_FEATURES if name not in (YEAR_SIN, YEAR_COS))
_CALENDAR_COLUMNS = [CALENDAR_FEATURES.index(name) for name in CALENDAR]
NORMALISE_HOURS = 2 * WEEK_HOURS  # the past a covariate's z-score is taken against (at most)
# LightGBM's documented defaults (learning rate 0.1, 31 leaves), except: leaves of 2,000 rows (the ~18
# rows of one window are about one observation, so a leaf spans ~100 issues), 63 feature bins and one thread
# (the quantile objective re-sorts each leaf's residuals every round: ~20 ms a round at 100,000
# rows on one core; a second thread lost 3× on a busy 2-core machine).
BOOSTER_PARAMS = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 2000,
    "max_bin": 63,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "num_threads": 1,
    "verbose": -1,
}
ROUNDS = 150


def feature_names(covariates: tuple[str, ...]) -> tuple[str, ...]:
    return (*covariates, *CALENDAR, *ANCHOR_FEATURES, *PAST_FEATURES)


def horizon_features(window: Window, covariates: int) -> np.ndarray:
    """The member's features of a window's HORIZON_HOURS forecast hours (hours × feature_names):
    `covariates` is how many leading covariate-feature columns are covariates (the rest: calendar)."""
    start = len(window.covariate_features) - HORIZON_HOURS  # the forecast start within the window
    past = window.target[:start]
    cov = window.covariate_features
    recent = cov[max(0, start - NORMALISE_HOURS) : start, :covariates]
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # a covariate with no past: NaN
        mean, std = np.nanmean(recent, axis=0), np.nanstd(recent, axis=0)
    z = (cov[start:, :covariates] - mean) / np.where(std > 0, std, 1.0)
    week = past[-WEEK_HOURS:]
    summary = [_mean(past[-24:]), _mean(week), _std(week)]
    columns = [
        z,
        cov[start:, covariates:][:, _CALENDAR_COLUMNS],
        window.anchor_features[start:],
        np.repeat([summary], HORIZON_HOURS, axis=0),
        _same_hour(past, weeks=1),
        _same_hour(past, weeks=2),
    ]
    return np.column_stack(columns).astype("float64")


def _same_hour(past: np.ndarray, weeks: int) -> np.ndarray:
    """Per forecast hour, the anchored price `weeks` weeks before its hour of the week in the last
    week of `past` (a column; NaN where the window's past is shorter)."""
    back = len(past) - weeks * WEEK_HOURS + np.arange(HORIZON_HOURS) % WEEK_HOURS
    if back[0] < 0:
        return np.full((HORIZON_HOURS, 1), np.nan)
    return past[back, None]


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def _std(values: np.ndarray) -> float:
    return float(np.nanstd(values)) if np.isfinite(values).any() else math.nan


class TrainingRows:
    """Collects a random `per_window` horizon hours of each training window (features, anchored
    target): windows a day apart are near copies, so a sample of their hours says what all do."""

    def __init__(self, covariates: int, per_window: int, random_state: int) -> None:
        self.covariates = covariates
        self.per_window = min(per_window, HORIZON_HOURS)
        self.rng = np.random.default_rng(random_state)
        self.features: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def add(self, window: Window) -> None:
        start = len(window.covariate_features) - HORIZON_HOURS
        hours = self.rng.choice(HORIZON_HOURS, self.per_window, replace=False)
        target = window.target[start + hours]
        keep = np.isfinite(target)
        self.features.append(horizon_features(window, self.covariates)[hours[keep]])
        self.targets.append(target[keep])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.features), np.concatenate(self.targets)


@dataclass(frozen=True)
class QuantileMember:
    """One fitted LightGBM booster per decile level (QUANTILE_LEVELS), of the anchored price."""

    boosters: tuple  # lightgbm.Booster, in QUANTILE_LEVELS order
    features: tuple[str, ...]

    @classmethod
    def fit(cls, rows: TrainingRows, features: tuple[str, ...], random_state: int) -> QuantileMember:
        import lightgbm  # loads only where the member trains or forecasts

        x, y = rows.arrays()
        data = lightgbm.Dataset(x, y, feature_name=list(features), params={"max_bin": BOOSTER_PARAMS["max_bin"]})
        boosters = []
        for level in progress.track(QUANTILE_LEVELS, "training the LightGBM member (deciles)"):
            params = {**BOOSTER_PARAMS, "objective": "quantile", "alpha": level, "seed": random_state}
            boosters.append(lightgbm.train(params, data, num_boost_round=ROUNDS))
        return cls(tuple(boosters), features)

    def anchored_deciles(self, window: Window, covariates: int) -> np.ndarray:
        """Deciles × forecast hours of the window's anchored price, non-crossing (each hour's
        predictions sorted: the rearrangement of Chernozhukov et al. 2010, which never scores worse)."""
        x = horizon_features(window, covariates)
        predicted = np.stack([booster.predict(x, num_threads=1) for booster in self.boosters])
        return np.sort(predicted, axis=0)

    def deciles(self, window: Window, covariates: int) -> np.ndarray:
        """Deciles × forecast hours in EUR/MWh."""
        return window.horizon_prices(self.anchored_deciles(window, covariates))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for column, booster in zip(QUANTILE_COLUMNS, self.boosters, strict=True):
            booster.save_model(str(folder / f"{column}.txt"))

    @classmethod
    def load(cls, folder: Path, features: tuple[str, ...]) -> QuantileMember:
        import lightgbm

        try:
            boosters = tuple(lightgbm.Booster(model_file=str(folder / f"{c}.txt")) for c in QUANTILE_COLUMNS)
        except lightgbm.basic.LightGBMError as exc:  # a missing or damaged file
            raise ValueError(f"{folder}: unreadable LightGBM booster ({exc})") from exc
        if any(tuple(booster.feature_name()) != features for booster in boosters):
            raise ValueError(f"{folder}: the boosters' features differ from the artifact's {list(features)}")
        return cls(boosters, features)
