"""ENTSO-E Transparency Platform feed (REST API, https://web-api.tp.entsoe.eu/api).

Owns: the query of each Spotcast series (document type, process/market agreement/production type,
domains), splitting requests into the ≤ 1-year ranges the platform accepts, and classifying the
platform's answers onto the feed failure classes. The XML itself is parsed by
`forecasting.feeds.entsoe_xml`; the token travels only inside `forecasting.feeds.http`
(added at send time, scrubbed from answers and logs, never sent to another origin).

Answers and what they become:

* XML document with TimeSeries of the zone and type asked for
                                        → tidy frame (hourly; sub-hourly values averaged),
                                          made of those TimeSeries only
* document whose TimeSeries are all of another zone or type (e.g. solar where wind was asked)
                                        → `MalformedResponse` naming what was found
* weekly (P7D) periods for an hourly series, or hourly ones for the weekly reservoir filling (A72),
  or an A72 quantity in a unit other than MWh/GWh/TWh → `MalformedResponse`
* document without TimeSeries, or Acknowledgement "No matching data found" (HTTP 200 or 400)
                                        → `DataNotAvailable`
* other Acknowledgement (bad parameters, range > 1 year, too many documents) → `RequestRejected`
* HTTP 401                              → `RequestRejected` saying the token was refused
* timeouts (whole-request deadline), connection errors, 429, 5xx → `SiteDown` (by `http_get`)
* HTML page, empty, truncated or hostile XML, redirect to another origin → `MalformedResponse`

published_at: the platform does not say when a value became public (`createdDateTime` is when
the answer was generated, i.e. "now" for a backfill). So when the feed knows the series'
publication rule (`rules`, passed by `from_settings`), published_at follows that rule in the
zone's time zone, exactly as for the replay feed; without a rule it is the document's
`createdDateTime` (the retrieval time when absent). Either way it is never later than
retrieved_at: the value was evidently public when we held it.

Reservoir filling (A72, process A16, the hydro balance of any zone with reservoirs): weekly points
(stored energy at the end of each week, MWh) become one row per ISO week at the week's start hour
on the zone's clock (`forecasting.weekly`), in TWh. ENTSO-E publishes them on the third working day
after the week; the configured weekly rule (NVE's Wednesday 13:00) stamps them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pandas as pd
import requests

from forecasting.clock import WEEK, utc_now
from forecasting.config import TOKEN_ENV, ConfigError, Publication, Settings
from forecasting.feeds.base import (
    DataNotAvailable,
    FeedError,
    MalformedResponse,
    SeriesRequest,
    to_series_frame,
)
from forecasting.feeds.entsoe_xml import (
    DOCUMENT_PROCESS_TYPE,
    WEEKLY_RESOLUTION,
    Acknowledgement,
    MarketDocument,
    TimeSeries,
    hourly_values,
    parse_document,
)
from forecasting.feeds.http import Answer, QueryToken, http_get, looks_like_html, require_https
from forecasting.publication import published_at
from forecasting.schema import RESERVOIR_FILLING
from forecasting.weekly import week_starts_of

# Query parameter names (case sensitive, per the API guide).
TOKEN_PARAM = "securityToken"
DOCUMENT_TYPE = "documentType"
PROCESS_TYPE = "processType"
MARKET_AGREEMENT = "contract_MarketAgreement.type"
PSR_TYPE = "psrType"
PERIOD_START = "periodStart"
PERIOD_END = "periodEnd"
PERIOD_FORMAT = "%Y%m%d%H%M"  # yyyyMMddHHmm, UTC

# The platform rejects ranges longer than one year.
MAX_RANGE = pd.DateOffset(years=1)

# Acknowledgement reason of an empty answer. ENTSO-E uses code 999 for other rejections too
# (e.g. "amount of requested data exceeds allowed limit"), so the text decides.
NO_DATA_CODE = "999"
NO_DATA_TEXT = "no matching data found"


class RequestRejected(FeedError):
    """The platform refused the request itself (parameters, range, token): retrying cannot help."""


@dataclass(frozen=True)
class DocumentQuery:
    """How one Spotcast series is asked for, and which TimeSeries of the answer carry it.

    The types asked for are checked again in the answer: a document may hold more than was asked
    (an A69 answer with solar and wind, an A44 answer with day-ahead and intraday prices).
    """

    document_type: str
    zone_params: tuple[str, ...]  # query parameters set to the zone's EIC code
    zone_element: str  # TimeSeries element that must name the zone (drops e.g. A71 consumption)
    process_type: str | None = None  # processType; the answer's process.processType
    market_agreement: str | None = None  # contract_MarketAgreement.type; each TimeSeries' own
    psr_type: str | None = None  # psrType; each TimeSeries' MktPSRType/psrType
    weekly: bool = False  # P7D points → one row per ISO week (reservoir filling), else hourly values

    def params(self) -> dict[str, str]:
        """The query parameters that select the document and its types (no zone, no period)."""
        optional = {
            PROCESS_TYPE: self.process_type,
            MARKET_AGREEMENT: self.market_agreement,
            PSR_TYPE: self.psr_type,
        }
        return {DOCUMENT_TYPE: self.document_type} | {k: v for k, v in optional.items() if v}

    def mismatch(self, document: MarketDocument, series: TimeSeries, eic: str) -> str | None:
        """Why `series` is not the one asked for, or None when it is.

        Zone and psrType must be stated (A69 answers mix production types); a process or market
        agreement type that is not stated is accepted (older price documents carry none).
        """
        zone = series.domains.get(self.zone_element)
        if zone != eic:
            return f"{self.zone_element} {zone or 'missing'}"
        if self.psr_type and series.psr_type != self.psr_type:
            return f"psrType {series.psr_type or 'missing'}"
        for name, found, wanted in (
            (DOCUMENT_PROCESS_TYPE, document.process_type, self.process_type),
            (MARKET_AGREEMENT, series.market_agreement, self.market_agreement),
        ):
            if wanted and found is not None and found != wanted:
                return f"{name} {found}"
        return None


QUERIES: dict[str, DocumentQuery] = {
    "price_da": DocumentQuery(
        "A44", ("in_Domain", "out_Domain"), "in_Domain.mRID", market_agreement="A01"
    ),
    "load_da": DocumentQuery(
        "A65", ("outBiddingZone_Domain",), "outBiddingZone_Domain.mRID", process_type="A01"
    ),
    "load_actual": DocumentQuery(
        "A65", ("outBiddingZone_Domain",), "outBiddingZone_Domain.mRID", process_type="A16"
    ),
    "generation_da": DocumentQuery(
        "A71", ("in_Domain",), "inBiddingZone_Domain.mRID", process_type="A01"
    ),
    "wind_onshore_da": DocumentQuery(
        "A69", ("in_Domain",), "inBiddingZone_Domain.mRID", process_type="A01", psr_type="B19"
    ),
    "solar_da": DocumentQuery(
        "A69", ("in_Domain",), "inBiddingZone_Domain.mRID", process_type="A01", psr_type="B16"
    ),
    RESERVOIR_FILLING: DocumentQuery(
        "A72", ("in_Domain",), "inBiddingZone_Domain.mRID", process_type="A16", weekly=True
    ),
}
# The A72 quantity's unit (quantity_Measure_Unit.name) → factor to TWh; a document that states none
# is read as MWh, the unit ENTSO-E publishes it in.
ENERGY_UNITS: dict[str, float] = {"MWH": 1e-6, "GWH": 1e-3, "TWH": 1.0}


def query_params(request: SeriesRequest) -> dict[str, str]:
    """The API query for `request` (without the token); the range must not exceed one year."""
    query = QUERIES[request.series]
    params = query.params()
    params.update({name: request.zone.eic for name in query.zone_params})
    params[PERIOD_START] = request.start.strftime(PERIOD_FORMAT)
    params[PERIOD_END] = request.end.strftime(PERIOD_FORMAT)
    return params


def split_by_year(request: SeriesRequest) -> list[SeriesRequest]:
    """Consecutive sub-requests of at most one year covering `request`."""
    chunks = []
    start = request.start
    while start < request.end:
        end = min(start + MAX_RANGE, request.end)
        chunks.append(replace(request, start=start, end=end))
        start = end
    return chunks


class EntsoeFeed:
    """The Feed of ENTSO-E series; see the module docstring for answers and published_at."""

    name = "entsoe"

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout_s: float = 60,
        session: requests.Session | None = None,
        clock: Callable[[], pd.Timestamp] | None = None,
        rules: Mapping[str, Publication] | None = None,
    ) -> None:
        require_https(base_url, "EntsoeFeed")
        if not token:
            raise ValueError(f"EntsoeFeed: the API token is empty; set {TOKEN_ENV}")
        self._base_url = base_url
        self._token = QueryToken(TOKEN_PARAM, token)  # masked in repr, vars() and debuggers
        self._timeout_s = timeout_s
        self._session = session or requests.Session()
        self._clock = clock or utc_now
        self._rules = dict(rules or {})

    def __repr__(self) -> str:
        return f"EntsoeFeed(base_url={self._base_url!r}, timeout_s={self._timeout_s:g})"

    def fetch(self, request: SeriesRequest) -> pd.DataFrame:
        parts: list[tuple[pd.Series, pd.Timestamp | None]] = []
        no_data: DataNotAvailable | None = None
        for chunk in split_by_year(request):
            try:
                values, created_at = self._fetch_chunk(chunk)
            except DataNotAvailable as exc:
                # A backfill reaching back before a series existed has empty years: only
                # "nothing in any chunk" is no data.
                no_data = exc
                continue
            if not values.empty:
                parts.append((values, created_at))
        retrieved_at = self._clock()
        if not parts:
            raise no_data or DataNotAvailable(f"{self.name} {request.describe()}: no values")
        values = pd.concat([hourly for hourly, _ in parts])
        created = pd.concat(
            [
                pd.Series(retrieved_at if stamp is None else stamp, index=hourly.index)
                for hourly, stamp in parts
            ]
        )
        published = self._published_at(request, created, retrieved_at)
        return to_series_frame(request, values, published, retrieved_at)

    def _published_at(
        self, request: SeriesRequest, created: pd.Series, retrieved_at: pd.Timestamp
    ) -> pd.Series:
        rule = self._rules.get(request.series)
        if rule is None:
            published = created
        else:
            hours = pd.DatetimeIndex(created.index)
            published = pd.Series(published_at(hours, rule, request.zone.timezone), index=hours)
        return published.where(published <= retrieved_at, retrieved_at)

    def _fetch_chunk(self, chunk: SeriesRequest) -> tuple[pd.Series, pd.Timestamp | None]:
        """Hourly values of one ≤ 1-year chunk (clipped to it) and the document's creation time."""
        what = f"{self.name} {chunk.describe()}"
        document = self._classify(self._get(query_params(chunk), what), what)
        if not document.time_series:
            raise DataNotAvailable(f"{what}: the document holds no TimeSeries")
        query = QUERIES[chunk.series]
        ours = _matching_series(document, query, chunk.zone.eic, what)
        _check_resolutions(ours, query, what)
        values = _weekly_values(ours, chunk.zone.timezone, what) if query.weekly else hourly_values(ours)
        # Prices come in whole local days: clip, or a day straddling two chunks would appear twice.
        inside = (values.index >= chunk.start) & (values.index < chunk.end)
        return values[inside], document.created_at

    def _get(self, params: dict[str, str], what: str) -> Answer:
        return http_get(self._session, self._base_url, params, self._timeout_s, what, self._token)

    def _classify(self, response: Answer, what: str) -> MarketDocument:
        status = response.status
        if status == 401:
            raise RequestRejected(
                f"{what}: the ENTSO-E API token was refused (HTTP 401); check {TOKEN_ENV}"
            )
        if looks_like_html(response):
            raise MalformedResponse(f"{what}: got an HTML page instead of XML (HTTP {status})")
        document = parse_document(response.content, f"{what} (HTTP {status})")
        if isinstance(document, Acknowledgement):
            # A reason text quoting the request shows [redacted]: http_get scrubs the answer.
            raise _acknowledgement_error(document, status, what)
        if status != 200:
            raise RequestRejected(f"{what}: unexpected HTTP {status} with a {document.kind}")
        return document


