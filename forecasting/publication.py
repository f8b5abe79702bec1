"""Publication rules: when each delivery hour of a series became public (a weekly series: each week).

One mechanism serves the replay clock (what a feed returns "as of" T), the staleness check (which
newest hour a feed must have by T) and honest evaluation (a forecast issued at T sees only rows
published by T).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from forecasting.clock import WEEK
from forecasting.config import Publication
from forecasting.schema import PUBLISHED_AT
from forecasting.weekly import week_starts_of


def published_at(delivery_hours: pd.DatetimeIndex, rule: Publication, timezone: str) -> pd.DatetimeIndex:
    """UTC publication instant of each UTC delivery hour under `rule` in the zone's `timezone`."""
    hours = pd.DatetimeIndex(delivery_hours)
    if rule.kind == "after_delivery":
        return hours + pd.Timedelta(hours=1 + rule.lag_hours)
    local_day = hours.tz_convert(timezone).normalize().tz_localize(None)
    offset = pd.Timedelta(hours=rule.local_time.hour, minutes=rule.local_time.minute)
    if rule.kind == "weekly":  # on `weekday` of the week after the hour's local ISO week
        monday = local_day - pd.to_timedelta(local_day.weekday, unit="D")
        publish_local = monday + pd.Timedelta(days=7 + rule.weekday) + offset
    else:
        publish_local = local_day - pd.Timedelta(days=1) + offset
    return publish_local.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def newest_published_hour(as_of: pd.Timestamp, rule: Publication, timezone: str) -> pd.Timestamp:
    """The last UTC delivery hour that must be public at `as_of` under `rule`."""
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    if rule.kind == "after_delivery":
        return (as_of - pd.Timedelta(hours=1 + rule.lag_hours)).floor("h")
    if rule.kind == "weekly":
        return newest_published_week(as_of, rule, timezone)
    local = as_of.tz_convert(timezone)
    release = local.normalize() + pd.Timedelta(hours=rule.local_time.hour, minutes=rule.local_time.minute)
    # Before today's release, tomorrow is not out: the newest day is today; after it, tomorrow.
    day_after_newest = local.date() + timedelta(days=2 if local >= release else 1)
    end_local = pd.Timestamp(datetime.combine(day_after_newest, datetime.min.time()), tz=timezone)
    return (end_local - pd.Timedelta(hours=1)).tz_convert("UTC")


def newest_published_week(as_of: pd.Timestamp, rule: Publication, timezone: str) -> pd.Timestamp:
    """The start hour (UTC) of the newest ISO week published at `as_of` under a weekly `rule`: where
    a weekly series stores that week's value (`forecasting.weekly`)."""
    last_week, before = week_starts_of(pd.DatetimeIndex([as_of - WEEK, as_of - 2 * WEEK]), timezone)
    return last_week if published_at(pd.DatetimeIndex([last_week]), rule, timezone)[0] <= as_of else before


def known_at(frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The rows of a tidy frame that were public at `as_of` (what a forecast issued then may see)."""
    return frame[frame[PUBLISHED_AT] <= pd.Timestamp(as_of)]
