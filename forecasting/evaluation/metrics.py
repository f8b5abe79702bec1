"""Forecast accuracy: point and probabilistic metrics on aligned arrays, and `score`, the table of
every metric per model, overall and per horizon week (optionally per zone).

Definitions (y = realised price, ŷ_q = forecast quantile q, levels = the nine deciles):

* MAE, RMSE – of the median p50 (the forecast a trader reads as "the" price).
* rMAE – MAE(model) / MAE(weekly seasonal-naive) on the same hours; < 1 beats the naive.
* pinball_q(y, ŷ_q) = max(q (y − ŷ_q), (q − 1)(y − ŷ_q)).
* wQL – GluonTS "mean weighted sum quantile loss": per level, 2 Σ|(y − ŷ_q)((y ≤ ŷ_q) − q)| / Σ|y|,
  averaged over the levels. Matches gluonts 0.17 `gluonts.ev.stats.quantile_loss` with
  `gluonts.ev.metrics.WeightedSumQuantileLoss` / `MeanWeightedSumQuantileLoss` (and the older
  `gluonts.evaluation.metrics.quantile_loss` / "mean_wQuantileLoss"). Note 2·pinball_q equals the
  summand, so wQL = mean_q(2 Σ pinball_q) / Σ|y|.
* CRPS – approximated from the deciles: CRPS = ∫₀¹ 2·pinball_q dq (the quantile decomposition of the
  CRPS, Gneiting & Ranjan 2011), replaced by the mean of 2·pinball_q over the nine levels (equal
  weights; the tails beyond p10/p90 are represented by p10/p90 only). The decile grid is symmetric
  with mean 0.5, so the approximation is exact for a point forecast (all deciles equal: it is then
  the absolute error); for a calibrated Gaussian forecast it overstates the exact CRPS by about 9 %.
  In EUR/MWh, comparable to MAE; it equals wQL × mean|y|.
* Coverage and width of the central 80 % interval [p10, p90] (nominal coverage 0.80).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from forecasting.evaluation.baselines import SEASONAL_NAIVE
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOUR,
    ISSUED_AT,
    MODEL_ID,
    QUANTILE_COLUMNS,
    QUANTILE_LEVELS,
    VALUE,
    ZONE,
)

ALL = "all"
ACTUAL = "actual"
REFERENCE_P50 = "reference_p50"
MODEL = "model"
HORIZON_WEEK = "horizon_week"
# Horizon weeks as the trader reads them: the first week, the second, and the rest of the month.
HORIZON_WEEKS: dict[str, tuple[int, int]] = {
    "days 1-7": (1, 168),
    "days 8-14": (169, 336),
    "days 15-28": (337, 672),
}
METRIC_COLUMNS = ["hours", "rmae", "mae", "rmse", "wql", "crps", "coverage_10_90", "width_10_90"]


def mae(actual: np.ndarray, point: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - point)))


def rmse(actual: np.ndarray, point: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(actual - point))))


def relative_mae(actual: np.ndarray, point: np.ndarray, naive_point: np.ndarray) -> float:
    """MAE of `point` over MAE of the seasonal-naive `naive_point` on the same hours."""
    return mae(actual, point) / mae(actual, naive_point)


def pinball_loss(actual: np.ndarray, quantile: np.ndarray, level: float) -> np.ndarray:
    """Per-hour pinball (quantile) loss of the forecast `quantile` at `level`."""
    error = actual - quantile
    return np.maximum(level * error, (level - 1.0) * error)


def weighted_quantile_loss(
    actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float] = QUANTILE_LEVELS
) -> float:
    """GluonTS mean weighted quantile loss; `quantiles` is (hours × levels)."""
    scale = np.sum(np.abs(actual))
    per_level = [2.0 * np.sum(pinball_loss(actual, quantiles[:, i], q)) / scale for i, q in enumerate(levels)]
    return float(np.mean(per_level))


def crps_from_quantiles(
    actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float] = QUANTILE_LEVELS
) -> float:
    """CRPS approximated as the mean over `levels` of twice the mean pinball loss (see module doc)."""
    per_level = [2.0 * np.mean(pinball_loss(actual, quantiles[:, i], q)) for i, q in enumerate(levels)]
    return float(np.mean(per_level))


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of hours whose price fell inside [lower, upper]."""
    return float(np.mean((actual >= lower) & (actual <= upper)))


