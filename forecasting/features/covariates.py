"""Covariates on a regular hourly grid, as they were known at an issue instant, extended beyond their
published horizon so they cover every hour of the forecast.

Day-ahead load/generation/wind forecasts reach only ~1 day past the issue instant, the forecast four
weeks. Hours after a covariate's newest published hour are filled with an extension built only from
values published by the issue instant:

* ``last_year_scaled`` (load, generation): the value 52 weeks earlier (same weekday and hour), scaled
  by the ratio of the last two published weeks to the same two weeks a year before. It carries the
  seasonal trend (autumn load rises) that a recent-weeks profile would miss. Falls back to
  ``week_profile`` where last year is missing.
* ``week_profile`` (wind): the local hour-of-week mean of the last four published weeks. Wind beyond
  a few days is unpredictable; its recent climatology is the honest guess.
* ``hold`` (weekly series: the hydro balance, `features.hydro`): each hour takes the newest value
  published by the issue at or before it; over the horizon the newest week holds. A reservoir's
  deviation from its normal moves over months, not hours.

Gaps inside the published part are filled the same way. The per-covariate report (newest published
hour, hours extended, method) becomes the `input_status` written beside each forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.clock import WEEK_HOURS
from forecasting.errors import MissingData
from forecasting.features.calendar import hour_of_week
from forecasting.schema import DELIVERY_HOUR, PUBLISHED_AT, RESERVOIR_DEVIATION, SERIES_COL, VALUE, ZONE

LAST_YEAR = 52 * WEEK_HOURS  # 364 days: same weekday a year earlier
PROFILE_WEEKS = 4
RATIO_HOURS = 2 * WEEK_HOURS
RATIO_BOUNDS = (0.5, 2.0)
NEWEST_SEARCH_HOURS = 8 * WEEK_HOURS  # a covariate with nothing published in 8 weeks counts as missing
_NEVER = np.iinfo(np.int64).max  # publication stamp of a missing hour

LAST_YEAR_SCALED = "last_year_scaled"
WEEK_PROFILE = "week_profile"
HOLD = "hold"
MISSING = "missing"
EXTENSION_METHODS: dict[str, str] = {
    "load_da": LAST_YEAR_SCALED,
    "load_actual": LAST_YEAR_SCALED,
    "generation_da": LAST_YEAR_SCALED,
    "wind_onshore_da": WEEK_PROFILE,
    "solar_da": WEEK_PROFILE,
    RESERVOIR_DEVIATION: HOLD,
}

# input_status columns
COVARIATE = "covariate"
NEWEST_PUBLISHED_HOUR = "newest_published_hour"
HOURS_EXTENDED = "hours_extended"
METHOD = "method"
INPUT_STATUS_COLUMNS = [ZONE, COVARIATE, NEWEST_PUBLISHED_HOUR, HOURS_EXTENDED, METHOD]


@dataclass(frozen=True)
class ZoneGrid:
    """One zone's series on a gap-free UTC hourly grid: values (NaN = missing) and publication
    instants (int64 ns, `_NEVER` = missing), plus the local hour of the week of every grid hour."""

    zone: str
    timezone: str
    hours: pd.DatetimeIndex
    values: dict[str, np.ndarray]
    published: dict[str, np.ndarray]
    hour_of_week: np.ndarray

    def index_of(self, hour: pd.Timestamp) -> int:
        return int((pd.Timestamp(hour) - self.hours[0]) // pd.Timedelta(hours=1))


def pivot_zone(
    history: pd.DataFrame,
    zone: str,
    timezone: str,
    series: tuple[str, ...],
    until: pd.Timestamp | None = None,
) -> ZoneGrid:
    """Pivot a tidy frame's rows of `zone` onto an hourly grid reaching at least to `until`."""
    rows = history[(history[ZONE] == zone) & history[SERIES_COL].isin(series)]
    if rows.empty:
        raise MissingData(f"history holds no rows of zone {zone} for series {list(series)}")
    last = rows[DELIVERY_HOUR].max() if until is None else max(rows[DELIVERY_HOUR].max(), until)
    hours = pd.date_range(rows[DELIVERY_HOUR].min(), last, freq="h", tz="UTC")
    values, published = {}, {}
    for name in series:
        one = rows[rows[SERIES_COL] == name].set_index(DELIVERY_HOUR)
        values[name] = one[VALUE].reindex(hours).to_numpy(dtype="float64")
        stamps = one[PUBLISHED_AT].reindex(hours)
        published[name] = np.where(
            stamps.isna(), _NEVER, stamps.to_numpy(dtype="datetime64[ns]").astype("int64")
        )
    return ZoneGrid(zone, timezone, hours, values, published, hour_of_week(hours, timezone))


