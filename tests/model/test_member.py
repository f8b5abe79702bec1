"""The LightGBM quantile member and its combination with DeepAR's paths, on a tiny real model."""

from dataclasses import replace
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from spotcast_testing import assert_predict_leaves_unchanged

from forecasting.evaluation.metrics import crps_from_quantiles
from forecasting.model.combination import combine_paths, fit_weight
from forecasting.model.gbm import QuantileMember, feature_names, horizon_features
from forecasting.model.pipeline import DeepARPipeline
from forecasting.schema import (
    HORIZON_HOURS,
    PUBLISHED_AT,
    QUANTILE_COLUMNS,
    QUANTILE_LEVELS,
    SERIES_COL,
    VALUE,
)

ISSUED = pd.Timestamp("2019-04-10 12:00", tz="UTC")


@pytest.fixture(scope="module")
def combined(fitted, training_history) -> DeepARPipeline:
    """The session's tiny pipeline refitted with the member at weight 0.5 (same seed)."""
    return DeepARPipeline(**{**fitted.get_params(), "gbm_weight": 0.5}).fit(training_history)


@pytest.fixture(scope="module")
def window(combined, history):
    _, makers = combined._known_makers(history, ISSUED)
    return makers["NO1"].window(ISSUED)


def test_member_forecasts_every_horizon_hour_with_non_crossing_deciles(combined, window):
    deciles = combined.member_.deciles(window, len(combined.covariates))
    assert deciles.shape == (len(QUANTILE_LEVELS), HORIZON_HOURS)
    assert np.isfinite(deciles).all()
    assert (np.diff(deciles, axis=0) >= 0).all()
    features = horizon_features(window, len(combined.covariates))
    assert features.shape == (HORIZON_HOURS, len(feature_names(tuple(combined.covariates))))


def test_member_ignores_a_covariate_published_after_the_issue(combined, history):
    """Day-ahead load of the days after the issue, published later, is changed wildly: the member's
    forecast (and the combination's) does not move."""
    later = (history[SERIES_COL] == "load_da") & (history[PUBLISHED_AT] > ISSUED)
    assert later.any()
    tampered = history.assign(**{VALUE: history[VALUE].where(~later, 1e6)})
    before = combined.predict(history, ISSUED).frame
    after = combined.predict(tampered, ISSUED).frame
    pd.testing.assert_frame_equal(before, after)


def test_member_moves_the_forecast_and_keeps_deepar_paths_rank_order(fitted, combined, history):
    alone = DeepARPipeline.from_state(fitted.get_params(), replace(combined.fitted_state(), member=None))
    raw = alone.predict(history, ISSUED).paths.zones[0].values
    mixed = combined.predict(history, ISSUED).paths.zones[0].values
    assert not np.allclose(raw, mixed)
    np.testing.assert_array_equal(np.argsort(raw, axis=0, kind="stable"), np.argsort(mixed, axis=0, kind="stable"))


def test_predict_leaves_the_combined_estimator_unchanged(combined, history):
    assert_predict_leaves_unchanged(combined, history, ISSUED + pd.Timedelta(days=1))


def test_member_is_part_of_the_model_id(fitted, combined):
    assert combined.model_id_ != fitted.model_id_


def test_member_round_trips_in_lightgbms_text_format(combined, window, tmp_path):
    member = combined.member_
    member.save(tmp_path / "gbm")
    assert sorted(p.name for p in (tmp_path / "gbm").iterdir()) == sorted(f"{c}.txt" for c in QUANTILE_COLUMNS)
    assert (tmp_path / "gbm" / "p50.txt").read_text().startswith("tree")
    loaded = QuantileMember.load(tmp_path / "gbm", member.features)
    np.testing.assert_array_equal(loaded.deciles(window, 3), member.deciles(window, 3))
    with pytest.raises(ValueError, match="features differ"):
        QuantileMember.load(tmp_path / "gbm", member.features[:-1])


# --- the combination on constructed cases ---------------------------------------------------------


def normal_paths(center: float, samples: int = 999, hours: int = 5) -> np.ndarray:
    rng = np.random.default_rng(1)
    return center + rng.standard_normal((samples, hours))


STANDARD_DECILES = np.array([NormalDist().inv_cdf(q) for q in QUANTILE_LEVELS])  # of N(0, 1)


def normal_deciles(center: float, hours: int = 5) -> np.ndarray:
    return np.repeat(center + STANDARD_DECILES[:, None], hours, axis=1)


def test_weight_zero_keeps_the_paths_and_weight_one_holds_the_members_deciles():
    paths = normal_paths(0.0)
    np.testing.assert_array_equal(combine_paths(paths, normal_deciles(3.0), 0.0), paths)
    held = np.quantile(combine_paths(paths, normal_deciles(3.0), 1.0), QUANTILE_LEVELS, axis=0)
    np.testing.assert_allclose(held, normal_deciles(3.0), atol=0.02)


def test_half_weight_averages_the_quantiles_in_the_paths_rank_order():
    paths = normal_paths(0.0)
    mixed = combine_paths(paths, normal_deciles(4.0), 0.5)
    np.testing.assert_array_equal(np.argsort(mixed, axis=0), np.argsort(paths, axis=0))
    expected = 0.5 * np.quantile(paths, QUANTILE_LEVELS, axis=0) + 0.5 * normal_deciles(4.0)
    np.testing.assert_allclose(np.quantile(mixed, QUANTILE_LEVELS, axis=0), expected, atol=0.02)


