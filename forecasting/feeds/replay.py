"""The offline default feed: serves recorded history (the bundled NO1–NO5 data, or any file in the
same format) *as if live*. With a settable clock it returns only what had been published by then,
so the daily flow can run for any past date and evaluation cannot peek ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path

import pandas as pd

from forecasting.config import Publication, Settings
from forecasting.feeds.base import DataNotAvailable, NotCovered, SeriesRequest, to_series_frame
from forecasting.feeds.bundled import read_history_source
from forecasting.publication import stamp_publication
from forecasting.schema import DELIVERY_HOUR, PRICE, PUBLISHED_AT, SERIES_COL, VALUE, ZONE


def utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _modified(source: str) -> tuple[float, ...]:
    """Modification times of the source's files: a changed recording is read again."""
    path = Path(source)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return tuple(f.stat().st_mtime for f in files if f.exists())


@lru_cache(maxsize=4)
def _stamped_history(
    source: str,
    rules: tuple[tuple[str, Publication], ...],
    timezones: tuple[tuple[str, str], ...],
    modified: tuple[float, ...],
) -> pd.DataFrame:
    """Read and stamp a recording once per process: a run builds several feeds over one source
    (the replay clock's end, then the pulls), and reading 1.8 M rows costs seconds each time."""
    zone_timezones = dict(timezones)
    history = read_history_source(source, zone_timezones)
    history[PUBLISHED_AT] = stamp_publication(history, dict(rules), zone_timezones)
    return history.sort_values([ZONE, SERIES_COL, DELIVERY_HOUR]).reset_index(drop=True)


class ReplayFeed:
    """Recorded history served through the feed interface; `clock()` is the replay "as of"."""

    name = "replay"

    def __init__(
        self,
        source: str,
        rules: dict[str, Publication],
        timezones: dict[str, str],
        clock: Callable[[], pd.Timestamp] = utc_now,
    ) -> None:
        self.source = source
        self.rules = rules
        self.timezones = timezones
        self.clock = clock

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
            timezones={z.name: z.timezone for z in settings.zones},
            clock=clock,
        )

    @cached_property
    def history(self) -> pd.DataFrame:
        """All recorded rows, stamped with the instant each became public (shared: do not mutate)."""
        return _stamped_history(
            self.source,
            tuple(sorted(self.rules.items())),
            tuple(sorted(self.timezones.items())),
            _modified(self.source),
        )

    def recording_end(self) -> pd.Timestamp:
        """The replay's natural "now": the last instant at which the recorded prices of every zone
        were still complete (the earliest of their final publication times). Covariates that end
        earlier in the recording (NO5 wind stops in 2016) are simply not covered after their end."""
        prices = self.history[self.history[SERIES_COL] == PRICE]
        return prices.groupby(ZONE)[PUBLISHED_AT].max().min()

    @cached_property
    def _by_pair(self) -> dict[tuple[str, str], pd.DataFrame]:
        """The history split per zone × series, each sorted by hour: a fetch slices, never scans."""
        return {key: rows.reset_index(drop=True) for key, rows in self.history.groupby([ZONE, SERIES_COL])}

    def fetch(self, request: SeriesRequest) -> pd.DataFrame:
        as_of = self.clock()
        pair = self._by_pair.get((request.zone.name, request.series))
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
        values = pd.Series(rows[VALUE].to_numpy(), index=pd.DatetimeIndex(rows[DELIVERY_HOUR]))
        # as naive UTC: the numpy copy of tz-aware stamps would box each one into a Timestamp
        published = pd.Series(rows[PUBLISHED_AT].dt.tz_localize(None).to_numpy(), index=values.index)
        return to_series_frame(request, values, published, retrieved_at=as_of)
