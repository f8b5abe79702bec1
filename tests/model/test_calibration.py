"""Per-decile calibration of sample paths (`forecasting.model.calibration`) on synthetic forecasts."""

import numpy as np
import pytest

from forecasting.model.calibration import (
    LEVELS,
    calibrate_samples,
    calibrated_deciles,
    fit_decile_factors,
)

HORIZON = 3 * 168


def synthetic(rng: np.random.Generator, windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts whose samples are N(0, 1) though the truth is skewed and wider further out:
    below the median 0.5 × as far as sampled, above it 2 × (3 × in the last week)."""
    samples = rng.standard_normal((windows, 100, HORIZON))
    noise = np.abs(rng.standard_normal((windows, HORIZON)))
    up = np.where(np.arange(HORIZON) < 2 * 168, 2.0, 3.0)
    truth = np.where(rng.random((windows, HORIZON)) < 0.5, -0.5 * noise, up * noise)
    return samples, truth


def frequencies(deciles: np.ndarray, truth: np.ndarray, hours: slice) -> np.ndarray:
    """Share of the truths at or below each decile; deciles (windows × levels × hours)."""
    return np.mean(truth[:, None, hours] <= deciles[:, :, hours], axis=(0, 2))


def test_calibration_makes_decile_frequencies_match_their_levels_out_of_sample():
    rng = np.random.default_rng(0)
    factors = fit_decile_factors(*synthetic(rng, 60))
    samples, truth = synthetic(rng, 60)
    raw = np.quantile(samples, LEVELS, axis=1).transpose(1, 0, 2)
    calibrated = np.stack([calibrated_deciles(s, factors) for s in samples])
    for week in range(3):
        hours = slice(week * 168, (week + 1) * 168)
        assert np.abs(frequencies(raw, truth, hours) - LEVELS).max() > 0.1  # miscalibrated before
        outer = LEVELS != 0.5  # the median is not moved
        assert frequencies(calibrated, truth, hours)[outer] == pytest.approx(LEVELS[outer], abs=0.02)


def test_factors_are_per_week_and_asymmetric():
    factors = fit_decile_factors(*synthetic(np.random.default_rng(1), 60))
    assert factors.shape == (3, len(LEVELS))
    assert factors[0, -1] > 1.5 > 0.8 > factors[0, 0]  # wider above the median, narrower below
    assert factors[2, -1] > factors[0, -1]  # the last week is wider above
    assert factors[:, 4] == pytest.approx(1.0)  # the median is not moved


def test_without_realised_truth_the_factors_stay_one():
    samples = np.random.default_rng(2).standard_normal((4, 50, 168))
    assert fit_decile_factors(samples, np.full((4, 168), np.nan)) == pytest.approx(np.ones((1, 9)))


def test_calibrated_samples_keep_order_and_have_the_calibrated_deciles():
    rng = np.random.default_rng(3)
    factors = fit_decile_factors(*synthetic(rng, 20))
    samples = rng.standard_normal((2000, HORIZON))
    mapped = calibrate_samples(samples, factors)
    assert np.array_equal(np.argsort(mapped, axis=0), np.argsort(samples, axis=0))
    expected = calibrated_deciles(samples, factors)
    assert np.quantile(mapped, LEVELS, axis=0) == pytest.approx(expected, abs=0.02)
