"""The offline default feed: serves recorded history (the bundled NO1–NO5 data with NVE's weekly
hydro balance, or any file in the same format) *as if live*. With a settable clock it returns only
what had been published by then, so the daily flow can run for any past date and evaluation cannot
peek ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path

import pandas as pd

from forecasting.clock import utc_now
from forecasting.config import Publication, Settings, SourceFormat
from forecasting.feeds.base import DataNotAvailable, NotCovered, SeriesRequest
from forecasting.feeds.bundled import read_history_source
from forecasting.publication import published_at
from forecasting.schema import (
    DELIVERY_HOUR,
    PRICE,
    PUBLISHED_AT,
    RETRIEVED_AT,
    SERIES_COL,
    SERIES_COLUMNS,
    VALUE,
    ZONE,
    validate_series_frame,
)


def _modified(source: str) -> tuple[float, ...]:
    """Modification times of the source's files: a changed recording is read again."""
    path = Path(source)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return tuple(f.stat().st_mtime for f in files if f.exists())


Pairs = dict[tuple[str, str], pd.DataFrame]


@lru_cache(maxsize=4)
def _stamped_pairs(
    source: str,
    rules: tuple[tuple[str, Publication], ...],
    timezones: tuple[tuple[str, str], ...],
    modified: tuple[float, ...],
    file_format: str | None = None,
) -> Pairs:
    """Read and stamp a recording once per process, split per zone × series and sorted by hour: a run
    builds several feeds over one source (the replay clock's end, then the pulls), reading 1.8 M rows
    costs seconds each time, and a fetch then slices one pair instead of scanning all rows.
    `file_format`: the source's SourceFormat as JSON (a hashable key), None for the default."""
    zone_timezones, publication = dict(timezones), dict(rules)
    parsed_format = SourceFormat.model_validate_json(file_format) if file_format else None
    history = read_history_source(source, zone_timezones, parsed_format)
    pairs = {}
    for (zone, series), rows in history.dropna(subset=[VALUE]).groupby([ZONE, SERIES_COL], sort=True):
        if series not in publication:
            continue  # no feed can be asked for a series without a rule (registry.series_sources)
        rows = rows.sort_values(DELIVERY_HOUR).reset_index(drop=True)
        hours = pd.DatetimeIndex(rows[DELIVERY_HOUR])
        rows[PUBLISHED_AT] = published_at(hours, publication[series], zone_timezones[zone])
        pairs[(zone, series)] = rows
    return pairs


def forget_recordings() -> None:
    """Drop the recordings this process keeps (see `_stamped_pairs`): a long job that holds its own
    copy of the history (a backtest) frees the second one."""
    _stamped_pairs.cache_clear()


class ReplayFeed:
    """Recorded history served through the feed interface; `clock()` is the replay "as of"."""

    name = "replay"

    def __init__(
        self,
        source: str,
        rules: dict[str, Publication],
        timezones: dict[str, str],
        clock: Callable[[], pd.Timestamp] = utc_now,
        file_format: SourceFormat | None = None,
    ) -> None:
        self.source = source
        self.rules = rules
        self.timezones = timezones
        self.clock = clock
        self.file_format = file_format

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Callable[[], pd.Timestamp] = utc_now, feed_name: str = "replay"
    ) -> ReplayFeed:
        feed = settings.feeds[feed_name]
        if not feed.source:
            raise ValueError(f"feeds.{feed_name}.source must name the recorded history to replay")
        return cls(
            source=feed.source,
            rules={name: rule.publication for name, rule in settings.series.items()},
            timezones=settings.zone_timezones,
            clock=clock,
            file_format=feed.format,
        )

    @cached_property
    def _pairs(self) -> Pairs:
        """The recording per zone × series (shared: do not mutate)."""
        return _stamped_pairs(
            self.source,
            tuple(sorted(self.rules.items())),
            tuple(sorted(self.timezones.items())),
            _modified(self.source),
            self.file_format.model_dump_json() if self.file_format else None,
        )

    @cached_property
    def history(self) -> pd.DataFrame:
        """All recorded rows, stamped with the instant each became public, sorted by zone, series
        and hour."""
        return pd.concat(self._pairs.values(), ignore_index=True)

    def recording_end(self) -> pd.Timestamp:
        """The replay's natural "now": the last instant at which the recorded prices of every zone
        were still complete (the earliest of their final publication times). Covariates that end
        earlier in the recording (NO5 wind stops in 2016) are simply not covered after their end."""
        return min(
            rows[PUBLISHED_AT].iloc[-1] for (_, series), rows in self._pairs.items() if series == PRICE
        )

    def rows_before(self, instant: pd.Timestamp, series: tuple[str, ...]) -> pd.DataFrame:
        """Per zone (of `series`): how many recorded rows deliver before `instant`, and the first hour
        of the recording; no row for a zone with none before it."""
        counts = [
            (zone, int(rows[DELIVERY_HOUR].searchsorted(instant)), rows[DELIVERY_HOUR].iloc[0])
            for (zone, name), rows in self._pairs.items()
            if name in series
        ]
        table = pd.DataFrame(counts, columns=[ZONE, "rows", "first_hour"])
        table = table[table["rows"] > 0]
        return table.groupby(ZONE, sort=True).agg(rows=("rows", "sum"), first_hour=("first_hour", "min")).reset_index()

    def fetch(self, request: SeriesRequest) -> pd.DataFrame:
        as_of = pd.Timestamp(self.clock()).tz_convert("UTC")
        pair = self._pairs.get((request.zone.name, request.series))
        if pair is None:
            raise NotCovered(f"replay: the recording holds no {request.series} of {request.zone.name}")
        hours = pair[DELIVERY_HOUR]
        first, last = hours.searchsorted(request.start), hours.searchsorted(request.end)
        recorded = pair.iloc[first:last]
        if recorded.empty:
            raise NotCovered(f"replay: the recording holds no {request.describe()}")
        rows = recorded[recorded[PUBLISHED_AT] <= as_of]
        if rows.empty:
            raise DataNotAvailable(
                f"replay: nothing published for {request.describe()} as of {as_of:%Y-%m-%d %H:%M} UTC"
            )
        # the recording is already tidy: served as is, with this pull's retrieval time
        frame = rows.assign(**{RETRIEVED_AT: as_of})[SERIES_COLUMNS].reset_index(drop=True)
        return validate_series_frame(frame, f"replay {request.describe()}")