def test_member_tails_follow_the_paths_tails_scaled_to_its_band():
    """Beyond p10/p90 the member's quantiles are the paths' tail, stretched by the member's half
    band over the paths' on that side."""
    paths = normal_paths(0.0)
    wide = 2.0 * normal_deciles(0.0)  # N(0, 2²)
    held = combine_paths(paths, wide, 1.0)
    own = np.quantile(paths, [0.01, 0.1, 0.5, 0.9, 0.99], axis=0)
    low = wide[0] + (wide[4] - wide[0]) / (own[2] - own[1]) * (own[0] - own[1])
    high = wide[8] + (wide[8] - wide[4]) / (own[3] - own[2]) * (own[4] - own[3])
    np.testing.assert_allclose(np.quantile(held, [0.01, 0.99], axis=0), [low, high], rtol=1e-9)


def test_a_weight_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="within 0…1"):
        combine_paths(normal_paths(0.0), normal_deciles(0.0), 1.5)


def outcomes(rows: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hours of their own level and spread, their true deciles, and a price drawn from each."""
    rng = np.random.default_rng(seed)
    level, spread = rng.normal(40.0, 15.0, rows), rng.uniform(2.0, 10.0, rows)
    return level[:, None] + spread[:, None] * STANDARD_DECILES, spread[:, None], rng.normal(level, spread)


def test_fitted_weight_recovers_the_mix_that_cancels_two_members_biases():
    """DeepAR 0.6 spreads too high and the member 1.4 too low: 0.3 on the member is unbiased."""
    true, spread, truth = outcomes()
    assert fit_weight(true + 0.6 * spread, true - 1.4 * spread, truth) == pytest.approx(0.3, abs=0.02)
    assert fit_weight(true - 1.4 * spread, true + 0.6 * spread, truth) == pytest.approx(0.7, abs=0.02)


def test_fitted_weight_recovers_the_mix_of_a_too_narrow_and_a_too_wide_member():
    """Half and twice the true spread around the right median: a third on the wide one is exact."""
    true, _, truth = outcomes(seed=1)
    median = true[:, [4]]
    narrow, wide = median + 0.5 * (true - median), median + 2.0 * (true - median)
    assert fit_weight(narrow, wide, truth) == pytest.approx(1 / 3, abs=0.03)


def test_fitted_weight_is_the_best_of_a_fine_grid_and_stays_within_zero_to_one():
    true, spread, truth = outcomes(rows=2_000, seed=2)
    rng = np.random.default_rng(3)
    own, member = true + rng.normal(0, 1, true.shape) * spread, np.sort(true + 0.3 * spread + rng.normal(0, 2, true.shape), axis=1)
    fitted = fit_weight(own, member, truth)
    loss = lambda w: crps_from_quantiles(truth, (1 - w) * own + w * member)  # noqa: E731
    assert 0.0 < fitted < 1.0
    assert loss(fitted) <= min(loss(w) for w in np.linspace(0, 1, 1001)) + 1e-12


def test_fitted_weight_leaves_out_a_member_that_only_adds_bias():
    true, spread, truth = outcomes()
    assert fit_weight(true, true + spread, truth) == pytest.approx(0.0, abs=0.02)
    assert fit_weight(true + spread, true, truth) == pytest.approx(1.0, abs=0.02)
    assert fit_weight(true + 2.0 * spread, true + 1.0 * spread, truth) == 1.0  # the best mix lies beyond the member
    assert fit_weight(true, true, truth) == 0.0  # members that agree: nothing to weigh


def test_fitted_weight_refuses_quantiles_that_do_not_match_the_prices():
    true, _, truth = outcomes(rows=10)
    with pytest.raises(ValueError, match=r"must be \(rows, levels\) of 10 × 9"):
        fit_weight(true, true[:, :5], truth)
    with pytest.raises(ValueError, match="finite quantiles and prices"):
        fit_weight(true, true + 1.0, np.where(np.arange(10) == 3, np.nan, truth))  # an hour not yet delivered


def test_artifact_round_trip_keeps_the_combined_forecast(combined, history, tmp_path):
    from forecasting.model.artifact import load_pipeline, save_pipeline

    path = save_pipeline(combined, tmp_path / "model")
    assert (path / "gbm" / "p90.txt").is_file()
    loaded = load_pipeline(path, zones=combined.zones_, covariates=combined.covariates)
    assert loaded.member_ is not None and loaded.gbm_weight == 0.5
    pd.testing.assert_frame_equal(loaded.predict(history, ISSUED).frame, combined.predict(history, ISSUED).frame)


def test_a_damaged_booster_file_is_a_one_line_artifact_error(combined, tmp_path):
    from forecasting.model.artifact import ArtifactError, load_pipeline, save_pipeline

    path = save_pipeline(combined, tmp_path / "model")
    (path / "gbm" / "p50.txt").write_text("tree\nnot a booster")
    with pytest.raises(ArtifactError, match="damaged model artifact"):
        load_pipeline(path)