def _matching_series(
    document: MarketDocument, query: DocumentQuery, eic: str, what: str
) -> list[TimeSeries]:
    """The TimeSeries of the zone and types asked for; none means the answer is not ours."""
    reasons = [query.mismatch(document, series, eic) for series in document.time_series]
    ours = [series for series, reason in zip(document.time_series, reasons, strict=True) if not reason]
    if not ours:
        found = ", ".join(sorted({reason for reason in reasons if reason}))
        raise MalformedResponse(
            f"{what}: no TimeSeries of the requested zone and type in the answer (found {found})"
        )
    return ours


def _check_resolutions(ours: list[TimeSeries], query: DocumentQuery, what: str) -> None:
    """Weekly periods only in the weekly series, and only weekly periods there."""
    resolutions = {period.resolution for series in ours for period in series.periods}
    if query.weekly and resolutions - {WEEK}:
        raise MalformedResponse(f"{what}: expected weekly ({WEEKLY_RESOLUTION}) periods, found {sorted(resolutions)}")
    if not query.weekly and WEEK in resolutions:
        raise MalformedResponse(f"{what}: weekly ({WEEKLY_RESOLUTION}) periods in an hourly series")


def _weekly_values(ours: list[TimeSeries], timezone: str, what: str) -> pd.Series:
    """Weekly points in TWh by the start hour of their local ISO week (the week holding the middle
    of the point's interval: a point stepped 7 × 24 h from a period start across a clock change is
    an hour off the local week start). The first TimeSeries wins a week given twice."""
    parts = []
    for series in ours:
        unit = (series.measure_unit or "MWH").upper()
        if unit not in ENERGY_UNITS:
            raise MalformedResponse(f"{what}: reservoir filling in {unit!r}; expected one of {list(ENERGY_UNITS)}")
        for period in series.periods:
            middle = pd.DatetimeIndex(period.values.index) + WEEK / 2
            weeks = week_starts_of(middle, timezone)
            parts.append(pd.Series(period.values.to_numpy() * ENERGY_UNITS[unit], index=weeks))
    if not parts:
        return pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz="UTC"))
    values = pd.concat(parts)
    return values[~values.index.duplicated(keep="first")].sort_index()


