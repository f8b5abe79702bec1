"""Metrics on hand-computed examples, against GluonTS, and the `score` table."""

import numpy as np
import pandas as pd
import pytest
from gluonts.ev.metrics import MeanWeightedSumQuantileLoss

from forecasting.evaluation.metrics import (
    crps_from_quantiles,
    interval_coverage,
    interval_width,
    mae,
    pinball_loss,
    relative_mae,
    rmse,
    score,
    weighted_quantile_loss,
)
from forecasting.forecast_frame import forecast_hours, make_forecast_frame
from forecasting.schema import DELIVERY_HOUR, QUANTILE_LEVELS, VALUE, ZONE

ISSUED_AT = pd.Timestamp("2019-03-04 11:00", tz="UTC")
START = pd.Timestamp("2019-03-04 23:00", tz="UTC")


def flat_forecast(price: float, model_id: str) -> pd.DataFrame:
    """A 672-hour forecast of NO1 with every decile at `price`."""
    hours = forecast_hours(START)
    point = np.full(len(hours), price)
    deciles = np.repeat(point[:, None], len(QUANTILE_LEVELS), axis=1)
    return make_forecast_frame("NO1", "Europe/Oslo", ISSUED_AT, hours, point, deciles, model_id)


def flat_actuals(price: float) -> pd.DataFrame:
    return pd.DataFrame({ZONE: "NO1", DELIVERY_HOUR: forecast_hours(START), VALUE: price})


def test_pinball_loss_matches_hand_computed_values():
    actual = np.array([10.0, 10.0])
    forecast = np.array([8.0, 13.0])
    np.testing.assert_allclose(pinball_loss(actual, forecast, 0.1), [0.2, 2.7])
    np.testing.assert_allclose(pinball_loss(actual, forecast, 0.9), [1.8, 0.3])


def test_point_metrics_match_hand_computed_values():
    actual, point, naive = np.array([10.0, 20.0]), np.array([11.0, 18.0]), np.array([13.0, 14.0])
    assert mae(actual, point) == pytest.approx(1.5)
    assert rmse(actual, point) == pytest.approx(np.sqrt(2.5))
    assert relative_mae(actual, point, naive) == pytest.approx(1.5 / 4.5)


def test_weighted_quantile_loss_matches_hand_computed_example():
    # Σ|y| = 15; summed pinball per level: 0.1 → 0.3, 0.5 → 0.5, 0.9 → 0.8.
    actual = np.array([10.0, -5.0])
    quantiles = np.array([[8.0, 10.0, 13.0], [-6.0, -4.0, 0.0]])
    expected = (2 * 0.3 / 15 + 2 * 0.5 / 15 + 2 * 0.8 / 15) / 3
    assert weighted_quantile_loss(actual, quantiles, (0.1, 0.5, 0.9)) == pytest.approx(expected)


def test_weighted_quantile_loss_matches_gluonts_on_random_data():
    rng = np.random.default_rng(7)
    actual = rng.normal(40, 30, 500)  # some negative prices, as in the data
    quantiles = np.sort(rng.normal(40, 30, (500, len(QUANTILE_LEVELS))), axis=1)
    data = {"label": actual, **{str(q): quantiles[:, i] for i, q in enumerate(QUANTILE_LEVELS)}}
    gluonts_wql = MeanWeightedSumQuantileLoss(quantile_levels=QUANTILE_LEVELS)(axis=None).update(data).get()
    assert weighted_quantile_loss(actual, quantiles) == pytest.approx(float(gluonts_wql), rel=1e-12)


def test_crps_from_quantiles_matches_hand_computed_example():
    # mean pinball per level: 0.1 → 0.15, 0.5 → 0.25, 0.9 → 0.4.
    actual = np.array([10.0, -5.0])
    quantiles = np.array([[8.0, 10.0, 13.0], [-6.0, -4.0, 0.0]])
    expected = (2 * 0.15 + 2 * 0.25 + 2 * 0.4) / 3
    assert crps_from_quantiles(actual, quantiles, (0.1, 0.5, 0.9)) == pytest.approx(expected)


def test_crps_of_a_point_forecast_is_its_mae():
    rng = np.random.default_rng(3)
    actual, point = rng.normal(40, 30, 200), rng.normal(40, 30, 200)
    deciles = np.repeat(point[:, None], len(QUANTILE_LEVELS), axis=1)
    assert crps_from_quantiles(actual, deciles) == pytest.approx(mae(actual, point))


def test_interval_coverage_counts_bounds_as_inside():
    actual = np.array([1.0, 5.0, 10.0, 20.0])
    lower, upper = np.array([0.0, 5.0, 11.0, 0.0]), np.array([2.0, 6.0, 12.0, 19.0])
    assert interval_coverage(actual, lower, upper) == 0.5


def test_interval_width_is_mean_distance_between_bounds():
    assert interval_width(np.array([0.0, 5.0, 11.0]), np.array([2.0, 6.0, 15.0])) == pytest.approx(7 / 3)


def test_score_has_overall_and_horizon_week_rows_per_model():
    forecasts = pd.concat([flat_forecast(12.0, "seasonal_naive"), flat_forecast(11.0, "model")])
    table = score(forecasts, flat_actuals(10.0))
    assert table[["model", "horizon_week", "hours"]].values.tolist() == [
        ["seasonal_naive", "all", 672],
        ["model", "all", 672],
        ["seasonal_naive", "days 1-7", 168],
        ["model", "days 1-7", 168],
        ["seasonal_naive", "days 8-14", 168],
        ["model", "days 8-14", 168],
        ["seasonal_naive", "days 15-28", 336],
        ["model", "days 15-28", 336],
    ]


def test_score_rmae_is_mae_relative_to_seasonal_naive():
    forecasts = pd.concat([flat_forecast(12.0, "seasonal_naive"), flat_forecast(11.0, "model")])
    table = score(forecasts, flat_actuals(10.0)).set_index(["model", "horizon_week"])
    assert table.loc[("model", "all"), "rmae"] == pytest.approx(0.5)
    assert table.loc[("seasonal_naive", "all"), "rmae"] == 1.0


def test_score_skips_hours_without_a_price():
    forecasts = pd.concat([flat_forecast(12.0, "seasonal_naive"), flat_forecast(11.0, "model")])
    table = score(forecasts, flat_actuals(10.0).iloc[1:])
    assert table.loc[table["horizon_week"] == "all", "hours"].tolist() == [671, 671]


def test_score_by_zone_adds_zone_rows():
    forecasts = flat_forecast(12.0, "seasonal_naive")
    table = score(forecasts, flat_actuals(10.0), by_zone=True)
    assert sorted(set(table["zone"])) == ["NO1", "all"]
