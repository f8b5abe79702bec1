"""Weekly series in the hourly lake: where an ISO week's value is stored, and which stamps a complete
series has.

The lake keys every row by a UTC delivery hour. A series of `schema.WEEKLY_SERIES` (the hydro
balance) has one value per ISO week, stored at the week's start hour: Monday 00:00 on the zone's
wall clock, in UTC (Sunday 23:00 UTC in winter, 22:00 UTC in summer for Europe/Oslo). The value
itself is what the source gives for that week (NVE: the filling at the end of the week).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd

from forecasting.schema import WEEKLY_SERIES


def _local_midnights(days: pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    """Naive local dates (midnight) → that midnight on the zone's wall clock, in UTC. Midnight exists
    in every European time zone (the clocks change at 01:00 UTC)."""
    return days.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def iso_week_starts(iso_years: Iterable[int], iso_weeks: Iterable[int], timezone: str) -> pd.DatetimeIndex:
    """The start hour (UTC) of each ISO week (`iso_years[i]`, `iso_weeks[i]`) on the zone's clock;
    ValueError for a week that does not exist (week 53 of a 52-week year)."""
    mondays = [date.fromisocalendar(int(y), int(w), 1) for y, w in zip(iso_years, iso_weeks, strict=True)]
    return _local_midnights(pd.DatetimeIndex(pd.to_datetime(mondays)), timezone)


def week_starts_of(stamps: pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    """The start hour (UTC) of the local ISO week that holds each UTC instant of `stamps`."""
    local = pd.DatetimeIndex(stamps).tz_convert(timezone).tz_localize(None).normalize()
    mondays = local - pd.to_timedelta(local.weekday, unit="D")
    return _local_midnights(pd.DatetimeIndex(mondays), timezone)


def week_starts_between(first: pd.Timestamp, stop: pd.Timestamp, timezone: str) -> pd.DatetimeIndex:
    """Every week start hour (UTC) in [first, stop)."""
    if stop <= first:
        return pd.DatetimeIndex([], tz="UTC")
    start = week_starts_of(pd.DatetimeIndex([first]), timezone)[0]
    local_first = start.tz_convert(timezone).tz_localize(None)
    local_stop = pd.Timestamp(stop).tz_convert(timezone).tz_localize(None)
    mondays = pd.date_range(local_first, local_stop, freq="7D")
    starts = _local_midnights(mondays, timezone)
    return starts[(starts >= first) & (starts < stop)]


def expected_stamps(series: str, first: pd.Timestamp, stop: pd.Timestamp, timezone: str) -> pd.DatetimeIndex:
    """The delivery hours a complete `series` has in [first, stop): every hour, or for a weekly
    series every week start hour of the zone."""
    if series in WEEKLY_SERIES:
        return week_starts_between(first, stop, timezone)
    return pd.date_range(first, stop, freq="h", inclusive="left")
