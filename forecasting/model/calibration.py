"""Spread calibration: stages after the model (like OpenSTEF's confidence-interval applicator).

* `SpreadCalibration` (hourly): `fit` learns, per horizon week, how far the model's raw p10–p90
  band must be widened or narrowed around its median so that it held 80 % of the realised prices of
  recent past issues; `apply` moves every sample path's price of each hour from that hour's median
  by the week's factor, which calibrates each hour's marginal, and keeps the raw paths' rank order
  in every hour (ensemble copula coupling, `ensemble_copula_coupling`): the joint behaviour across
  hours, which decides how wide a week's average is, stays the model's.
* `ProductSpreadCalibration` (calendar products): the same rule for the period averages of the
  calibrated paths, per product kind, load and horizon week, since paths whose hourly marginals are
  right can still under- or over-state how far a whole week's level moves. Its unit is the
  product's *hourly deciles* (`ProductForecast.hourly_deciles`: the period average of the paths'
  hourly deciles). Averaging hourly quantiles gives the quantiles of the period average if the
  hours move together (comonotone): the most spread-out average the calibrated hourly marginals
  allow (largest in the convex order). The truth is usually narrower, as the hours' errors partly
  cancel, and the stage learns how much from the track record: it sets each product's deciles to
  the hourly deciles moved from their p50 by the factor, held by new samples in the rank order of
  the product's own (ECC at product level; the tails beyond p10 and p90 keep the own samples' gaps,
  scaled), so P(settle > X) follows. It takes neither the width nor the shape and center of the
  paths' own period averages: they carry DeepAR's dependence across hours, which swings from issue
  to issue more than the error it should track; in the validation backtest scaling them lost
  2–10 % CRPS to the plain mean of hourly deciles, which the hourly deciles scaled by the factor
  tie or beat.

Working in EUR/MWh is exact: the model's anchored → price map is affine and increasing per hour, so
quantiles, the median and these ratios are the same in either unit.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from forecasting.clock import WEEK, WEEK_HOURS
from forecasting.paths import ZonePaths
from forecasting.products import HORIZON_WEEK as PRODUCT_HORIZON_WEEK
from forecasting.products import KIND, LOAD, ProductForecast
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOUR,
    HORIZON_HOURS,
    ISSUED_AT,
    QUANTILE_COLUMNS,
    QUANTILE_LEVELS,
    VALUE,
    ZONE,
)

HORIZON_WEEKS = HORIZON_HOURS // WEEK_HOURS
DELIVERED_AFTER = pd.Timedelta(hours=HORIZON_HOURS + 48)  # an issue's horizon is published by then
NEWEST_CALIBRATION_WEEKS = -(-DELIVERED_AFTER // WEEK)  # weeks back to the newest delivered issue
COVERAGE = 0.8  # the band p10…p90
MEDIAN, LOW, HIGH = "p50", "p10", "p90"
P10_AT, P50_AT, P90_AT = (QUANTILE_COLUMNS.index(column) for column in (LOW, MEDIAN, HIGH))  # in p10 … p90
MIN_HALF_BAND = 1e-6  # floor of a half band, EUR/MWh
FACTOR, OUTCOMES = "factor", "outcomes"


def horizon_week(frame: pd.DataFrame) -> np.ndarray:
    return (frame[HORIZON_HOUR].to_numpy() - 1) // WEEK_HOURS


class SpreadCalibration:
    """Spread factors per horizon week (`factors_`, pooled over zones) and per zone and horizon week
    (`zone_factors_`) from past raw forecasts and their outcomes.

    `prior_issues` (None: pooled factors for every zone): a zone's factor is its own 80 % quantile
    shrunk towards the pooled one, geometrically, with weight n / (n + prior_issues) on its own for
    n past issues of the zone (credibility weighting: the hours of one issue share its error, so
    issues, not hours, are the evidence; a zone with few issues stays near the pool)."""

    def __init__(self, prior_issues: float | None = None) -> None:
        self.prior_issues = prior_issues

    def fit(self, past_forecasts: pd.DataFrame, prices: pd.DataFrame) -> Self:
        """`past_forecasts`: raw forecast frames of delivered issues; `prices`: zone, delivery_hour,
        value of the realised prices. A week with no outcome keeps factor 1.0 (raw deciles)."""
        outcome = past_forecasts.merge(
            prices[[ZONE, DELIVERY_HOUR, VALUE]], on=[ZONE, DELIVERY_HOUR], how="left"
        )
        ratio = _half_band_ratios(
            outcome[MEDIAN].to_numpy(), outcome[LOW].to_numpy(), outcome[HIGH].to_numpy(),
            outcome[VALUE].to_numpy(dtype="float64"),
        )
        weeks = horizon_week(outcome)
        self.factors_ = _week_factors(ratio, weeks, np.ones(HORIZON_WEEKS))
        self.zone_factors_: dict[str, np.ndarray] = {}
        if self.prior_issues is not None:
            zones, issues = outcome[ZONE].to_numpy(), outcome[ISSUED_AT].to_numpy()
            for zone in np.unique(zones):
                mine = zones == zone
                own = _week_factors(ratio[mine], weeks[mine], self.factors_)
                seen = len(np.unique(issues[mine & ~np.isnan(ratio)]))
                trust = seen / (seen + self.prior_issues)
                self.zone_factors_[str(zone)] = np.exp(trust * np.log(own) + (1 - trust) * np.log(self.factors_))
        self.issues_ = int(past_forecasts[ISSUED_AT].nunique()) if len(past_forecasts) else 0
        return self

    def factors_of(self, zone: str) -> np.ndarray:
        """The factors per horizon week that `apply` uses for `zone`."""
        return self.zone_factors_.get(zone, self.factors_)

    def apply(self, paths: ZonePaths) -> ZonePaths:
        """The paths with each hour's marginal moved from its median by the week's factor, in the
        raw rank order (so the hourly deciles and mean move exactly as the factor says)."""
        if not hasattr(self, "factors_"):
            raise NotFittedError("SpreadCalibration is not fitted yet: call fit(past_forecasts, prices)")
        raw = paths.values.astype("float64")
        factor = self.factors_of(paths.zone)[np.arange(raw.shape[1]) // WEEK_HOURS]
        median = np.median(raw, axis=0)
        return paths.with_values(ensemble_copula_coupling(raw, median + factor * (raw - median)))


def _week_factors(ratio: np.ndarray, weeks: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Per horizon week, the 80 % quantile of the outcomes' half-band ratios (`default` where a
    week has none)."""
    factors = default.copy()
    for week in range(HORIZON_WEEKS):
        seen = ratio[(weeks == week) & ~np.isnan(ratio)]
        if seen.size:
            factors[week] = np.quantile(seen, COVERAGE)
    return factors