def _acknowledgement_error(ack: Acknowledgement, status: int, what: str) -> FeedError:
    # "No matching data" comes with HTTP 400 from older servers and HTTP 200 from newer ones.
    if ack.code == NO_DATA_CODE and NO_DATA_TEXT in ack.text.lower():
        return DataNotAvailable(f"{what}: {ack.text}")
    return RequestRejected(
        f"{what}: request rejected (HTTP {status}, reason {ack.code}): {ack.text}"
    )


def from_settings(settings: Settings, feed_name: str = "entsoe") -> EntsoeFeed:
    """The configured ENTSO-E feed, with the publication rules of the configured series."""
    config = settings.feeds.get(feed_name)
    if config is None or config.kind != "entsoe":
        raise ConfigError(f"feeds.{feed_name} is not configured as an entsoe feed")
    if not config.base_url:
        raise ConfigError(f"feeds.{feed_name}.base_url is not set")
    if settings.entsoe_token is None or not settings.entsoe_token.get_secret_value():
        raise ConfigError(f"feed {feed_name!r} needs the ENTSO-E API token: set {TOKEN_ENV}")
    return EntsoeFeed(
        config.base_url,
        settings.entsoe_token.get_secret_value(),
        timeout_s=config.timeout_s,
        rules={series: rule.publication for series, rule in settings.series.items()},
    )