def newest_known_index(grid: ZoneGrid, series: str, issued_at_ns: int, before: int) -> int | None:
    """Grid index of the newest hour (< `before`) of `series` published by the issue instant."""
    lo = max(0, before - NEWEST_SEARCH_HOURS)
    known = np.flatnonzero(grid.published[series][lo:before] <= issued_at_ns)
    return lo + int(known[-1]) if known.size else None


def week_profile(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mean per hour-of-week key (168 entries); keys never seen get the overall mean (NaN if none)."""
    seen = ~np.isnan(values)
    sums = np.bincount(keys[seen], weights=values[seen], minlength=WEEK_HOURS)
    counts = np.bincount(keys[seen], minlength=WEEK_HOURS)
    overall = values[seen].mean() if seen.any() else np.nan
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


@dataclass(frozen=True)
class Extended:
    values: np.ndarray  # the window's covariate, NaN only where nothing at all was known
    newest: int | None  # grid index of the newest published hour
    hours_extended: int  # window hours after the newest published hour
    method: str


def extend_covariate(
    grid: ZoneGrid, series: str, issued_at_ns: int, lo: int, hi: int, method: str
) -> Extended:
    """Covariate `series` over grid window [lo, hi) as known at the issue instant, extended."""
    newest = newest_known_index(grid, series, issued_at_ns, hi)
    if newest is None:
        return Extended(np.full(hi - lo, np.nan), None, hi - lo, MISSING)
    raw = grid.values[series]
    hours_extended = max(0, hi - 1 - max(newest, lo - 1))
    if method == HOLD:
        return Extended(_held(grid, series, issued_at_ns, lo, hi), newest, hours_extended, HOLD)
    known = np.where(grid.published[series][lo:hi] <= issued_at_ns, raw[lo:hi], np.nan)
    gaps = np.isnan(known)
    if not gaps.any():
        return Extended(known, newest, hours_extended, method)
    recent = slice(max(0, newest + 1 - PROFILE_WEEKS * WEEK_HOURS), newest + 1)
    profile = week_profile(raw[recent], grid.hour_of_week[recent])
    fill = profile[grid.hour_of_week[lo:hi]]
    used = WEEK_PROFILE
    if method == LAST_YEAR_SCALED:
        scaled = _last_year_scaled(raw, newest, lo, hi)
        if scaled is not None:
            fill = np.where(np.isnan(scaled), fill, scaled)
            used = LAST_YEAR_SCALED
    return Extended(np.where(gaps, fill, known), newest, hours_extended, used)


def _held(grid: ZoneGrid, series: str, issued_at_ns: int, lo: int, hi: int) -> np.ndarray:
    """Each hour of [lo, hi): the newest value published by the issue at or before it (from up to
    NEWEST_SEARCH_HOURS before the window; NaN before any)."""
    start = max(0, lo - NEWEST_SEARCH_HOURS)
    seen = np.where(grid.published[series][start:hi] <= issued_at_ns, grid.values[series][start:hi], np.nan)
    return pd.Series(seen).ffill().to_numpy()[lo - start :]


def _last_year_scaled(raw: np.ndarray, newest: int, lo: int, hi: int) -> np.ndarray | None:
    """Values 52 weeks before [lo, hi) times recent/last-year level; None without last year's data.
    Everything read here was published long before the issue instant (≤ newest)."""
    if lo - LAST_YEAR < 0 or newest + 1 - RATIO_HOURS - LAST_YEAR < 0:
        return None
    recent = raw[newest + 1 - RATIO_HOURS : newest + 1]
    before = raw[newest + 1 - RATIO_HOURS - LAST_YEAR : newest + 1 - LAST_YEAR]
    if np.isnan(recent).all() or np.isnan(before).all() or np.nanmean(before) <= 0:
        return None
    ratio = np.clip(np.nanmean(recent) / np.nanmean(before), *RATIO_BOUNDS)
    return raw[lo - LAST_YEAR : hi - LAST_YEAR] * ratio


def input_status(grid: ZoneGrid, extended: dict[str, Extended]) -> pd.DataFrame:
    """Rows of INPUT_STATUS_COLUMNS for one zone's covariates of one forecast."""
    return pd.DataFrame(
        [
            {
                ZONE: grid.zone,
                COVARIATE: name,
                NEWEST_PUBLISHED_HOUR: None if ext.newest is None else grid.hours[ext.newest],
                HOURS_EXTENDED: ext.hours_extended,
                METHOD: ext.method,
            }
            for name, ext in extended.items()
        ],
        columns=INPUT_STATUS_COLUMNS,
    )
