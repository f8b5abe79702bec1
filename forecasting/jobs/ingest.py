"""The ingestion runbook, written once: `backfill` (full history or a range, resumable, or a repair
of holes) and `daily` (the new delivery day(s); backfills first when the lake holds no history yet,
as the reference design does; then lands the desk's configured forwards files).

Plain library calls (a notebook needs no Prefect server). How the pulls run is a hook: `submit`
starts one pull and returns something with `.result()`. By default a thread pool runs them; the
Prefect flows pass their task's `.submit`, so each pull is a task run in the UI and the steps are
the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import date, datetime
from typing import Protocol

import pandas as pd

from forecasting import progress as shown_progress
from forecasting.clock import as_utc, utc_now
from forecasting.config import History, Settings
from forecasting.errors import SpotcastError, UsageError
from forecasting.feeds.base import Feed
from forecasting.feeds.registry import build_feeds
from forecasting.feeds.replay import ReplayFeed
from forecasting.forwards import ForwardsFileError
from forecasting.ingest.land import IngestReport, Landing
from forecasting.ingest.plan import check_backfill_range, plan_backfill, plan_daily
from forecasting.ingest.pull import PullOutcome, PullPlan, pull_planned
from forecasting.ingest.repair import find_holes, plan_repair, set_aside_corrupt_files
from forecasting.lake.files import LakeFS
from forecasting.lake.forward_store import LandedForwards, forward_files, land_forwards
from forecasting.lake.series_store import newest_landed
from forecasting.schema import WEEKLY_SERIES

log = logging.getLogger("spotcast.ingest")


class PullResult(Protocol):
    def result(self) -> PullOutcome: ...


# Starts one pull: (feeds, plan, settings) → a future of its outcome. A Prefect task's `.submit` is one.
Submit = Callable[[dict[str, Feed], PullPlan, Settings], PullResult]
Progress = Callable[[int, int, PullOutcome], None]

# How far past the end of its recording a replay-only set-up may be run: its last values come out up
# to a day after its last prices (the default as-of), and "as of when everything was out" is a fair
# ask. Later than this the replay has nothing to serve: a mistyped year, not a replay.
REPLAY_AS_OF_GRACE = pd.Timedelta(days=7)


def _replay_only(settings: Settings) -> bool:
    enabled = settings.enabled_feeds()
    return bool(enabled) and all(feed.kind == "replay" for feed in enabled.values())


def _recording_end(settings: Settings) -> pd.Timestamp:
    enabled = settings.enabled_feeds()
    return max(ReplayFeed.from_settings(settings, feed_name=name).recording_end() for name in enabled)


def default_as_of(settings: Settings) -> pd.Timestamp:
    """ "Now" for a run: the wall clock for live feeds; for replay-only set-ups the end of the
    recording, so the offline default behaves like a daily run on its last recorded day."""
    if _replay_only(settings):
        return _recording_end(settings)
    return utc_now().floor("min")


def check_as_of(settings: Settings, as_of: pd.Timestamp) -> None:
    """UsageError for a given as-of instant no run can have: after the wall clock (nothing is
    published in the future; a run would stamp its pulls with that date), or, for a replay-only
    set-up, more than REPLAY_AS_OF_GRACE after the end of the recording (nothing to replay there)."""
    now = utc_now()
    if as_of > now:
        raise UsageError(
            f"the as-of instant {as_of:%Y-%m-%d %H:%M} UTC is in the future (now is {now:%Y-%m-%d %H:%M} "
            "UTC): nothing is published by then yet; give a past instant, or leave --as-of out"
        )
    if not _replay_only(settings):
        return
    end = _recording_end(settings)
    if as_of > end + REPLAY_AS_OF_GRACE:
        sources = ", ".join(
            f"feeds.{name}.source = {feed.source!r}" for name, feed in settings.enabled_feeds().items()
        )
        raise UsageError(
            f"the as-of instant {as_of:%Y-%m-%d %H:%M} UTC is after the end of the replayed recording "
            f"({end:%Y-%m-%d %H:%M} UTC, {sources}) by more than {REPLAY_AS_OF_GRACE.days} days: "
            "the replay holds nothing published then; leave --as-of out to run as of its end"
        )


def resolve_as_of(settings: Settings, as_of: datetime | str | pd.Timestamp | None) -> pd.Timestamp:
    """The run's instant: as given (UsageError when no run can have it, see `check_as_of`), else
    `default_as_of`."""
    given = as_utc(as_of)
    if given is None:
        return default_as_of(settings)
    check_as_of(settings, given)
    return given


def frozen_clock(as_of: pd.Timestamp) -> Callable[[], pd.Timestamp]:
    return lambda: as_of


@contextmanager
def thread_pool(max_workers: int = 4) -> Iterator[Submit]:
    """The default `submit`: pulls in a pool of threads (pending ones are cancelled on an error)."""
    pool = ThreadPoolExecutor(max_workers=max_workers)
    try:
        yield lambda feeds, plan, settings: pool.submit(pull_planned, feeds, plan, settings)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ingest(
    settings: Settings,
    lake: LakeFS,
    plans: Sequence[PullPlan],
    as_of: pd.Timestamp,
    purpose: str,
    submit: Submit | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Start every pull at once, then land them in plan order as they complete: each zone × series
    lands oldest chunk first, so after a crash the lake holds a gap-free prefix of its history that a
    resumed backfill (which starts after the newest hour) continues. How far it is shows as one
    progress task, "<purpose> pulls", done/total with the landed and failed counts (a bar on a
    terminal, see forecasting.progress); `progress` is called after each landing too."""
    feeds = build_feeds(settings, clock=frozen_clock(as_of))
    log.info("%s: %d pull(s) as of %s", purpose, len(plans), as_of)
    landing = Landing(lake, purpose, settings.lake_lock_wait_s)
    if not plans:
        return landing.report
    with ExitStack() as stack:
        start = submit or stack.enter_context(thread_pool())
        futures = [start(feeds, plan, settings) for plan in plans]
        step = stack.enter_context(shown_progress.task(f"{purpose} pulls", total=len(plans)))
        counts = dict.fromkeys(("landed", "empty", "failed"), 0)
        for done, future in enumerate(futures, start=1):
            outcome = landing.add(future.result())
            kind = {"ok": "landed", "empty": "empty"}.get(outcome.status, "failed")
            counts[kind] += 1
            step.advance(detail=_counts(counts))
            if progress:
                progress(done, len(plans), outcome)
    return landing.report


