"""The Energy-Charts feed (api.energy-charts.info, Fraunhofer ISE): request URLs, JSON parsing and
the mapping of its answers onto the feed failure classes.

Series served:

* `price_da` from `/price?bzn=…` — per bidding zone (`Zone.energy_charts_bzn`, else the zone name).
* `load_da`, `wind_onshore_da`, `solar_da` from `/public_power_forecast?country=…` (day-ahead).
  That endpoint is per *country*, not per bidding zone: the country is derived from the zone name
  (NO1 → `no`, DE-LU → `de`), so every Norwegian zone gets the national total. It is only exact for
  single-zone countries.

Answers are `unix_seconds` (UTC epoch, interval start) plus an equal-length value array; nulls are
dropped (with a warning that counts them) and 15-minute values averaged to hours. The answer's `unit` field is never read: it is not
stable ("EUR/MWh", "No Unit", "EUR / MWh"), the unit comes from `forecasting.schema.SERIES_UNITS`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import requests

from forecasting.clock import utc_now
from forecasting.config import ConfigError, Publication, Settings, Zone
from forecasting.feeds.base import (
    DataNotAvailable,
    FeedError,
    MalformedResponse,
    SeriesRequest,
    hourly_mean,
    http_feed_config,
    to_series_frame,
)
from forecasting.feeds.http import Answer, http_get, json_body
from forecasting.publication import published_at

LOGGER = logging.getLogger("spotcast.feeds.energy_charts")

# JSON field names of the answers.
UNIX_SECONDS = "unix_seconds"
PRICE = "price"
FORECAST_VALUES = "forecast_values"
DEPRECATED = "deprecated"
DETAIL = "detail"
DETAIL_LOC = "loc"
DETAIL_MSG = "msg"

# Query parameter names and fixed values.
BZN = "bzn"
COUNTRY = "country"
PRODUCTION_TYPE = "production_type"
FORECAST_TYPE = "forecast_type"
START = "start"
END = "end"
DAY_AHEAD = "day-ahead"


@dataclass(frozen=True)
class Endpoint:
    path: str
    values_field: str
    production_type: str | None = None  # set for /public_power_forecast only


ENDPOINTS: dict[str, Endpoint] = {
    "price_da": Endpoint("/price", PRICE),
    "load_da": Endpoint("/public_power_forecast", FORECAST_VALUES, "load"),
    "wind_onshore_da": Endpoint("/public_power_forecast", FORECAST_VALUES, "wind_onshore"),
    "solar_da": Endpoint("/public_power_forecast", FORECAST_VALUES, "solar"),
}
SUPPORTED_SERIES = tuple(ENDPOINTS)


class UnsupportedSeries(FeedError, ValueError):
    """The feed cannot serve this series (no endpoint, or no publication rule configured)."""


class InvalidRequest(MalformedResponse):
    """HTTP 422: Energy-Charts rejected the query parameters; retrying cannot help."""


def country_code(zone: Zone) -> str:
    """Energy-Charts country code of a zone: its leading two letters, lower case (NO1 → `no`)."""
    match = re.match(r"[A-Za-z]{2}", zone.name)
    if match is None:
        raise UnsupportedSeries(f"energy_charts: cannot derive a country from zone {zone.name!r}")
    return match.group(0).lower()


def _iso_utc(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%MZ")


def query_params(request: SeriesRequest, endpoint: Endpoint) -> dict[str, str]:
    """The query of `request`; `end` may be inclusive upstream, the frame is cut to [start, end)."""
    params = {START: _iso_utc(request.start), END: _iso_utc(request.end)}
    if endpoint.production_type is None:
        params[BZN] = request.zone.energy_charts_bzn or request.zone.name
    else:
        params[COUNTRY] = country_code(request.zone)
        params[PRODUCTION_TYPE] = endpoint.production_type
        params[FORECAST_TYPE] = DAY_AHEAD
    return params


def _detail_item(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get(DETAIL_LOC, []))
    return f"{where}: {item.get(DETAIL_MSG, item)}"


def _detail_text(response: Answer) -> str:
    """The `detail` of a FastAPI error body: a string, or a list of {loc, msg} items."""
    try:
        detail = response.json()[DETAIL]
    except (ValueError, KeyError, TypeError):
        return response.reason or "no detail"
    if isinstance(detail, list):
        return "; ".join(_detail_item(item) for item in detail)
    return str(detail)


def check_status(response: Answer, what: str) -> None:
    """Map the statuses http_get hands back (not 429/5xx) onto the failure classes."""
    status = response.status
    if status == 404:
        raise DataNotAvailable(f"{what}: HTTP 404 ({_detail_text(response)})")
    if status == 422:
        raise InvalidRequest(f"{what}: request rejected (HTTP 422): {_detail_text(response)}")
    if status != 200:
        raise MalformedResponse(f"{what}: unexpected HTTP {status}")


def parse_body(response: Answer, what: str) -> dict:
    """The JSON object of a 200 answer; empty answers, HTML pages and broken JSON are malformed."""
    body = json_body(response, what)
    if not isinstance(body, dict):
        raise MalformedResponse(f"{what}: expected a JSON object, got {type(body).__name__}")
    if body.get(DEPRECATED) is True:
        # Energy-Charts announces discontinuation at least six months ahead this way.
        LOGGER.warning(
            "%s: Energy-Charts marks this endpoint deprecated; move to its successor", what
        )
    return body


def _is_number(item: object) -> bool:
    # bool is an int subclass; JSON true/false is not a number here.
    return isinstance(item, int | float) and not isinstance(item, bool)


def _array(body: dict, field: str, what: str) -> list:
    if field not in body:
        raise MalformedResponse(f"{what}: answer has no {field!r} field")
    array = body[field]
    if not isinstance(array, list):
        raise MalformedResponse(f"{what}: {field!r} is not an array")
    return array


def values_from_body(body: dict, values_field: str, what: str) -> pd.Series:
    """Non-null values indexed by UTC interval start, checked for shape and type."""
    stamps = _array(body, UNIX_SECONDS, what)
    values = _array(body, values_field, what)
    if len(stamps) != len(values):
        raise MalformedResponse(
            f"{what}: {len(stamps)} {UNIX_SECONDS} but {len(values)} {values_field} values"
        )
    if not stamps:
        raise DataNotAvailable(f"{what}: answer has empty arrays")
    bad_stamps = [s for s in stamps if not isinstance(s, int) or isinstance(s, bool)]
    if bad_stamps:
        raise MalformedResponse(f"{what}: non-integer {UNIX_SECONDS}, e.g. {bad_stamps[0]!r}")
    bad_values = [v for v in values if v is not None and not (_is_number(v) and math.isfinite(v))]
    if bad_values:
        raise MalformedResponse(f"{what}: non-numeric {values_field}, e.g. {bad_values[0]!r}")
    index = pd.to_datetime(stamps, unit="s", utc=True)
    if index.has_duplicates:
        raise MalformedResponse(f"{what}: duplicate {UNIX_SECONDS}")
    series = pd.Series(values, index=index, dtype="float64")
    if series.isna().all():
        raise DataNotAvailable(f"{what}: every {values_field} value is null")
    _log_nulls(series, values_field, what)
    return series.dropna()


def _log_nulls(series: pd.Series, values_field: str, what: str) -> None:
    """Say how many values the source left null: they are dropped, and the hour may go missing."""
    nulls = series.isna()
    if nulls.any():
        hours = pd.DatetimeIndex(series.index[nulls]).floor("h").nunique()
        LOGGER.warning(
            "%s: %d of %d %s values are null (in %d hour(s)); they are left out",
            what,
            nulls.sum(),
            len(series),
            values_field,
            hours,
        )


class EnergyChartsFeed:
    """Feed over the public Energy-Charts API (no token)."""

    name = "energy_charts"

    def __init__(
        self,
        base_url: str,
        rules: dict[str, Publication],
        timeout_s: float = 60,
        session: requests.Session | None = None,
        clock: Callable[[], pd.Timestamp] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rules = dict(rules)
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.clock = clock or utc_now

    @classmethod
    def from_settings(
        cls, settings: Settings, feed_name: str = "energy_charts"
    ) -> EnergyChartsFeed:
        """Build the feed from `settings.feeds[feed_name]` and the rules of its series."""
        config = http_feed_config(settings, feed_name, "energy_charts", "Energy-Charts", SUPPORTED_SERIES)
        unruled = [s for s in config.series if s not in settings.series]
        if unruled:
            raise ConfigError(f"feeds.{feed_name}.series: no publication rule for {unruled}")
        rules = {s: settings.series[s].publication for s in config.series}
        return cls(config.base_url, rules, timeout_s=config.timeout_s)

    def fetch(self, request: SeriesRequest) -> pd.DataFrame:
        what = f"{self.name} {request.describe()}"
        endpoint, rule = self._plan(request, what)
        response = http_get(
            self.session,
            self.base_url + endpoint.path,
            query_params(request, endpoint),
            self.timeout_s,
            what,
        )
        retrieved_at = self.clock()
        check_status(response, what)
        body = parse_body(response, what)
        hourly = hourly_mean(values_from_body(body, endpoint.values_field, what))
        hours = pd.DatetimeIndex(hourly.index)
        published = pd.Series(published_at(hours, rule, request.zone.timezone), index=hours)
        frame = to_series_frame(request, hourly, published, retrieved_at)
        if frame.empty:
            raise DataNotAvailable(f"{what}: no values inside the requested interval")
        return frame

    def _plan(self, request: SeriesRequest, what: str) -> tuple[Endpoint, Publication]:
        endpoint = ENDPOINTS.get(request.series)
        if endpoint is None:
            raise UnsupportedSeries(
                f"{what}: Energy-Charts does not serve {request.series!r}; "
                f"supported: {list(SUPPORTED_SERIES)}"
            )
        rule = self.rules.get(request.series)
        if rule is None:
            raise UnsupportedSeries(
                f"{what}: no publication rule configured for {request.series!r}"
            )
        return endpoint, rule
