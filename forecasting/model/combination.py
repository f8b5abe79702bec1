"""Combining the members: quantile averaging of each hour's marginal, in DeepAR's paths.

Averaging the members' quantile functions (Vincentization) gives a combined marginal as sharp as
its members and at least as good as their average in CRPS (the CRPS is linear in the quantile
function); it is what Lipiecki, Uniejewski & Weron (2024) find works for post-processed price
forecasts. The combined marginal is held by DeepAR's own samples, moved: the sample at level u of
an hour becomes (1 − w) · its own value + w · the member's quantile at u, so every path keeps its
rank in every hour (the DeepAR paths' dependence across hours, which products need) and the hourly
spread stage then calibrates the combination as it calibrated DeepAR alone.

The member gives deciles only: between p10 and p90 its quantile function is their linear
interpolation; beyond, DeepAR's tail, scaled by the member's half band over DeepAR's on that side.

`fit_weight` is the weight a set of past issues asks for: the one whose quantile average of the two
members' deciles has the lowest mean pinball loss (the CRPS of the deciles) on what was delivered.
"""

from __future__ import annotations

import numpy as np

from forecasting.model.calibration import MIN_HALF_BAND, P10_AT, P50_AT, P90_AT
from forecasting.schema import QUANTILE_LEVELS


def combine_paths(paths: np.ndarray, member_deciles: np.ndarray, weight: float) -> np.ndarray:
    """Paths (samples × hours) whose hour h holds the quantile average of the paths' marginal and
    the member's (deciles × hours, ascending), with weight `weight` on the member, in the paths'
    rank order. weight 0 returns the paths unchanged."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the member's weight must be within 0…1, got {weight!r}")
    if member_deciles.shape != (len(QUANTILE_LEVELS), paths.shape[1]):
        raise ValueError(f"member deciles {member_deciles.shape} do not match paths {paths.shape}")
    values = paths.astype("float64")
    if weight == 0.0:
        return values
    order = np.argsort(values, axis=0, kind="stable")
    own = np.take_along_axis(values, order, axis=0)  # sorted: sample i sits at level i / (n − 1)
    member = member_quantiles(own, member_deciles)
    combined = np.empty_like(values)
    np.put_along_axis(combined, order, (1.0 - weight) * own + weight * member, axis=0)
    return combined


def member_quantiles(own: np.ndarray, member_deciles: np.ndarray) -> np.ndarray:
    """The member's quantile function at the levels of the sorted samples `own` (samples × hours):
    the deciles linearly interpolated, with `own`'s tails scaled beyond p10 and p90."""
    samples = own.shape[0]
    levels = np.arange(samples) / max(samples - 1, 1)
    inner = np.array([np.interp(levels, QUANTILE_LEVELS, column) for column in member_deciles.T]).T
    own_deciles = np.quantile(own, QUANTILE_LEVELS, axis=0)
    low_ratio = _band(member_deciles, P50_AT, P10_AT) / _band(own_deciles, P50_AT, P10_AT)
    high_ratio = _band(member_deciles, P90_AT, P50_AT) / _band(own_deciles, P90_AT, P50_AT)
    below = levels < QUANTILE_LEVELS[P10_AT]
    above = levels > QUANTILE_LEVELS[P90_AT]
    inner[below] = member_deciles[P10_AT] + low_ratio * (own[below] - own_deciles[P10_AT])
    inner[above] = member_deciles[P90_AT] + high_ratio * (own[above] - own_deciles[P90_AT])
    return inner


def fit_weight(
    own: np.ndarray, member: np.ndarray, truth: np.ndarray, levels: tuple[float, ...] = QUANTILE_LEVELS
) -> float:
    """The member's weight w in 0…1 minimising the mean pinball loss of (1 − w) · own + w · member
    (rows × levels each, the two members' quantiles of the hours whose prices are `truth`).

    Exact: the loss is convex and piecewise linear in w. At level τ, row i, with d = member − own,
    ρ_τ(y − own − w · d) = |d| · ρ_τ'(z − w) for z = (y − own) / d and τ' = τ (d > 0) or 1 − τ
    (d < 0), so the minimiser is the τ'-weighted quantile of the z: the smallest z at which the
    |d|-weights of the z below it reach Σ |d| · τ'. Pairs with d = 0 cost the same at every w."""
    if own.shape != member.shape or own.shape != (len(truth), len(levels)):
        raise ValueError(f"own {own.shape} and member {member.shape} must be (rows, levels) of {len(truth)} × {len(levels)}")
    if not (np.isfinite(own).all() and np.isfinite(member).all() and np.isfinite(truth).all()):
        raise ValueError("fit_weight needs finite quantiles and prices: drop the hours without a price first")
    gap = (member - own).ravel()
    moved = gap != 0.0
    if not moved.any():
        return 0.0  # the members agree: no weight changes anything
    tau = np.broadcast_to(np.asarray(levels), own.shape).ravel()[moved]
    gap_moved = gap[moved]
    z = ((truth[:, None] - own).ravel()[moved]) / gap_moved
    tau_side = np.where(gap_moved > 0, tau, 1.0 - tau)
    mass = np.abs(gap_moved)
    order = np.argsort(z, kind="stable")
    reached = np.cumsum(mass[order]) >= np.sum(mass * tau_side)
    return float(np.clip(z[order][np.argmax(reached)], 0.0, 1.0))


def _band(deciles: np.ndarray, upper: int, lower: int) -> np.ndarray:
    return np.maximum(deciles[upper] - deciles[lower], MIN_HALF_BAND)
