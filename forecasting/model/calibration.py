"""Spread calibration: stages after the model (like OpenSTEF's confidence-interval applicator).

* `SpreadCalibration` (hourly): `fit` learns, per horizon week, how far the model's raw p10–p90
  band must be widened or narrowed around its median so that it held 80 % of the realised prices of
  recent past issues; `apply` moves every sample path's price of each hour from that hour's median
  by the week's factor, which calibrates each hour's marginal, and keeps the raw paths' rank order
  in every hour (ensemble copula coupling, `ensemble_copula_coupling`): the joint behaviour across
  hours, which decides how wide a week's average is, stays the model's.
* `ProductSpreadCalibration` (calendar products): the same rule for the period averages of the
  calibrated paths, per product kind, load and horizon week, since paths whose hourly marginals are
  right can still under- or over-state how far a whole week's level moves. Its unit is the product's
  *hourly band* (the 10–90 band of the averaged hourly deciles): the stage sets each product's band
  to factor × hourly band, in the shape (median, skew) of the paths' own. The width of the paths'
  own band swings from issue to issue with DeepAR's dependence across hours, more than the error it
  should track (backtest of both report periods: its ratio to the hourly band varies by ±30–37 %,
  and its correlation with the week products' error is lower), so scaling it costs CRPS.

Working in EUR/MWh is exact: the model's anchored → price map is affine and increasing per hour, so
quantiles, the median and these ratios are the same in either unit.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from forecasting.paths import ZonePaths
from forecasting.products import HORIZON_WEEK as PRODUCT_HORIZON_WEEK
from forecasting.products import KIND, LOAD, ProductForecast
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOUR,
    HORIZON_HOURS,
    ISSUED_AT,
    VALUE,
    ZONE,
)

WEEK = 168
HORIZON_WEEKS = HORIZON_HOURS // WEEK
DELIVERED_AFTER = pd.Timedelta(hours=HORIZON_HOURS + 48)  # an issue's horizon is published by then
NEWEST_CALIBRATION_WEEKS = -(-DELIVERED_AFTER // pd.Timedelta(days=7))  # weeks back to the newest delivered issue
COVERAGE = 0.8  # the band p10…p90
MEDIAN, LOW, HIGH = "p50", "p10", "p90"
_TINY = 1e-6  # floor of a half band, EUR/MWh
FACTOR, OUTCOMES = "factor", "outcomes"


def weekly_issues_before(issued_at: pd.Timestamp, timezone: str, weeks_back: np.ndarray) -> pd.DatetimeIndex:
    """Issue instants `weeks_back` weeks before `issued_at` on the local clock (same weekday and
    local hour, minutes dropped), so a daily run at 14:00 finds last weeks' 14:00 issues whatever
    the DST offset or the minute it started."""
    local = pd.Timestamp(issued_at).tz_convert(timezone).floor("h").tz_localize(None)
    days = local - pd.to_timedelta(7 * np.asarray(weeks_back), unit="D")
    return pd.DatetimeIndex(days).tz_localize(timezone, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")


def horizon_week(frame: pd.DataFrame) -> np.ndarray:
    return (frame[HORIZON_HOUR].to_numpy() - 1) // WEEK


class SpreadCalibration:
    """Spread factors per horizon week (`factors_`) from past raw forecasts and their outcomes."""

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
        factors = np.ones(HORIZON_WEEKS)
        for week in range(HORIZON_WEEKS):
            seen = ratio[(weeks == week) & ~np.isnan(ratio)]
            if seen.size:
                factors[week] = np.quantile(seen, COVERAGE)
        self.factors_ = factors
        self.issues_ = int(past_forecasts[ISSUED_AT].nunique()) if len(past_forecasts) else 0
        return self

    def apply(self, paths: ZonePaths) -> ZonePaths:
        """The paths with each hour's marginal moved from its median by the week's factor, in the
        raw rank order (so the hourly deciles and mean move exactly as the factor says)."""
        if not hasattr(self, "factors_"):
            raise NotFittedError("SpreadCalibration is not fitted yet: call fit(past_forecasts, prices)")
        raw = paths.values.astype("float64")
        factor = self.factors_[np.arange(raw.shape[1]) // WEEK]
        median = np.median(raw, axis=0)
        return paths.with_values(ensemble_copula_coupling(raw, median + factor * (raw - median)))


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
    above = np.maximum(high - median, _TINY)
    below = np.maximum(median - low, _TINY)
    return np.where(truth >= median, (truth - median) / above, (median - truth) / below)


class ProductSpreadCalibration:
    """Spread factors of calendar products per kind, load and horizon week (`factors_`, a frame),
    from the product forecasts of past issues and their settlements. A group with fewer than
    `MIN_OUTCOMES` settled products takes its kind and load's factor over every horizon week; a kind
    and load with fewer, or a product no past issue had, gets the hourly band itself (factor 1.0:
    the width of the averaged hourly deciles, a little wide, never too narrow)."""

    MIN_OUTCOMES = 20  # a q80 of fewer outcomes moves by a tenth from one outcome to the next

    def fit(self, past: ProductForecast, settlements: np.ndarray) -> Self:
        median = past.table[MEDIAN].to_numpy()
        scale = _to_hourly_band(past)
        table = past.table.assign(ratio=_half_band_ratios(
            median,
            median - scale * (median - past.table[LOW].to_numpy()),
            median + scale * (past.table[HIGH].to_numpy() - median),
            np.asarray(settlements, dtype="float64"),
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
        """The product forecasts with each product's period-average samples moved from their median
        so that their 10–90 band is its group's factor × its hourly band (× their own band for
        products not made from paths, which have none)."""
        if not hasattr(self, "factors_"):
            raise NotFittedError("ProductSpreadCalibration is not fitted yet: call fit(past, settlements)")
        keys = [KIND, LOAD, PRODUCT_HORIZON_WEEK]
        factor = products.table[keys].merge(self.factors_, on=keys, how="left")[FACTOR].fillna(1.0).to_numpy()
        factor = factor * _to_hourly_band(products)
        samples = products.samples
        median = np.median(samples, axis=1, keepdims=True)
        return products.with_samples(median + factor[:, None] * (samples - median))


def _to_hourly_band(products: ProductForecast) -> np.ndarray:
    """Per product, hourly band ÷ the width of its own 10–90 band (1 where either is unknown or nil)."""
    own = products.table[HIGH].to_numpy() - products.table[LOW].to_numpy()
    if products.hourly_band is None:
        return np.ones(len(own))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(own > _TINY, products.hourly_band / own, 1.0)

