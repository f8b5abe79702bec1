"""The hydro balance as a covariate: the deviation in band widths from real NVE weeks, stamped and
held on the hourly grid only from its publication on."""

import numpy as np
import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.features.covariates import HOLD, extend_covariate, pivot_zone
from forecasting.features.hydro import RESERVOIR_DEVIATION, reservoir_deviation, with_derived_covariates
from forecasting.feeds.replay import ReplayFeed
from forecasting.schema import DELIVERY_HOUR, PRICE, PUBLISHED_AT, RESERVOIR_FILLING, SERIES_COL, VALUE, ZONE

TZ = "Europe/Oslo"


@pytest.fixture(scope="module")
def no2_history() -> pd.DataFrame:
    """NO2's real prices of 2020 and the bundled NVE weeks (1995 on) as the replay serves them."""
    history = ReplayFeed.from_settings(load_settings()).history
    history = history[history[ZONE] == "NO2"]
    hydro = history[SERIES_COL].str.startswith("reservoir_")
    prices = (history[SERIES_COL] == PRICE) & history[DELIVERY_HOUR].between("2020-01-01", "2020-12-31", "left")
    return history[hydro | prices].reset_index(drop=True)


def _week(history: pd.DataFrame, series: str, start: str) -> pd.Series:
    rows = history[(history[SERIES_COL] == series) & (history[DELIVERY_HOUR] == pd.Timestamp(start, tz="UTC"))]
    return rows.iloc[0]


def test_the_deviation_is_filling_minus_median_over_the_band_width_and_starts_with_the_prices(no2_history):
    rows = reservoir_deviation(no2_history)

    week = "2020-03-01 23:00"  # Monday 2 March 2020, 00:00 in Oslo: ISO week 10
    filling = _week(no2_history, RESERVOIR_FILLING, week)
    low, median, high = (_week(no2_history, f"reservoir_normal_{k}", week)[VALUE] for k in ("min", "median", "max"))
    one = _week(rows, RESERVOIR_DEVIATION, week)
    assert one[VALUE] == pytest.approx((filling[VALUE] - median) / (high - low))
    assert one[PUBLISHED_AT] == filling[PUBLISHED_AT]  # public once the week's filling is
    assert rows[DELIVERY_HOUR].min() >= pd.Timestamp("2020-01-01", tz="UTC")  # not back to 1995
    assert rows[VALUE].between(-3, 3).all()  # band widths, not TWh
    assert len(with_derived_covariates(no2_history, (RESERVOIR_DEVIATION,))) == len(no2_history) + len(rows)
    assert with_derived_covariates(no2_history, ("load_da",)) is no2_history


def test_a_zone_without_a_normal_band_has_no_deviation(no2_history):
    filling_only = no2_history[~no2_history[SERIES_COL].str.startswith("reservoir_normal")]
    assert reservoir_deviation(filling_only).empty


def test_the_held_deviation_steps_at_publication_and_holds_over_the_horizon(no2_history):
    history = with_derived_covariates(no2_history, (RESERVOIR_DEVIATION,))
    grid = pivot_zone(history, "NO2", TZ, (PRICE, RESERVOIR_DEVIATION))
    issued = pd.Timestamp("2020-03-11 12:30", tz="UTC")  # Wednesday 13:30 Oslo: week 10 just published
    lo = grid.index_of(pd.Timestamp("2020-02-17 00:00", tz="UTC"))
    hi = lo + 24 * 7 * 8
    held = extend_covariate(grid, RESERVOIR_DEVIATION, issued.value, lo, hi, HOLD)

    deviation = history[history[SERIES_COL] == RESERVOIR_DEVIATION].set_index(DELIVERY_HOUR)[VALUE]
    at = lambda hour: held.values[grid.index_of(pd.Timestamp(hour, tz="UTC")) - lo]  # noqa: E731
    assert at("2020-02-24 05:00") == deviation[pd.Timestamp("2020-02-23 23:00", tz="UTC")]  # week 9
    assert at("2020-03-05 05:00") == deviation[pd.Timestamp("2020-03-01 23:00", tz="UTC")]  # week 10
    # week 11 starts on the 9th but is published on the 18th: after the issue, week 10 holds
    assert (held.values[grid.index_of(pd.Timestamp("2020-03-09 00:00", tz="UTC")) - lo :] == at("2020-03-05 05:00")).all()
    assert held.method == HOLD and not np.isnan(held.values).any()

    before = extend_covariate(grid, RESERVOIR_DEVIATION, (issued - pd.Timedelta(hours=1)).value, lo, hi, HOLD)
    assert before.values[-1] == at("2020-02-24 05:00")  # at 12:30 Oslo week 10 was not public yet