def interval_width(lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean(upper - lower))


def horizon_week(horizon_hour: pd.Series) -> pd.Series:
    """Label each horizon hour (1…672) with its horizon week ("days 1-7", "days 8-14", "days 15-28")."""
    edges = [0] + [last for _, last in HORIZON_WEEKS.values()]
    return pd.cut(horizon_hour, bins=edges, labels=list(HORIZON_WEEKS)).astype(str)


def align_with_actuals(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, reference: str, model_col: str
) -> pd.DataFrame:
    """Forecast rows that have a realised price and a `reference` forecast for the same zone, issue and
    delivery hour, with columns `actual` and `reference_p50` added. Hours without a price (gaps, the
    end of the data) are not scored, for any model."""
    prices = actuals[[ZONE, DELIVERY_HOUR, VALUE]].rename(columns={VALUE: ACTUAL})
    keys = [ZONE, ISSUED_AT, DELIVERY_HOUR]
    naive = forecasts.loc[forecasts[model_col] == reference, [*keys, "p50"]]
    if naive.empty:
        raise ValueError(f"no forecasts of the reference {reference!r} to compute rMAE against")
    naive = naive.rename(columns={"p50": REFERENCE_P50})
    aligned = forecasts.merge(prices, on=[ZONE, DELIVERY_HOUR]).merge(naive, on=keys)
    return aligned.assign(**{HORIZON_WEEK: horizon_week(aligned[HORIZON_HOUR])})


def summarise(scored: pd.DataFrame) -> dict[str, float]:
    """Every metric of one group of aligned rows (see `align_with_actuals`)."""
    actual = scored[ACTUAL].to_numpy()
    quantiles = scored[list(QUANTILE_COLUMNS)].to_numpy()
    median, lower, upper = scored["p50"].to_numpy(), quantiles[:, 0], quantiles[:, -1]
    return {
        "hours": len(scored),
        "rmae": relative_mae(actual, median, scored[REFERENCE_P50].to_numpy()),
        "mae": mae(actual, median),
        "rmse": rmse(actual, median),
        "wql": weighted_quantile_loss(actual, quantiles),
        "crps": crps_from_quantiles(actual, quantiles),
        "coverage_10_90": interval_coverage(actual, lower, upper),
        "width_10_90": interval_width(lower, upper),
    }


def _groupings(by_zone: bool) -> Iterator[list[str]]:
    for zone in ([None, ZONE] if by_zone else [None]):
        for week in (None, HORIZON_WEEK):
            yield [c for c in (zone, week) if c]


def score(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    *,
    reference: str = SEASONAL_NAIVE,
    model_col: str = MODEL_ID,
    by_zone: bool = False,
) -> pd.DataFrame:
    """Metric table: one row per model × zone × horizon week, with "all" rows for the totals.

    `forecasts` are forecast frames of one or more models and issues (models told apart by
    `model_col`), `actuals` tidy price rows (zone, delivery_hour, value). rMAE is against the
    `reference` model's p50 from the same issue on the same hours.
    """
    aligned = align_with_actuals(forecasts, actuals, reference, model_col)
    rows = []
    for extra in _groupings(by_zone):
        for key, group in aligned.groupby([model_col, *extra], sort=False):
            labels = dict(zip([MODEL, *extra], key, strict=True))
            rows.append({ZONE: ALL, HORIZON_WEEK: ALL, **labels, **summarise(group)})
    table = pd.DataFrame(rows, columns=[MODEL, ZONE, HORIZON_WEEK, *METRIC_COLUMNS])
    return _in_reading_order(table, models=list(dict.fromkeys(forecasts[model_col])))


def _in_reading_order(table: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Per zone (totals first), per horizon week in time order, models in the order given."""
    zones = [ALL, *sorted(z for z in table[ZONE].unique() if z != ALL)]
    order = {
        MODEL: {m: i for i, m in enumerate(models)},
        ZONE: {z: i for i, z in enumerate(zones)},
        HORIZON_WEEK: {w: i for i, w in enumerate([ALL, *HORIZON_WEEKS])},
    }
    ranked = table.sort_values([ZONE, HORIZON_WEEK, MODEL], key=lambda col: col.map(order[col.name]))
    return ranked.reset_index(drop=True)
