"""Repairing the lake: set corrupt series files aside, find the hours missing against the
publication rules, and plan pulls that fetch them again.

A resumed backfill continues after the newest hour, so a year deleted or set aside inside the history
would stay missing; the repair looks at every hour from the history start to what the publication
rules say is out, and pulls the holes. Hours the source never had (a gap in a recording) come back
empty and stay holes: they are listed by `spotcast check`, and cost one quick pull per repair.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.feeds.base import SeriesRequest
from forecasting.feeds.registry import series_sources
from forecasting.ingest.plan import HOUR, backfill_window
from forecasting.ingest.pull import PullPlan
from forecasting.lake.check import corrupt_curated_files, quarantine
from forecasting.lake.files import CorruptFile, LakeFS, write_lock
from forecasting.lake.series_store import landed_hours
from forecasting.weekly import expected_stamps

# Holes closer than this are pulled in one request: fewer pulls, and re-pulled hours land unchanged.
MERGE_GAP = pd.Timedelta(days=7)


@dataclass(frozen=True)
class Hole:
    """Delivery hours [start, end) of one zone × series that the lake lacks."""

    zone: str
    series: str
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / HOUR)

    def describe(self) -> str:
        return (
            f"{self.series} {self.zone}: {self.hours} hour(s) missing, "
            f"[{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC"
        )


def describe_holes(holes: list[Hole]) -> list[str]:
    """One line per zone × series: its hole, or how many hours in how many holes and the largest."""
    by_pair: dict[tuple[str, str], list[Hole]] = {}
    for hole in holes:
        by_pair.setdefault((hole.zone, hole.series), []).append(hole)
    lines = []
    for (zone, series), pair in by_pair.items():
        if len(pair) == 1:
            lines.append(pair[0].describe())
            continue
        largest = max(pair, key=lambda h: h.hours)
        lines.append(
            f"{series} {zone}: {sum(h.hours for h in pair)} hour(s) missing in {len(pair)} holes, the "
            f"largest [{largest.start:%Y-%m-%d %H:%M}, {largest.end:%Y-%m-%d %H:%M}) UTC"
        )
    return lines


def _runs(zone: str, series: str, missing: pd.DatetimeIndex) -> list[Hole]:
    """Contiguous runs of missing hours."""
    if missing.empty:
        return []
    steps = np.diff(missing.asi8) != HOUR.value
    breaks = [0, *(np.flatnonzero(steps) + 1), len(missing)]
    return [Hole(zone, series, missing[a], missing[b - 1] + HOUR) for a, b in itertools.pairwise(breaks)]


def find_holes(
    settings: Settings,
    lake: LakeFS,
    as_of: pd.Timestamp,
    start: date | None = None,
    end: pd.Timestamp | None = None,
) -> tuple[list[Hole], list[CorruptFile]]:
    """Per configured zone × supplied series: the hours from `start` (default: history.start) up to
    `end` (default: the newest hour published by `as_of`) that the curated area lacks, and the files
    that could not be read (their hours count as missing)."""
    holes: list[Hole] = []
    unreadable: list[CorruptFile] = []
    for series in series_sources(settings):
        for zone in settings.zones:
            first, stop = backfill_window(settings, series, zone, as_of, start, end)
            if stop <= first:
                continue
            present, bad = landed_hours(lake, zone.name, series)
            unreadable += bad
            expected = expected_stamps(series, first, stop, zone.timezone)  # a weekly series: its weeks
            holes += _runs(zone.name, series, expected.difference(present))
    return holes, unreadable


def plan_repair(settings: Settings, holes: list[Hole]) -> list[PullPlan]:
    """Pulls covering every hole: holes of a zone × series closer than MERGE_GAP share a pull, and no
    pull is longer than the backfill chunk."""
    feeds = series_sources(settings)
    chunk = pd.Timedelta(days=settings.history.backfill_chunk_days)
    merged: list[Hole] = []
    for hole in holes:
        last = merged[-1] if merged else None
        if (
            last
            and (last.zone, last.series) == (hole.zone, hole.series)
            and hole.start - last.end < MERGE_GAP
        ):
            merged[-1] = Hole(hole.zone, hole.series, last.start, hole.end)
        else:
            merged.append(hole)
    plans = []
    for hole in merged:
        cursor = hole.start
        while cursor < hole.end:
            stop = min(cursor + chunk, hole.end)
            request = SeriesRequest(settings.zone(hole.zone), hole.series, cursor, stop)
            plans.append(PullPlan(feeds[hole.series], request))
            cursor = stop
    return plans


def set_aside_corrupt_files(settings: Settings, lake: LakeFS, purpose: str) -> list[CorruptFile]:
    """Move every curated file of the configured zones that cannot be used to the quarantine (under
    the write lock), so its hours become holes; returns what was set aside."""
    with write_lock(lake, purpose, settings.lake_lock_wait_s):
        corrupt = corrupt_curated_files(lake, settings.zone_names)
        for problem in corrupt:
            quarantine(lake, problem.path)
    return corrupt
