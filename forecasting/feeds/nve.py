"""The NVE feed: Norway's weekly hydro-reservoir statistics per bidding zone (Magasinstatistikk,
https://biapi.nve.no/magasinstatistikk, open data under NLOD, no token).

Series served (TWh, one row per ISO week at the week's start hour; `forecasting.weekly`):

* `reservoir_filling` ← `GET {base_url}/HentOffentligData`: every week since 1995 of every area in
  one answer; the zone's `fylling_TWh` (stored energy at the end of the week).
* `reservoir_normal_min`, `_median`, `_max` ← `GET {base_url}/HentOffentligDataMinMaxMedian`: NVE's
  min / median / max per ISO week, placed on the weeks of the filling inside the request.

Zones: NO1–NO5 (NVE's bidding zones, `omrType` EL, `omrnr` 1–5); any other zone is `NotCovered`
(the ENTSO-E feed serves the filling of other zones, document type A72). Records are read by
`forecasting.feeds.nve_tables`, which also reads the bundled copy of the same history.

Answers and what they become:

* a JSON list of records of the documented shape → tidy weekly frame
* an empty list, or no week of the zone inside the request → `DataNotAvailable`
* a non-empty answer without the zone at all → `NotCovered`
* records of another shape (a field missing, text or NaN for a number, a `dato_Id` that is not its
  week's Sunday, a week twice, min above max), another JSON type, broken or absurdly nested JSON, an
  HTML page, an empty body, or an HTTP status other than 200 → `MalformedResponse` (not retried)
* timeouts, connection errors, HTTP 429 and 5xx → `SiteDown` (by `http_get`)

published_at: NVE publishes each week on the Wednesday after it at 13:00 Europe/Oslo; rows are
stamped by the series' configured weekly publication rule in the zone's time zone, never later
than retrieved_at (a value held was evidently public). Holiday weeks may come out later than the
rule says: the series' staleness tolerance (8 days in configs/spotcast.toml) keeps such a week
from holding a daily run in retries.

One answer serves every zone: the pulls of one run (five zones, four series) share each endpoint's
answer for `reuse_s` seconds (default 10 minutes, far below any retry interval), so a daily run asks
NVE twice, not twenty times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import pandas as pd
import requests

from forecasting.clock import utc_now
from forecasting.config import Publication, Settings
from forecasting.feeds.base import (
    DataNotAvailable,
    MalformedResponse,
    NotCovered,
    SeriesRequest,
    http_feed_config,
    to_series_frame,
)
from forecasting.feeds.http import Answer, http_get, json_body
from forecasting.feeds.nve_tables import (
    NORMAL_TWH,
    TableError,
    area_number,
    normal_table,
    weekly_table,
    zone_filling,
    zone_normal,
)
from forecasting.publication import published_at
from forecasting.schema import RESERVOIR_FILLING

WEEKLY_ENDPOINT = "/HentOffentligData"
NORMAL_ENDPOINT = "/HentOffentligDataMinMaxMedian"
SUPPORTED_SERIES = (RESERVOIR_FILLING, *NORMAL_TWH)
REUSE_S = 600.0


def parse_answer(answer: Answer, parse: Callable[[object], pd.DataFrame], what: str) -> pd.DataFrame:
    """The checked table of a 200 answer; every other answer is a MalformedResponse that says why."""
    if answer.status != 200:
        raise MalformedResponse(f"{what}: unexpected HTTP {answer.status} (check the feed's base_url)")
    try:
        body = json_body(answer, what)
    except RecursionError:
        raise MalformedResponse(f"{what}: JSON nested too deeply to be NVE's answer") from None
    try:
        return parse(body)
    except TableError as exc:
        raise MalformedResponse(f"{what}: {exc}") from None


class NveFeed:
    """The Feed of NVE's reservoir series; see the module docstring for answers and published_at."""

    name = "nve"

    def __init__(
        self,
        base_url: str,
        rules: Mapping[str, Publication],
        timeout_s: float = 60,
        session: requests.Session | None = None,
        clock: Callable[[], pd.Timestamp] | None = None,
        reuse_s: float = REUSE_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rules = dict(rules)
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.clock = clock or utc_now
        self.reuse_s = reuse_s
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, pd.DataFrame]] = {}

    def __repr__(self) -> str:
        return f"NveFeed(base_url={self.base_url!r}, timeout_s={self.timeout_s:g})"

    @classmethod
    def from_settings(cls, settings: Settings, feed_name: str = "nve") -> NveFeed:
        config = http_feed_config(settings, feed_name, "nve", "NVE", SUPPORTED_SERIES)
        rules = {s: settings.series[s].publication for s in config.series if s in settings.series}
        return cls(config.base_url, rules, timeout_s=config.timeout_s)

    def fetch(self, request: SeriesRequest) -> pd.DataFrame:
        what = f"{self.name} {request.describe()}"
        zone, timezone = request.zone.name, request.zone.timezone
        if request.series not in SUPPORTED_SERIES:
            raise NotCovered(f"{what}: NVE publishes only {list(SUPPORTED_SERIES)}")
        rule = self.rules.get(request.series)
        if rule is None:
            raise NotCovered(f"{what}: no publication rule configured for {request.series!r}")
        if area_number(zone) is None:
            raise NotCovered(f"{what}: NVE publishes the bidding zones NO1–NO5 only")
        weekly = self._table(WEEKLY_ENDPOINT, weekly_table, f"{what} ({WEEKLY_ENDPOINT})")
        if weekly.empty:
            raise DataNotAvailable(f"{what}: the answer holds no week of any bidding zone")
        filling = zone_filling(weekly, zone, timezone)
        if filling.empty:
            raise NotCovered(f"{what}: the answer holds no week of {zone}")
        filling = filling[(filling.index >= request.start) & (filling.index < request.end)]
        values = filling
        if request.series != RESERVOIR_FILLING and not filling.empty:
            normal = self._table(NORMAL_ENDPOINT, normal_table, f"{what} ({NORMAL_ENDPOINT})")
            values = zone_normal(normal, zone, request.series, filling.index, timezone)
        if values.empty:
            raise DataNotAvailable(f"{what}: no week of {zone} inside the request")
        retrieved_at = self.clock()
        hours = pd.DatetimeIndex(values.index)
        published = pd.Series(published_at(hours, rule, timezone), index=hours)
        published = published.where(published <= retrieved_at, retrieved_at)
        return to_series_frame(request, values, published, retrieved_at)

    def _table(self, endpoint: str, parse: Callable[[object], pd.DataFrame], what: str) -> pd.DataFrame:
        """The endpoint's checked table, fetched at most once per `reuse_s` (shared by the zones)."""
        with self._lock:  # one request per endpoint: the other zones' pulls wait for its answer
            kept = self._answers.get(endpoint)
            if kept is not None and time.monotonic() - kept[0] < self.reuse_s:
                return kept[1]
            answer = http_get(self.session, self.base_url + endpoint, {}, self.timeout_s, what)
            table = parse_answer(answer, parse, what)
            self._answers[endpoint] = (time.monotonic(), table)
            return table
