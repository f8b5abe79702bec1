"""The spread calibration stages on hand-made forecasts: fit on past outcomes, apply to new paths
(hourly) or product samples (products); the copula step on its own."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from forecasting.clock import weekly_issues_before
from forecasting.forecast_frame import forecast_hours, make_forecast_frame
from forecasting.model.calibration import (
    HORIZON_WEEKS,
    ProductSpreadCalibration,
    SpreadCalibration,
    ensemble_copula_coupling,
)
from forecasting.paths import ZonePaths
from forecasting.products import ProductForecast
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


def paths(issued_at: pd.Timestamp, median: float, half_width: float, samples: int = 101) -> ZonePaths:
    """Paths whose every hour holds evenly spaced prices with p10/p90 at median ∓ half_width,
    shuffled differently per hour (a rank order for the copula to keep)."""
    hours = forecast_hours(issued_at.ceil("D") + pd.Timedelta(days=1))
    spread = np.linspace(-1.25 * half_width, 1.25 * half_width, samples)  # p10 of these is at −half_width
    order = np.random.default_rng(0).permuted(np.tile(np.arange(samples), (HORIZON_HOURS, 1)), axis=1).T
    return ZonePaths("NO1", "Europe/Oslo", issued_at, hours, (median + spread[order]).astype("float32"), "m")


def prices(forecast: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({ZONE: forecast[ZONE], DELIVERY_HOUR: forecast[DELIVERY_HOUR], VALUE: values})


def test_band_is_widened_until_it_holds_80_percent_of_the_outcomes():
    past = frame(ISSUED, median=50.0, half_width=10.0)
    outcomes = 50.0 + np.tile(np.linspace(-20.0, 20.0, 168), HORIZON_WEEKS)  # 80 % within ± 16
    calibration = SpreadCalibration().fit(past, prices(past, outcomes))
    assert calibration.factors_ == pytest.approx(np.full(HORIZON_WEEKS, 1.6), abs=0.02)
    applied = calibration.apply(paths(ISSUED + pd.Timedelta(days=7), 60.0, 10.0)).forecast_frame()
    assert applied["p90"].iloc[0] == pytest.approx(60.0 + 10.0 * calibration.factors_[0], rel=1e-6)
    assert applied["p50"].eq(60.0).all()  # the median never moves


def test_a_week_without_outcomes_keeps_the_raw_band():
    past = frame(ISSUED, median=50.0, half_width=10.0)
    outcomes = np.where(np.arange(HORIZON_HOURS) < 168, 55.0, np.nan)  # only week 1 delivered
    factors = SpreadCalibration().fit(past, prices(past, outcomes)).factors_
    assert factors[0] == pytest.approx(0.5)
    assert (factors[1:] == 1.0).all()


def test_apply_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        SpreadCalibration().apply(paths(ISSUED, 50.0, 10.0))


def test_weekly_issues_keep_the_local_hour_across_dst():
    issued = pd.Timestamp("2023-04-03 12:00", tz="UTC")  # 14:00 summer time in Oslo
    issues = weekly_issues_before(issued, "Europe/Oslo", np.array([1, 5]))
    assert list(issues.tz_convert("Europe/Oslo").strftime("%a %H:%M")) == ["Mon 14:00", "Mon 14:00"]
    assert issues[1] == pd.Timestamp("2023-02-27 13:00", tz="UTC")  # winter time: one hour later in UTC


def test_calibrated_paths_keep_the_raw_rank_order_in_every_hour():
    raw = paths(ISSUED, median=50.0, half_width=10.0)
    calibration = SpreadCalibration()
    calibration.factors_ = np.array([2.0, 1.0, 0.5, 1.5])
    calibration.zone_factors_ = {}
    calibrated = calibration.apply(raw)
    np.testing.assert_array_equal(np.argsort(calibrated.values, axis=0), np.argsort(raw.values, axis=0))
    week = np.arange(HORIZON_HOURS) // 168
    spread = calibrated.values.max(axis=0) - calibrated.values.min(axis=0)
    raw_spread = raw.values.max(axis=0) - raw.values.min(axis=0)
    np.testing.assert_allclose(spread, calibration.factors_[week] * raw_spread, rtol=1e-5)


def test_copula_keeps_each_hours_marginal_exactly_and_the_raw_rank_order():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(50, 24))
    marginals = rng.gamma(2.0, 10.0, size=(50, 24))  # any calibrated sample per hour
    coupled = ensemble_copula_coupling(raw, marginals)
    np.testing.assert_array_equal(np.sort(coupled, axis=0), np.sort(marginals, axis=0))
    np.testing.assert_array_equal(np.argsort(coupled, axis=0), np.argsort(raw, axis=0))


def test_copula_refuses_marginals_of_another_shape():
    with pytest.raises(ValueError, match="differ in shape"):
        ensemble_copula_coupling(np.zeros((5, 3)), np.zeros((4, 3)))


def product_forecast_of(samples: np.ndarray, kinds: list[str], weeks: list[int]) -> ProductForecast:
    table = pd.DataFrame({"kind": kinds, "load": "base", "horizon_week": weeks})
    return ProductForecast(table, samples).with_samples(samples)


def test_product_stage_round_trip_widens_a_too_narrow_band_to_hold_80_percent():
    rng = np.random.default_rng(2)
    n = 200
    samples = 50.0 + rng.normal(0.0, 1.0, size=(n, 500))  # each product's band: ± 1.28
    outcomes = 50.0 + rng.normal(0.0, 2.0, size=n)  # the truth spreads twice as far
    past = product_forecast_of(samples, ["week"] * n, [2] * n)
    stage = ProductSpreadCalibration().fit(past, outcomes)
    factor = stage.factors_.set_index(["kind", "load", "horizon_week"])["factor"].loc[("week", "base", 2)]
    assert factor == pytest.approx(2.0, rel=0.2)
    applied = stage.apply(past)
    inside = (outcomes >= applied.table["p10"]) & (outcomes <= applied.table["p90"])
    assert inside.mean() == pytest.approx(0.8, abs=0.03)
    np.testing.assert_allclose(applied.table["p50"], past.table["p50"])  # the median stays


def hourly_deciles_of(rng: np.random.Generator, n: int) -> np.ndarray:
    """Averaged hourly deciles (products × 9) of varied level, width and skew."""
    center = rng.uniform(40.0, 60.0, size=(n, 1))
    offsets = np.sort(rng.normal(0.0, 1.0, size=(n, 9)), axis=1)
    offsets -= offsets[:, [4]]
    skew = np.where(offsets > 0, rng.uniform(1.0, 2.0, size=(n, 1)), 1.0)  # a longer right tail
    return center + rng.uniform(2.0, 6.0, size=(n, 1)) * skew * offsets


def test_product_stage_sets_the_deciles_to_a_factor_of_the_hourly_deciles_in_the_paths_rank_order():
    rng = np.random.default_rng(4)
    n, paths = 200, 400
    samples = 50.0 + rng.gamma(2.0, 1.0, size=(n, paths))  # right-skewed, own band ≈ 3.4 wide
    hourly = hourly_deciles_of(rng, n)  # the averaged hourly deciles, per product
    center, band = hourly[:, 4], hourly[:, 8] - hourly[:, 0]
    outcomes = center + rng.normal(0.0, 2.0, size=n)
    table = pd.DataFrame({"kind": "week", "load": "base", "horizon_week": [2] * n})
    past = ProductForecast(table, samples, hourly).with_samples(samples)
    stage = ProductSpreadCalibration().fit(past, outcomes)
    factor = stage.factors_["factor"].iloc[0]
    applied = stage.apply(past)
    deciles = applied.table[list(QUANTILE_COLUMNS)].to_numpy()
    np.testing.assert_allclose(applied.table["p90"] - applied.table["p10"], factor * band, rtol=1e-9)
    np.testing.assert_allclose(deciles, center[:, None] + factor * (hourly - center[:, None]), rtol=1e-9)
    np.testing.assert_allclose(applied.table["p50"], center, rtol=1e-9)
    # The raw rank order: the path with a product's k-th lowest raw average keeps its k-th lowest.
    in_raw_order = np.take_along_axis(applied.samples, np.argsort(samples, axis=1), axis=1)
    assert (np.diff(in_raw_order, axis=1) > 0).all()
    # Beyond the positions around p10 and p90 (39.9 and 359.1 of 0 … 399) the own gaps, scaled as
    # the own band is to factor × the hourly band.
    own, new = np.sort(samples, axis=1), np.sort(applied.samples, axis=1)
    tail = factor * band / (past.table["p90"] - past.table["p10"]).to_numpy()
    np.testing.assert_allclose(np.diff(new[:, :40]), tail[:, None] * np.diff(own[:, :40]), atol=1e-12)
    np.testing.assert_allclose(np.diff(new[:, 360:]), tail[:, None] * np.diff(own[:, 360:]), atol=1e-12)
    inside = (outcomes >= applied.table["p10"]) & (outcomes <= applied.table["p90"])
    assert inside.mean() == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("paths", [20, 200, 201])
def test_product_stage_round_trip_learns_known_ratios_and_holds_the_deciles_exactly(paths):
    """Past settlements built to lie at known distances from the hourly p50, in half bands: the
    factor is their 80 % quantile, and a new issue's deciles are its hourly deciles scaled by it."""
    rng = np.random.default_rng(5)
    n = 60
    hourly = hourly_deciles_of(rng, n)
    weeks = [1] * 30 + [2] * 30
    known = {1: 0.6, 2: 1.3}
    ratios = np.concatenate([rng.uniform(0.0, 2.0, 30) for _ in known])
    for part, week in enumerate(known):
        rows = slice(30 * part, 30 * (part + 1))
        ratios[rows] *= known[week] / np.quantile(ratios[rows], 0.8)
    above = rng.random(n) < 0.5
    settlements = np.where(
        above,
        hourly[:, 4] + ratios * (hourly[:, 8] - hourly[:, 4]),
        hourly[:, 4] - ratios * (hourly[:, 4] - hourly[:, 0]),
    )
    samples = rng.normal(50.0, 3.0, size=(n, paths))
    table = pd.DataFrame({"kind": "week", "load": "peak", "horizon_week": weeks})
    past = ProductForecast(table, samples, hourly).with_samples(samples)
    stage = ProductSpreadCalibration().fit(past, settlements)
    factors = stage.factors_.set_index("horizon_week")["factor"]
    assert factors.to_dict() == pytest.approx(known, rel=1e-12)

    new_hourly = hourly_deciles_of(rng, n)
    new_samples = rng.normal(45.0, 5.0, size=(n, paths))
    applied = stage.apply(ProductForecast(table, new_samples, new_hourly).with_samples(new_samples))
    factor = np.array([known[week] for week in weeks])[:, None]
    expected = new_hourly[:, [4]] + factor * (new_hourly - new_hourly[:, [4]])
    deciles = applied.table[list(QUANTILE_COLUMNS)].to_numpy()
    np.testing.assert_allclose(deciles, expected, rtol=1e-9)
    in_raw_order = np.take_along_axis(applied.samples, np.argsort(new_samples, axis=1), axis=1)
    assert (np.diff(in_raw_order, axis=1) >= 0).all()


