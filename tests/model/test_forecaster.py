"""The forecaster: the tiny real pipeline's raw paths through the track record and the spread stages."""

import numpy as np
import pandas as pd
import pytest

from forecasting.evaluation.backtest import Prefitted, backtest
from forecasting.evaluation.baselines import SEASONAL_NAIVE, SeasonalNaive
from forecasting.evaluation.product_scores import HOURLY_DECILES, NO_CHANGE
from forecasting.forecast_frame import ForecastRecord
from forecasting.lake.track_record import MemoryTrackRecord
from forecasting.model.calibration import DELIVERED_AFTER, horizon_week
from forecasting.model.forecaster import CalibratedForecaster
from forecasting.publication import known_at
from forecasting.schema import HORIZON_HOURS, PRICE, QUANTILE_COLUMNS, SERIES_COL, ZONE

ISSUED = pd.Timestamp("2019-04-10 12:00", tz="UTC")  # 14:00 in Oslo, after the price auction
CLOCK = "Europe/Oslo"


@pytest.fixture(scope="module")
def record(fitted, history) -> ForecastRecord:
    return CalibratedForecaster(fitted, clock=CLOCK).predict(history, ISSUED)


def test_deciles_are_calibrated_on_delivered_weekly_issues_the_network_never_saw(fitted, record):
    issues = fitted.calibration_issues(ISSUED, CLOCK)
    assert len(issues) == fitted.calibration_weeks
    local, issued_local = issues.tz_convert(CLOCK), ISSUED.tz_convert(CLOCK)
    assert (local.weekday == issued_local.weekday()).all()  # same local weekday and hour, across DST
    assert (local.hour == issued_local.hour).all()
    assert (issues + DELIVERED_AFTER <= ISSUED).all()  # every truth was published by the issue
    assert (issues >= fitted.calibration_from_).all()  # after the training windows' horizons
    assert record.spread_factors.shape == (HORIZON_HOURS // 168,)
    assert (record.spread_factors > 0).all()


def test_calibration_issues_follow_the_clock_not_a_zone(fitted):
    """The clock is a parameter: on UTC the same issue's calibration issues keep its UTC hour."""
    issues = fitted.calibration_issues(ISSUED, "UTC")
    assert (issues.hour == ISSUED.hour).all()
    assert (fitted.calibration_issues(ISSUED, CLOCK).tz_convert(CLOCK).hour == 14).all()


def test_hourly_deciles_are_the_calibrated_paths_deciles(record):
    for zone in record.paths.zones:
        rows = record.frame[record.frame[ZONE] == zone.zone]
        expected = np.quantile(zone.values.astype("float64"), [0.1, 0.5, 0.9], axis=0).T
        np.testing.assert_allclose(rows[["p10", "p50", "p90"]].to_numpy(), expected, rtol=1e-9)


def test_calibration_scales_the_raw_band_by_the_weekly_factor(fitted, history, record):
    raw = fitted.predict(history, ISSUED).frame
    width_raw = (raw["p90"] - raw["p10"]).to_numpy()
    width = (record.frame["p90"] - record.frame["p10"]).to_numpy()
    factor = record.spread_factors[(record.frame["horizon_hour"].to_numpy() - 1) // 168]
    np.testing.assert_allclose(width, factor * width_raw, rtol=1e-4, atol=1e-3)  # float32 paths
    np.testing.assert_allclose(record.frame["p50"], raw["p50"], rtol=1e-5, atol=1e-4)  # the median stays


def test_track_record_keeps_the_forecast_and_its_calibration_issues(fitted, history, record):
    track_record = MemoryTrackRecord()
    forecaster = CalibratedForecaster(fitted, track_record, clock=CLOCK)
    first = forecaster.predict(history, ISSUED)
    for issue in [ISSUED, *fitted.calibration_issues(ISSUED, CLOCK)]:
        assert track_record.get(fitted.model_id_, issue) is not None
    pd.testing.assert_frame_equal(first.frame, record.frame)  # the same whatever was stored before
    again = forecaster.predict(history, ISSUED)  # everything now comes from the record
    pd.testing.assert_frame_equal(again.frame, record.frame)
    pd.testing.assert_frame_equal(again.products.table, record.products.table)


def test_calibration_issues_come_from_the_track_record(fitted, history):
    """A stored past forecast is what the calibration uses: doctored narrow paths widen the spread."""
    track_record = MemoryTrackRecord()
    for paths in fitted.raw_forecasts(history, fitted.calibration_issues(ISSUED, CLOCK)):
        def squeezed(zone):
            median = np.median(zone.values, axis=0)
            return zone.with_values(median + 1e-4 * (zone.values - median))
        track_record.put(fitted.model_id_, paths.map(squeezed))
    widened = CalibratedForecaster(fitted, track_record, clock=CLOCK).predict(history, ISSUED)
    assert (widened.spread_factors > 100).all()


def test_raw_forecasts_made_ahead_give_the_same_forecast(fitted, history, record):
    """A backtest fills the track record ahead, in chunks and other processes; the forecast must
    not change."""
    ahead = CalibratedForecaster(fitted, clock=CLOCK)
    issues = ahead.missing_raw_issues(pd.DatetimeIndex([ISSUED]))
    assert issues[-1] == ISSUED and len(issues) == 1 + fitted.calibration_weeks
    for chunk in (issues[:3], issues[3:]):
        ahead.keep(fitted.raw_forecasts(history, chunk))
    assert ahead.missing_raw_issues(pd.DatetimeIndex([ISSUED])).empty
    pd.testing.assert_frame_equal(ahead.predict(history, ISSUED).frame, record.frame)


def test_products_come_from_the_same_calibrated_paths(record):
    table = record.products.table
    assert set(table[ZONE]) == {"NO1", "NO2"}
    assert {"day", "week"} <= set(table["kind"])
    deciles = table[list(QUANTILE_COLUMNS)].to_numpy()
    assert (np.diff(deciles, axis=1) >= 0).all()
    # a forecast day's base median is the mean of its hours' medians (one set of paths: the hourly
    # deciles of the forecast), and its 10–90 band the product stage's factor × their averaged band
    day = table[(table["kind"] == "day") & (table["load"] == "base") & (table[ZONE] == "NO1")].iloc[0]
    hours = record.frame[(record.frame[ZONE] == "NO1") & record.frame["local_time"].str.startswith(str(day["delivery_start"]))]
    factors = record.product_factors
    factor = factors[(factors["kind"] == "day") & (factors["load"] == "base") & (factors["horizon_week"] == day["horizon_week"])]
    scale = 1.0 if factor.empty else factor["factor"].iloc[0]
    assert day["p50"] == pytest.approx(hours["p50"].mean(), rel=1e-5)
    assert day["p90"] - day["p10"] == pytest.approx(scale * (hours["p90"].mean() - hours["p10"].mean()), rel=1e-4)
    assert day["p50"] == pytest.approx(np.median(record.products.samples[day.name]), rel=1e-9)


def test_product_spread_stage_is_fitted_per_kind_load_and_horizon_week(record):
    factors = record.product_factors
    assert {"kind", "load", "horizon_week", "factor", "outcomes"} <= set(factors.columns)
    assert (factors["factor"] > 0).all()
    assert not factors.duplicated(["kind", "load", "horizon_week"]).any()


def test_a_backtest_scores_products_next_to_both_product_baselines(fitted, history):
    origins = pd.DatetimeIndex(["2019-05-06 10:00", "2019-05-13 10:00"], tz="UTC")  # Mondays 12:00 Oslo
    factories = {
        "deepar": lambda: Prefitted(CalibratedForecaster(fitted, clock=CLOCK)),
        SEASONAL_NAIVE: lambda: SeasonalNaive(fitted.zones_),
    }
    result = backtest(history, factories, origins, period="p")
    products = result.products
    assert set(products["model"]) == {"deepar", NO_CHANGE, HOURLY_DECILES}
    rows = products.groupby("model").size()
    assert rows["deepar"] == rows[NO_CHANGE] == rows[HOURLY_DECILES]  # the same product rows
    weeks = products[(products["kind"] == "week") & products["settlement"].notna()]
    assert not weeks.empty
    # the hourly-decile baseline's mean is the model's mean of hourly means: its band is wider
    model = weeks[weeks["model"] == "deepar"].set_index(["zone", "issued_at", "product"])
    hourly = weeks[weeks["model"] == HOURLY_DECILES].set_index(["zone", "issued_at", "product"])
    assert ((hourly["p90"] - hourly["p10"]) >= (model["p90"] - model["p10"]) - 1e-6).mean() > 0.9
    metrics = result.product_metrics
    assert {"crps", "mae", "coverage_10_90"} <= set(metrics.columns)
    assert ((metrics["model"] == "deepar") & (metrics["kind"] == "week") & (metrics["horizon_week"] == "all")).any()
    assert "Products p" in result.to_markdown()


def test_zone_prior_gives_each_zone_its_own_shrunk_factors(fitted, history):
    """With `zone_prior_issues` every zone's band is its raw band times that zone's factor: its own
    80 % quantile shrunk towards the pooled one (SpreadCalibration), not the pooled factor."""
    forecaster = CalibratedForecaster(fitted, clock=CLOCK, zone_prior_issues=4)
    made = forecaster.predict(history, ISSUED)
    issues = fitted.calibration_issues(ISSUED, CLOCK)
    past = [forecaster.track_record.get(fitted.model_id_, issue) for issue in issues]
    prices = known_at(history[history[SERIES_COL] == PRICE], ISSUED)
    stage = forecaster.hourly_stage(past, prices)
    raw = fitted.predict(history, ISSUED).frame
    week = horizon_week(raw)
    factors = {}
    for zone in ("NO1", "NO2"):
        mine = (raw[ZONE] == zone).to_numpy()
        width_raw = (raw["p90"] - raw["p10"]).to_numpy()[mine]
        width = (made.frame["p90"] - made.frame["p10"]).to_numpy()[mine]
        factors[zone] = stage.factors_of(zone)
        np.testing.assert_allclose(width, factors[zone][week[mine]] * width_raw, rtol=1e-4, atol=1e-3)
    assert not np.allclose(factors["NO1"], factors["NO2"])
    np.testing.assert_allclose(made.spread_factors, stage.factors_)  # the record keeps the pooled ones
