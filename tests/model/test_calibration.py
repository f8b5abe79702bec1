"""The spread calibration stage on hand-made forecast frames: fit on past outcomes, apply to a new one."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from forecasting.forecast_frame import forecast_hours, make_forecast_frame
from forecasting.model.calibration import HORIZON_WEEKS, SpreadCalibration, weekly_issues_before
from forecasting.schema import DELIVERY_HOUR, HORIZON_HOURS, QUANTILE_COLUMNS, VALUE, ZONE

ISSUED = pd.Timestamp("2023-03-06 11:00", tz="UTC")


def frame(issued_at: pd.Timestamp, median: float, half_width: float) -> pd.DataFrame:
    """A forecast whose deciles are evenly spaced: p10/p90 at median ∓ half_width."""
    hours = forecast_hours(issued_at.ceil("D") + pd.Timedelta(days=1))
    offsets = np.linspace(-half_width, half_width, len(QUANTILE_COLUMNS))
    return make_forecast_frame(
        "NO1", "Europe/Oslo", issued_at, hours,
        mean=np.full(HORIZON_HOURS, median), quantiles=median + np.tile(offsets, (HORIZON_HOURS, 1)),
        model_id="m",
    )


def prices(forecast: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({ZONE: forecast[ZONE], DELIVERY_HOUR: forecast[DELIVERY_HOUR], VALUE: values})


def test_band_is_widened_until_it_holds_80_percent_of_the_outcomes():
    past = frame(ISSUED, median=50.0, half_width=10.0)
    outcomes = 50.0 + np.tile(np.linspace(-20.0, 20.0, 168), HORIZON_WEEKS)  # 80 % within ± 16
    calibration = SpreadCalibration().fit(past, prices(past, outcomes))
    assert calibration.factors_ == pytest.approx(np.full(HORIZON_WEEKS, 1.6), abs=0.02)
    applied = calibration.apply(frame(ISSUED + pd.Timedelta(days=7), 60.0, 10.0))
    assert applied["p90"].iloc[0] == pytest.approx(60.0 + 10.0 * calibration.factors_[0])
    assert applied["p50"].eq(60.0).all()  # the median never moves


def test_a_week_without_outcomes_keeps_the_raw_band():
    past = frame(ISSUED, median=50.0, half_width=10.0)
    outcomes = np.where(np.arange(HORIZON_HOURS) < 168, 55.0, np.nan)  # only week 1 delivered
    factors = SpreadCalibration().fit(past, prices(past, outcomes)).factors_
    assert factors[0] == pytest.approx(0.5)
    assert (factors[1:] == 1.0).all()


def test_apply_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        SpreadCalibration().apply(frame(ISSUED, 50.0, 10.0))


def test_weekly_issues_keep_the_local_hour_across_dst():
    issued = pd.Timestamp("2023-04-03 12:00", tz="UTC")  # 14:00 summer time in Oslo
    issues = weekly_issues_before(issued, "Europe/Oslo", np.array([1, 5]))
    assert list(issues.tz_convert("Europe/Oslo").strftime("%a %H:%M")) == ["Mon 14:00", "Mon 14:00"]
    assert issues[1] == pd.Timestamp("2023-02-27 13:00", tz="UTC")  # winter time: one hour later in UTC
