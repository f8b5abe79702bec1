"""The two ingestion runs as plain library calls (usable from a notebook, no Prefect server):
`backfill` (full history or a range, resumable) and `daily` (the new delivery day(s); backfills first
when the lake holds no history yet, as the reference design does)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import pandas as pd

from forecasting.config import Settings
from forecasting.feeds.registry import build_feeds
from forecasting.feeds.replay import ReplayFeed
from forecasting.ingest.land import IngestReport, run_ingest
from forecasting.ingest.plan import plan_backfill, plan_daily
from forecasting.ingest.pull import PullOutcome
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import newest_hours


def default_as_of(settings: Settings) -> pd.Timestamp:
    """ "Now" for a run: the wall clock for live feeds; for replay-only set-ups the end of the
    recording, so the offline default behaves like a daily run on its last recorded day."""
    enabled = settings.enabled_feeds()
    if enabled and all(feed.kind == "replay" for feed in enabled.values()):
        return max(ReplayFeed.from_settings(settings, feed_name=name).recording_end() for name in enabled)
    return pd.Timestamp.now(tz="UTC").floor("min")


def as_utc(stamp: datetime | str | pd.Timestamp | None) -> pd.Timestamp | None:
    """A user-given instant in UTC (naive values are UTC); None stays None."""
    if stamp is None:
        return None
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def resolve_as_of(settings: Settings, as_of: datetime | str | pd.Timestamp | None) -> pd.Timestamp:
    """The run's instant: as given, else `default_as_of`."""
    return as_utc(as_of) or default_as_of(settings)


def frozen_clock(as_of: pd.Timestamp) -> Callable[[], pd.Timestamp]:
    return lambda: as_of


def backfill(
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    start: date | None = None,
    end: pd.Timestamp | None = None,
    resume: bool = True,
    progress: Callable[[int, int, PullOutcome], None] | None = None,
) -> IngestReport:
    as_of = resolve_as_of(settings, as_of)
    lake = LakeFS.open(settings.lake_root)
    plans = plan_backfill(settings, newest_hours(lake), end, start=start, resume=resume, as_of=as_of)
    feeds = build_feeds(settings, clock=frozen_clock(as_of))
    return run_ingest(settings, lake, feeds, plans, purpose="backfill", progress=progress)


def daily(
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    progress: Callable[[int, int, PullOutcome], None] | None = None,
) -> list[IngestReport]:
    """Returns the reports of the runs done: [backfill, daily] on an empty lake, else [daily]."""
    as_of = resolve_as_of(settings, as_of)
    lake = LakeFS.open(settings.lake_root)
    reports = []
    landed = newest_hours(lake)
    if landed.empty:
        reports.append(backfill(settings, as_of=as_of, progress=progress))
        landed = newest_hours(lake)
    feeds = build_feeds(settings, clock=frozen_clock(as_of))
    plans = plan_daily(settings, landed, as_of)
    reports.append(run_ingest(settings, lake, feeds, plans, purpose="daily", progress=progress))
    return reports