def ensemble_copula_coupling(raw: np.ndarray, marginals: np.ndarray) -> np.ndarray:
    """Paths (samples × hours) whose hour h holds the values of `marginals[:, h]` (a calibrated
    marginal sample of the same size) in the rank order of `raw[:, h]`: the path with the k-th
    lowest raw price of an hour gets that hour's k-th lowest calibrated price (ECC, Schefzik et al.
    2013). Each hour keeps its calibrated marginal exactly; the dependence across hours is the raw
    paths'."""
    if raw.shape != marginals.shape:
        raise ValueError(f"raw paths {raw.shape} and marginals {marginals.shape} differ in shape")
    coupled = np.empty_like(marginals)
    np.put_along_axis(coupled, np.argsort(raw, axis=0, kind="stable"), np.sort(marginals, axis=0), axis=0)
    return coupled


def _half_band_ratios(median: np.ndarray, low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """How far each outcome lies from the median, in units of the band's half width on its side."""
    above = np.maximum(high - median, MIN_HALF_BAND)
    below = np.maximum(median - low, MIN_HALF_BAND)
    return np.where(truth >= median, (truth - median) / above, (median - truth) / below)


class ProductSpreadCalibration:
    """Spread factors of calendar products per kind, load and horizon week (`factors_`, a frame),
    from the product forecasts of past issues and their settlements. A group with fewer than
    `MIN_OUTCOMES` settled products takes its kind and load's factor over every horizon week; a kind
    and load with fewer, or a product no past issue had, gets the averaged hourly deciles themselves
    (factor 1.0: the mean of hourly deciles, as if the hours moved together — usually a little wide)."""

    MIN_OUTCOMES = 20  # a q80 of fewer outcomes moves by a tenth from one outcome to the next

    def fit(self, past: ProductForecast, settlements: np.ndarray) -> Self:
        """Each group's factor: the 80 % quantile of the past settlements' distance from the p50 of
        their products' averaged hourly deciles, in units of those deciles' half band on its side
        (what `apply` makes with factor 1; products not made from paths: their own deciles)."""
        deciles = _unit_deciles(past)
        table = past.table.assign(ratio=_half_band_ratios(
            deciles[:, P50_AT], deciles[:, P10_AT], deciles[:, P90_AT], np.asarray(settlements, dtype="float64"),
        ))
        table = table[table["ratio"].notna()]
        by_kind = table.groupby([KIND, LOAD])["ratio"]
        by_week = table.groupby([KIND, LOAD, PRODUCT_HORIZON_WEEK])["ratio"]
        pooled = by_kind.quantile(COVERAGE).where(by_kind.size() >= self.MIN_OUTCOMES)
        factors = by_week.quantile(COVERAGE).where(by_week.size() >= self.MIN_OUTCOMES)
        frame = pd.DataFrame({FACTOR: factors, OUTCOMES: by_week.size()}).reset_index()
        fallback = pooled.reindex(pd.MultiIndex.from_frame(frame[[KIND, LOAD]])).to_numpy()
        frame[FACTOR] = frame[FACTOR].fillna(pd.Series(fallback, index=frame.index)).fillna(1.0)
        self.factors_ = frame
        return self

    def apply(self, products: ProductForecast) -> ProductForecast:
        """The product forecasts with each product's deciles set to its averaged hourly deciles moved
        from their p50 by its group's factor (q_k = p50 + factor × (hourly q_k − p50)), held by new
        samples (`_holding_deciles`) in the rank order of its own (`ensemble_copula_coupling`, the
        products in place of the hours). Beyond p10 and p90 the own samples' gaps are scaled by the
        new band ÷ the own band. Products not made from paths, which have no hourly deciles,
        have their own samples moved from their median by the factor."""
        if not hasattr(self, "factors_"):
            raise NotFittedError("ProductSpreadCalibration is not fitted yet: call fit(past, settlements)")
        keys = [KIND, LOAD, PRODUCT_HORIZON_WEEK]
        factor = products.table[keys].merge(self.factors_, on=keys, how="left")[FACTOR].fillna(1.0).to_numpy()
        samples = products.samples
        if products.hourly_deciles is None:
            median = np.median(samples, axis=1, keepdims=True)
            return products.with_samples(median + factor[:, None] * (samples - median))
        hourly = products.hourly_deciles
        center = hourly[:, [P50_AT]]
        deciles = center + factor[:, None] * (hourly - center)
        own_band = products.table[HIGH].to_numpy() - products.table[LOW].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            to_hourly = np.where(own_band > MIN_HALF_BAND, (hourly[:, P90_AT] - hourly[:, P10_AT]) / own_band, 1.0)
        tail = factor * to_hourly
        held = _holding_deciles(deciles, np.sort(samples, axis=1), tail)
        return products.with_samples(ensemble_copula_coupling(samples.T, held.T).T)


def _unit_deciles(products: ProductForecast) -> np.ndarray:
    """The deciles the product stage scales (products × 9): the averaged hourly deciles, or the
    products' own where they were not made from paths."""
    if products.hourly_deciles is None:
        return products.table[list(QUANTILE_COLUMNS)].to_numpy(dtype="float64")
    return products.hourly_deciles


def _holding_deciles(deciles: np.ndarray, own: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Sorted samples (products × paths) whose deciles (np.quantile, linear) are exactly `deciles`
    (products × 9, ascending), with tails from the products' own sorted samples `own`.

    The j-th lowest of n samples is np.quantile's level j / (n − 1): between p10 and p90 the samples
    interpolate the deciles linearly at their levels. np.quantile interpolates linearly between the
    two samples around a decile's level, which straddle the kink there, so those two lie on one line
    through the decile instead, of the flatter slope of its two pieces (no steeper than either, so
    the samples stay sorted; a whole number (n − 1) × level needs no such pair). Below the pair
    around p10 and above the one around p90, the tails keep the own samples' gaps times `tail`
    (per product)."""
    paths = own.shape[1]
    at = (paths - 1) * np.asarray(QUANTILE_LEVELS)  # each decile's virtual position
    position = np.arange(paths)
    piece = np.clip(np.searchsorted(at, position, side="right") - 1, 0, len(at) - 2)
    slopes = np.diff(deciles, axis=1) / np.diff(at)  # per product and piece, per position
    held = deciles[:, piece] + slopes[:, piece] * (position - at[piece])  # the end pieces extended
    end = np.full((len(deciles), 1), np.inf)
    slope = np.minimum(np.hstack([end, slopes]), np.hstack([slopes, end]))  # per decile: the flatter piece
    below, above = np.floor(at).astype(np.int64), np.ceil(at).astype(np.int64)
    held[:, below] = deciles + slope * (below - at)
    held[:, above] = deciles + slope * (above - at)
    first, last = below[0], above[-1]
    held[:, :first] = held[:, [first]] + tail[:, None] * (own[:, :first] - own[:, [first]])
    held[:, last + 1:] = held[:, [last]] + tail[:, None] * (own[:, last + 1:] - own[:, [last]])
    return held
