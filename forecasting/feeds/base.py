"""The one interface every market feed implements, and the failure classes the retry policy acts on.

A feed answers a `SeriesRequest` (zone, series, UTC interval) with a tidy series frame
(see `forecasting.schema`), or raises one of:

* `DataNotAvailable` – the source answered but has no (new) data yet: retry later, slowly.
* `SiteDown`         – timeouts, connection errors, HTTP 5xx and 429: retry with backoff.
* `NotCovered`       – the source never has this zone × series in that interval: not retried.
* `MalformedResponse` – the answer cannot be trusted (HTML error page, truncated or hostile XML,
  wrong shape): not retried; surfaces to the operator with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from forecasting.config import ConfigError, FeedConfig, Settings, Zone
from forecasting.errors import SpotcastError
from forecasting.schema import (
    DELIVERY_HOUR,
    PUBLISHED_AT,
    RETRIEVED_AT,
    SERIES_COL,
    SERIES_UNITS,
    UNIT,
    VALUE,
    ZONE,
    empty_series_frame,
    validate_series_frame,
)


class FeedError(SpotcastError):
    """Base class of feed failures; the message is safe to log (never contains a token)."""


class DataNotAvailable(FeedError):
    """The source has no data for the request yet (or only stale data)."""


class SiteDown(FeedError):
    """The source could not be reached or answered with a server-side / rate-limit error.

    `retry_after_s`: the wait the source asked for (HTTP 429 Retry-After), if it said.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotCovered(FeedError):
    """The source holds nothing at all for this zone × series × interval (e.g. a recording without
    wind for a zone): asking again cannot help, and it is not an error of the source."""


class MalformedResponse(FeedError):
    """The answer is not a well-formed document of the expected kind."""


@dataclass(frozen=True)
class SeriesRequest:
    zone: Zone
    series: str
    start: pd.Timestamp  # UTC, inclusive
    end: pd.Timestamp  # UTC, exclusive

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            stamp = getattr(self, name)
            if stamp.tzinfo is None or stamp.utcoffset() != pd.Timedelta(0):
                raise ValueError(f"SeriesRequest.{name} must be a UTC timestamp, got {stamp!r}")
        if self.end <= self.start:
            raise ValueError(f"SeriesRequest: end {self.end} is not after start {self.start}")
        if self.series not in SERIES_UNITS:
            raise ValueError(f"SeriesRequest: unknown series {self.series!r}")

    def describe(self) -> str:
        return f"{self.series} {self.zone.name} [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC"


class Feed(Protocol):
    """A source of market series. `name` identifies it in the lake's raw area and in reports."""

    name: str

    def fetch(self, request: SeriesRequest) -> pd.DataFrame:
        """Return the tidy series frame for `request` (hours inside [start, end) only)."""
        ...


def http_feed_config(
    settings: Settings, feed_name: str, kind: str, publisher: str, supported: Sequence[str]
) -> FeedConfig:
    """`settings.feeds[feed_name]`, checked to be a feed of `kind` with a base_url, asking only for
    series that `publisher` (as messages name it) serves; ConfigError says what is not so."""
    config = settings.feeds.get(feed_name)
    if config is None or config.kind != kind:
        raise ConfigError(f"feeds.{feed_name}: no feed of kind '{kind}' configured")
    if not config.base_url:
        raise ConfigError(f"feeds.{feed_name}.base_url is required")
    unsupported = [s for s in config.series if s not in supported]
    if unsupported:
        raise ConfigError(
            f"feeds.{feed_name}.series: {unsupported} not served by {publisher}; supported: {list(supported)}"
        )
    return config


def to_series_frame(
    request: SeriesRequest,
    values: pd.Series,
    published_at: pd.Series | pd.Timestamp,
    retrieved_at: pd.Timestamp,
) -> pd.DataFrame:
    """Build the validated tidy frame from hourly `values` indexed by UTC delivery hour.

    Sub-hourly input must already be averaged to hours. Rows outside the request are dropped.
    """
    if values.empty:
        return empty_series_frame()
    index = pd.DatetimeIndex(values.index)
    inside = (index >= request.start) & (index < request.end)
    values = values[inside]
    if isinstance(published_at, pd.Series):
        published_at = published_at[inside].to_numpy()
    frame = pd.DataFrame(
        {
            ZONE: request.zone.name,
            SERIES_COL: request.series,
            DELIVERY_HOUR: pd.DatetimeIndex(values.index).tz_convert("UTC"),
            VALUE: values.to_numpy(dtype="float64"),
            UNIT: SERIES_UNITS[request.series],
            PUBLISHED_AT: published_at,
            RETRIEVED_AT: retrieved_at,
        }
    )
    frame[PUBLISHED_AT] = pd.to_datetime(frame[PUBLISHED_AT], utc=True)
    frame[RETRIEVED_AT] = pd.to_datetime(frame[RETRIEVED_AT], utc=True)
    frame = frame.dropna(subset=[VALUE]).reset_index(drop=True)
    return validate_series_frame(frame, f"feed frame {request.describe()}")


def hourly_mean(values: pd.Series) -> pd.Series:
    """Average sub-hourly values (PT15M/PT30M) to hour-beginning hours; hourly input is unchanged."""
    if values.empty:
        return values
    index = pd.DatetimeIndex(values.index)
    return values.groupby(index.floor("h")).mean()
