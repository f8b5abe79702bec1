"""Planning pulls: the daily run (the new delivery day(s), checked for freshness) and the backfill
(history in chunks of at most a year that never cross a UTC new year, resuming after what the lake
already holds)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from forecasting.clock import HOUR, as_utc
from forecasting.config import Settings, Zone
from forecasting.errors import UsageError
from forecasting.feeds.base import SeriesRequest
from forecasting.feeds.registry import series_sources
from forecasting.ingest.pull import PullPlan
from forecasting.publication import newest_published_hour
from forecasting.schema import SERIES_COL, ZONE

# The daily pull re-reads this much already-landed history so late corrections are picked up, and
# reaches back at most DAILY_REACH: older holes are the backfill's job (the data-quality report shows them).
DAILY_LOOKBACK = pd.Timedelta(hours=48)
DAILY_REACH = pd.Timedelta(days=7)


def _newest_by_pair(lake_newest: pd.DataFrame) -> dict[tuple[str, str], pd.Timestamp]:
    if lake_newest.empty:
        return {}
    return {(row[ZONE], row[SERIES_COL]): row["newest_hour"] for _, row in lake_newest.iterrows()}


def _next_new_year(stamp: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(year=stamp.year + 1, month=1, day=1, tz="UTC")


def plan_daily(settings: Settings, lake_newest: pd.DataFrame, as_of: pd.Timestamp) -> list[PullPlan]:
    """One pull per zone × series up to the newest hour its publication rule says is out at `as_of`."""
    newest = _newest_by_pair(lake_newest)
    plans = []
    for series, feed in series_sources(settings).items():
        rule = settings.series[series].publication
        for zone in settings.zones:
            due = newest_published_hour(as_of, rule, zone.timezone)
            previous = newest.get((zone.name, series))
            if previous is not None:  # a lake filled beyond a past --as-of: judge by what was due then
                previous = min(previous, due)
            start = due - DAILY_REACH
            if previous is not None:
                start = max(start, previous + HOUR - DAILY_LOOKBACK)
            request = SeriesRequest(zone, series, start.floor("h"), due + HOUR)
            plans.append(PullPlan(feed, request, expected_newest=due, previous_newest=previous))
    return plans


def backfill_window(
    settings: Settings,
    series: str,
    zone: Zone,
    as_of: pd.Timestamp | None,
    start: date | None = None,
    end: pd.Timestamp | None = None,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC hours [first, stop) a backfill of one zone × series covers: from `start` (default:
    history.start) up to `end`, or without `end` up to the newest hour published by `as_of`."""
    first = as_utc(start or settings.history.start)
    if end is not None:
        return first, as_utc(end)
    if as_of is None:
        raise ValueError("a backfill window needs an end or an as-of instant")
    rule = settings.series[series].publication
    return first, newest_published_hour(as_of, rule, zone.timezone) + HOUR


def check_backfill_range(
    settings: Settings, as_of: pd.Timestamp | None, start: date | None = None, end: pd.Timestamp | None = None
) -> None:
    """UsageError when the range holds no hour from the history start on for any zone × series (an
    end before the start, a range wholly before history.start, an as-of instant before anything of
    the history was published): such a run would end in "nothing to pull" and exit 0."""
    history_start = as_utc(settings.history.start)
    windows = [
        backfill_window(settings, series, zone, as_of, start, end)
        for series in series_sources(settings)
        for zone in settings.zones
    ]
    if any(max(first, history_start) < stop for first, stop in windows):
        return
    first = as_utc(start or settings.history.start)
    if start is not None and end is not None and as_utc(end) <= first:
        raise UsageError(
            f"nothing to backfill: the end {as_utc(end):%Y-%m-%d %H:%M} UTC is not after the start "
            f"{first:%Y-%m-%d %H:%M} UTC"
        )
    if end is not None:  # it ends by the history start
        span = f"up to {as_utc(end):%Y-%m-%d %H:%M} UTC"
        if start is not None:
            span = f"[{first:%Y-%m-%d %H:%M}, {as_utc(end):%Y-%m-%d %H:%M}) UTC"
        raise UsageError(
            f"nothing to backfill: the range {span} lies before the history, which starts on "
            f"{settings.history.start} (history.start); give an end after that"
        )
    first = max(first, history_start)
    raise UsageError(
        f"nothing to backfill: the as-of instant {as_of:%Y-%m-%d %H:%M} UTC is before anything from the "
        f"start {first:%Y-%m-%d} on was published (history.start is {settings.history.start})"
    )


def plan_backfill(
    settings: Settings,
    lake_newest: pd.DataFrame,
    end: pd.Timestamp | None = None,
    start: date | None = None,
    resume: bool = True,
    as_of: pd.Timestamp | None = None,
) -> list[PullPlan]:
    """Chunked history pulls from `start` (default: history.start) up to `end` (exclusive, UTC) or,
    without `end`, up to everything published by `as_of` (day-ahead series reach into tomorrow);
    chunks are at most backfill_chunk_days long and each lies within one UTC year.

    With `resume`, each zone × series starts after the newest hour already in the lake, so an
    interrupted backfill picks up where it stopped."""
    newest = _newest_by_pair(lake_newest) if resume else {}
    chunk = pd.Timedelta(days=settings.history.backfill_chunk_days)
    plans = []
    for series, feed in series_sources(settings).items():
        for zone in settings.zones:
            first, stop_at = backfill_window(settings, series, zone, as_of, start, end)
            landed = newest.get((zone.name, series))
            cursor = max(first, landed + HOUR) if landed is not None else first
            while cursor < stop_at:
                # a chunk ends at the UTC new year too: it lands in one curated (year) file, so a
                # backfill writes each year file once instead of once per chunk that touches it
                stop = min(cursor + chunk, _next_new_year(cursor), stop_at)
                plans.append(PullPlan(feed, SeriesRequest(zone, series, cursor, stop)))
                cursor = stop
    return plans