def _counts(counts: dict[str, int]) -> str:
    """`12 landed, 1 failed` (`, 3 empty` when a range had no data: a gap in the source)."""
    empty = f", {counts['empty']} empty" if counts["empty"] else ""
    return f"{counts['landed']} landed{empty}, {counts['failed']} failed"


def backfill(
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    start: date | None = None,
    end: pd.Timestamp | None = None,
    resume: bool = True,
    repair: bool = False,
    submit: Submit | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Pull history from `start` (default: history.start) up to `end` (default: all published by
    `as_of`), after what already landed unless `resume` is off. With `repair`, first set corrupt
    curated files aside, then pull every hole in that range instead."""
    as_of = resolve_as_of(settings, as_of)
    end = as_utc(end)
    check_backfill_range(settings, as_of, start, end)
    lake = LakeFS.of(settings)
    if repair:
        set_aside_corrupt_files(settings, lake, "repair")
        holes, _ = find_holes(settings, lake, as_of, start, end)
        log.info("repair: %d hole(s), %d hour(s) missing", len(holes), sum(h.hours for h in holes))
        return ingest(settings, lake, plan_repair(settings, holes), as_of, "repair", submit, progress)
    if start is None:
        say_history_before_start(settings)
    landed = newest_landed(lake)
    landed.warn()
    plans = plan_backfill(settings, landed.table, end, start=start, resume=resume, as_of=as_of)
    return ingest(settings, lake, plans, as_of, "backfill", submit, progress)


def say_history_before_start(settings: Settings) -> None:
    """Say when a replayed recording reaches back before history.start: a backfill from it leaves
    those rows out, which would otherwise go unsaid (the EPF German file starts in 2012). A warning
    under the shipped default start (2015-01-01), an info line under a start the user chose."""
    history_start = pd.Timestamp(settings.history.start, tz="UTC")
    level = logging.WARNING if settings.history.start == History().start else logging.INFO
    for name, feed in settings.enabled_feeds().items():
        if feed.kind != "replay":
            continue
        # the weekly hydro balance reaches back to 1995 by nature: only the hourly series are news
        hourly = tuple(series for series in feed.series if series not in WEEKLY_SERIES)
        try:
            before = ReplayFeed.from_settings(settings, feed_name=name).rows_before(history_start, hourly)
        except (SpotcastError, OSError, KeyError, ValueError):
            continue  # an unreadable recording: its pulls say what is wrong with it
        # not the hours of the start's local day before UTC midnight (the bundled 2015-01-01 00:00 CET)
        before = before[before["first_hour"] < history_start - pd.Timedelta(days=1)]
        if before.empty:
            continue
        zones = ", ".join(f"{row.zone} from {row.first_hour:%Y-%m-%d %H:%M} UTC" for row in before.itertuples())
        log.log(
            level,
            "feeds.%s: %s row(s) of the recording before history.start %s are not landed (%s); set "
            '[history] start = "%s" to land them',
            name,
            f"{int(before['rows'].sum()):,}",
            settings.history.start,
            zones,
            f"{before['first_hour'].min():%Y-%m-%d}",
        )


def daily(
    settings: Settings,
    as_of: pd.Timestamp | None = None,
    submit: Submit | None = None,
    progress: Progress | None = None,
    backfill_first: Callable[[pd.Timestamp], IngestReport] | None = None,
) -> list[IngestReport]:
    """Returns the reports of the runs done: [backfill, daily] on an empty lake, else [daily].
    `backfill_first(as_of)` runs that backfill (default: `backfill` with the same hooks)."""
    as_of = resolve_as_of(settings, as_of)
    lake = LakeFS.of(settings)
    reports = []
    landed = newest_landed(lake)
    if landed.table.empty:
        run_backfill = backfill_first or (lambda at: backfill(settings, at, submit=submit, progress=progress))
        reports.append(run_backfill(as_of))
        landed = newest_landed(lake)
    landed.warn()
    plans = plan_daily(settings, landed.table, as_of)
    reports.append(ingest(settings, lake, plans, as_of, "daily", submit, progress))
    land_configured_forwards(settings)
    return reports


def land_configured_forwards(settings: Settings) -> LandedForwards | None:
    """Land the files `[forwards] files` names (None when there is none). A refused file does not
    stop the daily run: it is logged in one line, and the forecast uses the forwards landed before."""
    paths = forward_files(settings)
    if not paths:
        configured = ", ".join(settings.forwards.files)
        log.info("no forwards file %s", f"found for [forwards] files = {configured}" if configured else "configured")
        return None
    try:
        landed = land_forwards(settings, paths)
    except ForwardsFileError as exc:
        log.warning("%s; the forecast uses the forwards landed before", exc)
        return None
    log.info(
        "forwards: %d row(s) new, %d unchanged, from %s",
        landed.rows_new,
        landed.rows_unchanged,
        ", ".join(path.name for path in paths),
    )
    return landed
