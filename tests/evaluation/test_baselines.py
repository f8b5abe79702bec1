"""Seasonal-naive baselines on synthetic price histories with real publication stamps."""

from datetime import time

import numpy as np
import pandas as pd
import pytest

from forecasting.config import Publication
from forecasting.evaluation.baselines import LevelShapeNaive, SeasonalNaive, SeasonalNaiveEmpirical
from forecasting.features.calendar import hour_of_week
from forecasting.publication import known_at, published_at
from forecasting.schema import (
    DELIVERY_HOUR,
    PRICE,
    PUBLISHED_AT,
    QUANTILE_COLUMNS,
    SERIES_COL,
    UNIT,
    VALUE,
    ZONE,
)

TIMEZONES = {"NO1": "Europe/Oslo"}
PRICE_RULE = Publication(kind="day_ahead", local_time=time(13, 0))
ISSUED_AT = pd.Timestamp("2019-03-04 12:00", tz="Europe/Oslo").tz_convert("UTC")  # a Monday
START = pd.Timestamp("2019-03-05 00:00", tz="Europe/Oslo").tz_convert("UTC")  # first unpublished hour
WEEK = 168


def price_history(values: np.ndarray, weeks_before_start: int) -> pd.DataFrame:
    """NO1 prices from `weeks_before_start` weeks before START, one per hour, stamped as published."""
    first = START - pd.Timedelta(hours=WEEK * weeks_before_start)
    hours = pd.date_range(first, periods=len(values), freq="h")
    return pd.DataFrame(
        {
            ZONE: "NO1",
            SERIES_COL: PRICE,
            DELIVERY_HOUR: hours,
            VALUE: values,
            UNIT: "EUR/MWh",
            PUBLISHED_AT: published_at(hours, PRICE_RULE, "Europe/Oslo"),
        }
    )


def noisy_history(weeks_before_start: int = 10) -> pd.DataFrame:
    """Random prices up to four weeks after START (those are published after ISSUED_AT)."""
    values = np.random.default_rng(11).normal(40, 15, WEEK * (weeks_before_start + 4))
    return price_history(values, weeks_before_start)


def forecast(forecaster: SeasonalNaive, history: pd.DataFrame) -> pd.DataFrame:
    return forecaster.fit(known_at(history, ISSUED_AT)).predict(history, ISSUED_AT)


def test_seasonal_naive_repeats_the_last_published_week():
    history = noisy_history()
    last_week = history.loc[history[DELIVERY_HOUR] < START, VALUE].to_numpy()[-WEEK:]
    result = forecast(SeasonalNaive(TIMEZONES), history)
    assert result[DELIVERY_HOUR].iloc[0] == START
    np.testing.assert_array_equal(result["p50"], np.tile(last_week, 4))


def test_seasonal_naive_deciles_equal_the_point_forecast():
    result = forecast(SeasonalNaive(TIMEZONES), noisy_history())
    for column in QUANTILE_COLUMNS:
        np.testing.assert_array_equal(result[column], result["mean"])


def test_seasonal_naive_interpolates_a_missing_hour_of_the_last_week():
    history = noisy_history()
    gap = START - pd.Timedelta(hours=100)
    one_hour = pd.Timedelta(hours=1)
    neighbours = history.set_index(DELIVERY_HOUR).loc[[gap - one_hour, gap + one_hour]]
    result = forecast(SeasonalNaive(TIMEZONES), history[history[DELIVERY_HOUR] != gap])
    assert result["p50"].iloc[WEEK - 100] == pytest.approx(neighbours[VALUE].mean())


def test_seasonal_naive_ignores_rows_published_after_issue():
    history = noisy_history()
    cut = forecast(SeasonalNaive(TIMEZONES), known_at(history, ISSUED_AT))
    pd.testing.assert_frame_equal(forecast(SeasonalNaive(TIMEZONES), history), cut)


def test_empirical_ignores_rows_published_after_issue():
    history = noisy_history()
    cut = forecast(SeasonalNaiveEmpirical(TIMEZONES, window_weeks=8), known_at(history, ISSUED_AT))
    pd.testing.assert_frame_equal(forecast(SeasonalNaiveEmpirical(TIMEZONES, window_weeks=8), history), cut)


def test_empirical_deciles_shift_the_naive_path_by_past_errors_per_horizon_week():
    # A fixed weekly shape whose level rises by 5 each week: the naive forecast is always 5 × (horizon
    # week) too low, so its error deciles restore the true future exactly.
    weeks = np.arange(-10, 4)
    shape = np.random.default_rng(5).normal(40, 15, WEEK)
    values = np.concatenate([shape + 5.0 * week for week in weeks])
    history = price_history(values, weeks_before_start=10)
    result = forecast(SeasonalNaiveEmpirical(TIMEZONES, window_weeks=8), history)
    future = history.loc[history[DELIVERY_HOUR] >= START, VALUE].to_numpy()
    lift = 5.0 * (np.arange(4 * WEEK) // WEEK + 1)
    np.testing.assert_allclose(result["mean"], future - lift)
    for column in QUANTILE_COLUMNS:
        np.testing.assert_allclose(result[column], future)


def test_empirical_needs_enough_history_for_every_horizon_week():
    with pytest.raises(ValueError, match="horizon week 4"):
        forecast(SeasonalNaiveEmpirical(TIMEZONES, window_weeks=8), noisy_history(weeks_before_start=4))


def test_level_shape_naive_continues_the_newest_level_on_the_local_weekly_shape():
    # Prices = level + a fixed pattern by local hour of the week; the level jumps by 20 two days
    # before START. The forecast keeps the new level and the pattern, also across the DST change of
    # 2019-03-31 inside the horizon.
    pattern = np.random.default_rng(5).normal(0, 10, WEEK)
    hours = pd.date_range(START - pd.Timedelta(hours=WEEK * 10), periods=WEEK * 14, freq="h")
    values = 40.0 + pattern[hour_of_week(hours, "Europe/Oslo")]
    values[(hours >= START - pd.Timedelta(hours=48)) & (hours < START)] += 20.0
    result = forecast(LevelShapeNaive(TIMEZONES), price_history(values, weeks_before_start=10))
    expected = 60.0 + pattern[hour_of_week(pd.DatetimeIndex(result[DELIVERY_HOUR]), "Europe/Oslo")]
    np.testing.assert_allclose(result["p50"], expected, atol=1e-9)
    np.testing.assert_array_equal(result["p10"], result["p90"])


def test_level_shape_naive_ignores_rows_published_after_issue():
    history = noisy_history()
    cut = forecast(LevelShapeNaive(TIMEZONES), known_at(history, ISSUED_AT))
    pd.testing.assert_frame_equal(forecast(LevelShapeNaive(TIMEZONES), history), cut)
