"""Time, in one place: the length of an hour and a week, instants in UTC, the wall clock ("now"),
and the weekly issue instants of a zone's clock.

Every instant Spotcast stores or compares is a UTC `pd.Timestamp`; local clocks (a zone's, the
schedule's) appear only where an instant is made from a local date and hour. This module imports
nothing of Spotcast, so every layer can use it. The run's as-of instant (`resolve_as_of`) is not
here: it needs the replay feed's recording end, and the feeds take their "now" from this module.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import overload

import numpy as np
import pandas as pd

WEEK_HOURS = 168
HOUR = pd.Timedelta(hours=1)
WEEK = pd.Timedelta(hours=WEEK_HOURS)


def utc_now() -> pd.Timestamp:
    """The wall clock, in UTC: the default `clock` of every feed and a run's "now". Code that must
    run at another instant takes a `clock` argument (a replay, a test) instead of patching this."""
    return pd.Timestamp.now(tz="UTC")


@overload
def as_utc(stamp: None) -> None: ...
@overload
def as_utc(stamp: date | datetime | str | pd.Timestamp) -> pd.Timestamp: ...
def as_utc(stamp: date | datetime | str | pd.Timestamp | None) -> pd.Timestamp | None:
    """An instant in UTC, from what a user or a file gives (a date is its midnight; naive values
    are UTC); None stays None. ValueError for text that is no instant."""
    if stamp is None:
        return None
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def weekly_origins(
    start: date | str,
    end: date | str,
    weekday: int = 0,
    local_time: time = time(12, 0),
    timezone: str = "Europe/Oslo",
) -> pd.DatetimeIndex:
    """UTC issue instants: every `weekday` (0 = Monday) at `local_time` in `timezone`, for the local
    dates in [start, end). The default, Monday 12:00 Oslo, is before that day's auction result, so
    the forecast starts with Tuesday."""
    days = pd.date_range(pd.Timestamp(start).date(), pd.Timestamp(end).date(), freq="D", inclusive="left")
    days = days[days.weekday == weekday]
    local = days + pd.Timedelta(hours=local_time.hour, minutes=local_time.minute)
    return local.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


def weekly_issues_before(issued_at: pd.Timestamp, timezone: str, weeks_back: np.ndarray) -> pd.DatetimeIndex:
    """Issue instants `weeks_back` weeks before `issued_at` on the local clock (same weekday and
    local hour, minutes dropped), so a daily run at 14:00 finds last weeks' 14:00 issues whatever
    the DST offset or the minute it started."""
    local = pd.Timestamp(issued_at).tz_convert(timezone).floor("h").tz_localize(None)
    days = local - pd.to_timedelta(7 * np.asarray(weeks_back), unit="D")
    return pd.DatetimeIndex(days).tz_localize(timezone, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
