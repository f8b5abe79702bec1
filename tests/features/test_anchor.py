"""The price anchor: a robust weekly shape, the newest level, only prices public at issue time."""

import numpy as np
import pandas as pd
import pytest

from forecasting.clock import WEEK_HOURS as WEEK
from forecasting.features.anchor import LEVEL_HOURS, SHAPE_WEEKS, price_anchor, weekly_shape
from forecasting.features.calendar import hour_of_week
from forecasting.features.covariates import pivot_zone
from forecasting.schema import DELIVERY_HOUR, PRICE, PUBLISHED_AT, SERIES_COL, VALUE, ZONE

TZ = "Europe/Oslo"
PATTERN = 10 * np.sin(np.arange(WEEK) * 2 * np.pi / 24) + np.where(np.arange(WEEK) >= 120, -8.0, 0.0)


def prices(hours: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    """Day-ahead style price rows, each hour published 14 h before it starts."""
    return pd.DataFrame(
        {
            ZONE: "NO1",
            SERIES_COL: PRICE,
            DELIVERY_HOUR: hours,
            VALUE: values,
            PUBLISHED_AT: hours - pd.Timedelta(hours=14),
        }
    )


def weekly_prices(hours: pd.DatetimeIndex, levels: np.ndarray) -> np.ndarray:
    """PATTERN on the local clock plus one level per consecutive week."""
    keys = hour_of_week(hours, TZ)
    return levels[np.arange(len(hours)) // WEEK] + PATTERN[keys]


def anchor_at(history: pd.DataFrame, issued_at: pd.Timestamp):
    grid = pivot_zone(history, "NO1", TZ, (PRICE,))
    return grid, price_anchor(grid, issued_at.value, grid.index_of(issued_at.floor("h")))


def test_weekly_shape_ignores_each_weeks_level_and_one_spiky_week():
    hours = pd.date_range("2019-01-07", periods=SHAPE_WEEKS * WEEK, freq="h", tz=TZ).tz_convert("UTC")
    values = weekly_prices(hours, np.linspace(20, 90, SHAPE_WEEKS))
    values[3 * WEEK + 40 : 3 * WEEK + 60] += 500.0  # a scarcity spike in week 4
    shape = weekly_shape(values, hour_of_week(hours, TZ))
    np.testing.assert_allclose(shape, PATTERN - PATTERN.mean(), atol=1e-9)


def test_weekly_shape_of_too_short_a_history_is_flat():
    hours = pd.date_range("2019-01-07", periods=100, freq="h", tz="UTC")
    assert not weekly_shape(np.ones(100), hour_of_week(hours, TZ)).any()


def test_level_is_that_of_the_newest_two_days_and_the_transform_round_trips():
    hours = pd.date_range("2019-01-07", periods=10 * WEEK, freq="h", tz=TZ).tz_convert("UTC")
    values = weekly_prices(hours, np.full(10, -5.0))  # negative prices pass through
    values[-LEVEL_HOURS:] += 30.0
    issued_at = hours[-1] - pd.Timedelta(hours=10)  # the last day is already published
    grid, anchor = anchor_at(prices(hours, values), issued_at)
    assert anchor.start == len(hours)
    assert anchor.level == pytest.approx(25.0 + PATTERN.mean())  # shape has mean 0
    keys = grid.hour_of_week[-WEEK:]
    z = anchor.to_anchored(values[-WEEK:], keys)
    np.testing.assert_allclose(anchor.to_price(z, keys), values[-WEEK:], atol=1e-9)
    assert anchor.scale > 1.0


def test_anchor_ignores_prices_published_after_the_issue():
    hours = pd.date_range("2019-01-07", periods=10 * WEEK, freq="h", tz="UTC")
    history = prices(hours, weekly_prices(hours, np.arange(10.0) * 7))
    issued_at = hours[8 * WEEK] + pd.Timedelta(minutes=30)
    later = history[PUBLISHED_AT] > issued_at
    tampered = history.assign(**{VALUE: np.where(later, 999.0, history[VALUE])})
    first, second = (anchor_at(frame, issued_at)[1] for frame in (history, tampered))
    assert (first.start, first.level, first.scale) == (second.start, second.level, second.scale)
    np.testing.assert_array_equal(first.shape, second.shape)


def test_shape_follows_the_local_clock_across_the_spring_dst_day():
    # 2019-03-31 has 23 local hours: the shape must still be keyed by local hour, not UTC offset
    hours = pd.date_range("2019-02-04", "2019-04-08", freq="h", tz=TZ, inclusive="left").tz_convert("UTC")
    values = weekly_prices(hours, np.full(len(hours) // WEEK + 1, 40.0))
    issued_at = hours[-1] - pd.Timedelta(hours=10)
    grid, anchor = anchor_at(prices(hours, values), issued_at)
    np.testing.assert_allclose(anchor.baseline(grid.hour_of_week), values, atol=1e-9)


def test_no_anchor_without_a_price_published_in_the_last_week():
    hours = pd.date_range("2019-01-07", periods=4 * WEEK, freq="h", tz="UTC")
    history = prices(hours, weekly_prices(hours, np.full(4, 30.0)))
    _, anchor = anchor_at(history, hours[-1] + pd.Timedelta(days=9))
    assert anchor is None
