"""Covariate extension beyond the published horizon: only data public at issue time, reported."""

import numpy as np
import pandas as pd
import pytest

from forecasting.features.covariates import (
    HOURS_EXTENDED,
    LAST_YEAR_SCALED,
    METHOD,
    MISSING,
    NEWEST_PUBLISHED_HOUR,
    WEEK_PROFILE,
    extend_covariate,
    input_status,
    pivot_zone,
)
from forecasting.schema import DELIVERY_HOUR, PUBLISHED_AT, SERIES_COL, VALUE, ZONE

TZ = "Europe/Oslo"
ISSUED = pd.Timestamp("2020-03-02 13:00", tz="UTC")


def tidy(series: str, hours: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    """Day-ahead style rows: each hour published 14 h before it starts."""
    return pd.DataFrame(
        {
            ZONE: "NO1",
            SERIES_COL: series,
            DELIVERY_HOUR: hours,
            VALUE: values.astype(float),
            PUBLISHED_AT: hours - pd.Timedelta(hours=14),
        }
    )


@pytest.fixture
def load_history() -> pd.DataFrame:
    hours = pd.date_range("2018-12-01", "2020-04-30", freq="h", tz="UTC")
    values = 1000 + 100 * np.sin(np.arange(len(hours)) * 2 * np.pi / 24)
    return tidy("load_da", hours, values)


def window(grid, start: pd.Timestamp, hours: int) -> tuple[int, int]:
    lo = grid.index_of(start)
    return lo, lo + hours


def test_extension_ignores_values_published_after_issue(load_history):
    later = load_history[PUBLISHED_AT] > ISSUED
    tampered = load_history.assign(**{VALUE: np.where(later, -999.0, load_history[VALUE])})
    results = []
    for frame in (load_history, tampered):
        grid = pivot_zone(frame, "NO1", TZ, ("load_da",))
        lo, hi = window(grid, ISSUED - pd.Timedelta(days=7), 24 * 35)
        results.append(extend_covariate(grid, "load_da", ISSUED.value, lo, hi, LAST_YEAR_SCALED).values)
    np.testing.assert_array_equal(results[0], results[1])
    assert not (results[0] == -999.0).any()


def test_extension_reports_newest_published_hour_and_hours_extended(load_history):
    grid = pivot_zone(load_history, "NO1", TZ, ("load_da",))
    lo, hi = window(grid, ISSUED - pd.Timedelta(days=7), 24 * 35)
    extended = extend_covariate(grid, "load_da", ISSUED.value, lo, hi, LAST_YEAR_SCALED)
    status = input_status(grid, {"load_da": extended}).iloc[0]
    newest = ISSUED + pd.Timedelta(hours=14)  # published 14 h ahead
    assert status[NEWEST_PUBLISHED_HOUR] == newest
    assert status[HOURS_EXTENDED] == hi - 1 - grid.index_of(newest)
    assert status[METHOD] == LAST_YEAR_SCALED


def test_extension_falls_back_to_week_profile_without_last_year(load_history):
    recent = load_history[load_history[DELIVERY_HOUR] >= "2020-01-01"]
    grid = pivot_zone(recent, "NO1", TZ, ("load_da",))
    lo, hi = window(grid, ISSUED - pd.Timedelta(days=7), 24 * 35)
    extended = extend_covariate(grid, "load_da", ISSUED.value, lo, hi, LAST_YEAR_SCALED)
    assert extended.method == WEEK_PROFILE
    assert not np.isnan(extended.values).any()


def test_week_profile_repeats_the_recent_daily_shape(load_history):
    grid = pivot_zone(load_history, "NO1", TZ, ("load_da",))
    lo, hi = window(grid, ISSUED - pd.Timedelta(days=7), 24 * 21)  # ends before the DST switch
    extended = extend_covariate(grid, "load_da", ISSUED.value, lo, hi, WEEK_PROFILE)
    truth = grid.values["load_da"][lo:hi]
    np.testing.assert_allclose(extended.values, truth, atol=1e-6)  # the synthetic load is purely daily


def test_covariate_never_published_is_reported_missing(load_history):
    grid = pivot_zone(load_history, "NO1", TZ, ("load_da", "wind_onshore_da"))
    lo, hi = window(grid, ISSUED - pd.Timedelta(days=7), 24 * 35)
    extended = extend_covariate(grid, "wind_onshore_da", ISSUED.value, lo, hi, WEEK_PROFILE)
    assert extended.method == MISSING
    assert extended.newest is None
    assert np.isnan(extended.values).all()