def test_product_stage_falls_back_to_the_kind_then_to_the_paths_spread():
    rng = np.random.default_rng(3)
    samples = rng.normal(0.0, 1.0, size=(40, 300))
    outcomes = rng.normal(0.0, 3.0, size=40)
    past = product_forecast_of(samples, ["week"] * 30 + ["bom"] * 10, [1] * 10 + [2] * 20 + [3] * 10)
    factors = ProductSpreadCalibration().fit(past, outcomes).factors_.set_index(["kind", "horizon_week"])["factor"]
    pooled = factors.loc[("week", 1)]  # 10 outcomes: the kind's factor over all its weeks (30)
    assert factors.loc[("week", 2)] != pooled  # 20 outcomes: its own
    assert factors.loc[("bom", 3)] == 1.0  # 10 outcomes of the kind in all: the paths' spread


def zone_frame(zone: str, issued_at: pd.Timestamp) -> pd.DataFrame:
    return frame(issued_at, median=50.0, half_width=10.0).assign(zone=zone)


def test_zone_factors_are_shrunk_towards_the_pool_by_their_count_of_issues():
    """Two zones: NO1's outcomes need the band × 1.6, NO2's × 0.8. With a prior of 4 issues, a zone
    with 4 issues is half its own factor, half the pool's (geometrically); with none, all the pool's."""
    issues = [ISSUED - pd.Timedelta(weeks=k) for k in range(4)]
    past = pd.concat([zone_frame(z, t) for z in ("NO1", "NO2") for t in issues], ignore_index=True)
    wide = 50.0 + np.tile(np.linspace(-20.0, 20.0, 168), HORIZON_WEEKS)  # q80 of |ratio| = 1.6
    narrow = 50.0 + np.tile(np.linspace(-10.0, 10.0, 168), HORIZON_WEEKS)  # 0.8
    truth = np.where(past[ZONE].eq("NO1").to_numpy(), np.tile(wide, 8), np.tile(narrow, 8))
    stage = SpreadCalibration(prior_issues=4).fit(past, prices(past, truth))
    pooled = stage.factors_
    for zone, own in (("NO1", 1.6), ("NO2", 0.8)):
        assert stage.factors_of(zone) == pytest.approx(np.sqrt(own * pooled), rel=0.03)
    assert 0.8 < pooled[0] < 1.6
    np.testing.assert_array_equal(stage.factors_of("NO3"), pooled)  # a zone without issues: the pool
    np.testing.assert_array_equal(SpreadCalibration().fit(past, prices(past, truth)).factors_of("NO1"), pooled)
