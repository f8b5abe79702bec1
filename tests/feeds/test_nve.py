"""NveFeed against a real HTTP server on 127.0.0.1 serving NVE-format answers.

No raw NVE answer was at hand: tests/fixtures/nve holds answers rendered from NVE's real data in
the API's documented shape (its README says what is rendered); the malformed and hostile answers
below are made from them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import time
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from forecasting.config import ConfigError, Publication, Settings, Zone
from forecasting.feeds.base import DataNotAvailable, MalformedResponse, NotCovered, SeriesRequest, SiteDown
from forecasting.feeds.nve import NORMAL_ENDPOINT, WEEKLY_ENDPOINT, NveFeed
from forecasting.feeds.registry import build_feed
from forecasting.ingest.plan import plan_daily
from forecasting.ingest.pull import pull
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import append_series, read_series
from forecasting.schema import DELIVERY_HOUR, PUBLISHED_AT, RETRIEVED_AT, SERIES_COL, UNIT, VALUE, ZONE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nve"
BASE = "/magasinstatistikk/api/Magasinstatistikk"
WEEKLY = json.loads((FIXTURES / "HentOffentligData_2023-W01_W26.json").read_text())
NORMAL = json.loads((FIXTURES / "HentOffentligDataMinMaxMedian.json").read_text())
NOW = pd.Timestamp("2023-07-10 12:00", tz="UTC")  # every week of the fixture is out by then
WEEKLY_RULE = Publication(kind="weekly", weekday=2, local_time=time(13, 0))
SERIES = ("reservoir_filling", "reservoir_normal_min", "reservoir_normal_median", "reservoir_normal_max")
RULES = dict.fromkeys(SERIES, WEEKLY_RULE)
NO2 = Zone(name="NO2", eic="10YNO-2--------T", timezone="Europe/Oslo")
SE3 = Zone(name="SE3", eic="10Y1001A1001A46L", timezone="Europe/Stockholm")
ZONES = [
    Zone(name=f"NO{n}", eic=eic, timezone="Europe/Oslo")
    for n, eic in enumerate(
        ["10YNO-1--------2", "10YNO-2--------T", "10YNO-3--------J", "10YNO-4--------9", "10Y1001A1001A48H"],
        1,
    )
]
# ISO weeks 2023-W10 … W14 (the spring clock change is on Sunday 2023-03-26, the end of W12)
MARCH = ("2023-03-05 23:00", "2023-04-09 22:00")
WEEK_12 = pd.Timestamp("2023-03-19 23:00", tz="UTC")  # Monday 2023-03-20 00:00 CET
WEEK_13 = pd.Timestamp("2023-03-26 22:00", tz="UTC")  # Monday 2023-03-27 00:00 CEST
WEEK_14 = pd.Timestamp("2023-04-02 22:00", tz="UTC")


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def request(
    zone: Zone = NO2, series: str = "reservoir_filling", span: tuple[str, str] = MARCH
) -> SeriesRequest:
    return SeriesRequest(zone=zone, series=series, start=utc(span[0]), end=utc(span[1]))


def nve_filling(number: int, week: int) -> float:
    (record,) = [r for r in WEEKLY if (r["omrType"], r["omrnr"], r["iso_uke"]) == ("EL", number, week)]
    return record["fylling_TWh"]


def serve(httpserver: HTTPServer, weekly: object = WEEKLY, normal: object = NORMAL) -> None:
    for endpoint, body in ((WEEKLY_ENDPOINT, weekly), (NORMAL_ENDPOINT, normal)):
        text = body if isinstance(body, str) else json.dumps(body)
        httpserver.expect_request(BASE + endpoint).respond_with_data(text, content_type="application/json")


def by_hour(frame: pd.DataFrame, column: str = VALUE) -> pd.Series:
    return frame.set_index(DELIVERY_HOUR)[column]


@pytest.fixture
def make_feed(httpserver: HTTPServer) -> Callable[..., NveFeed]:
    def make(clock: pd.Timestamp = NOW, reuse_s: float = 600) -> NveFeed:
        return NveFeed(httpserver.url_for(BASE), RULES, timeout_s=5, clock=lambda: clock, reuse_s=reuse_s)

    return make


# --- what NVE publishes, where it lands ----------------------------------------------------------


def test_filling_is_the_zones_stored_energy_at_each_weeks_start_hour(httpserver, make_feed):
    serve(httpserver)
    frame = make_feed().fetch(request())

    values = by_hour(frame)
    # Monday 00:00 Europe/Oslo of ISO weeks 10 … 13, in UTC: 23:00 in winter, 22:00 after the change
    assert list(values.index) == [utc("2023-03-05 23:00"), utc("2023-03-12 23:00"), WEEK_12, WEEK_13, WEEK_14]
    assert list(values) == [nve_filling(2, week) for week in (10, 11, 12, 13, 14)]  # NVE's fylling_TWh
    assert set(frame[UNIT]) == {"TWh"} and set(frame[SERIES_COL]) == {"reservoir_filling"}
    assert set(frame[RETRIEVED_AT]) == {NOW}


def test_each_week_is_published_the_wednesday_after_it_at_13_oslo(httpserver, make_feed):
    serve(httpserver)
    published = by_hour(make_feed().fetch(request()), PUBLISHED_AT)

    assert published[WEEK_12] == utc("2023-03-29 11:00")  # week ends Sun 26 Mar; Wed 29 Mar 13:00 CEST
    assert published[utc("2023-03-05 23:00")] == utc("2023-03-15 12:00")  # Wed 15 Mar 13:00 CET


def test_a_week_out_before_its_rule_says_is_stamped_with_its_retrieval(httpserver, make_feed):
    """NVE's answer already holds week 13 at Wednesday 12:30 (early, or a clock off): the value was
    evidently public when it was held, so it is not stamped later than that."""
    serve(httpserver)
    early = utc("2023-04-05 10:30")  # 12:30 CEST, before the 13:00 of week 13
    published = by_hour(make_feed(clock=early).fetch(request()), PUBLISHED_AT)

    assert published[WEEK_13] == early
    assert published[WEEK_12] == utc("2023-03-29 11:00")


def test_normal_band_is_nves_min_median_max_of_each_iso_week(httpserver, make_feed):
    serve(httpserver)
    feed = make_feed()
    band = {series: by_hour(feed.fetch(request(series=series))) for series in SERIES[1:]}

    (week_12,) = [r for r in NORMAL if (r["omrnr"], r["iso_uke"]) == (2, 12)]
    assert band["reservoir_normal_min"][WEEK_12] == week_12["minFyllingTWH"]
    assert band["reservoir_normal_median"][WEEK_12] == week_12["medianFylling_TWH"]
    assert band["reservoir_normal_max"][WEEK_12] == week_12["maxFyllingTWH"]
    assert all(list(values.index) == list(band["reservoir_normal_min"].index) for values in band.values())


def test_one_answer_per_endpoint_serves_every_zone_and_series(httpserver, make_feed):
    serve(httpserver)
    feed = make_feed()
    frames = [feed.fetch(request(zone, series)) for zone in ZONES for series in SERIES]

    assert sum(len(frame) for frame in frames) == 5 * 4 * 5  # zones × series × weeks
    assert sorted(req.path for req, _ in httpserver.log) == [BASE + WEEKLY_ENDPOINT, BASE + NORMAL_ENDPOINT]


def test_answers_are_asked_again_once_their_reuse_time_is_over(httpserver, make_feed):
    serve(httpserver)
    feed = make_feed(reuse_s=0)
    feed.fetch(request())
    feed.fetch(request())

    assert len(httpserver.log) == 2


# --- what is not there ---------------------------------------------------------------------------


def test_zone_outside_norway_is_not_covered_and_nve_is_not_asked(httpserver, make_feed):
    serve(httpserver)
    with pytest.raises(NotCovered, match="NO1–NO5"):
        make_feed().fetch(request(SE3))
    assert httpserver.log == []


def test_a_range_without_a_week_of_the_answer_is_no_data(httpserver, make_feed):
    serve(httpserver)
    with pytest.raises(DataNotAvailable, match="no week of NO2 inside the request"):
        make_feed().fetch(request(span=("2022-01-01 00:00", "2022-06-01 00:00")))


def test_an_empty_answer_is_no_data(httpserver, make_feed):
    serve(httpserver, weekly=[])
    with pytest.raises(DataNotAvailable, match="no week of any bidding zone"):
        make_feed().fetch(request())


def test_an_answer_without_the_zone_is_not_covered(httpserver, make_feed):
    serve(httpserver, weekly=[r for r in WEEKLY if r["omrnr"] != 2 or r["omrType"] != "EL"])
    with pytest.raises(NotCovered, match="no week of NO2"):
        make_feed().fetch(request())


# --- malformed and hostile answers ---------------------------------------------------------------

FIRST_NO2 = next(n for n, r in enumerate(WEEKLY) if (r["omrType"], r["omrnr"]) == ("EL", 2))


def with_record(**changes: object) -> list[dict]:
    """The answer with the first NO2 record changed."""
    records = [dict(r) for r in WEEKLY]
    records[FIRST_NO2].update(changes)
    return records


def without_field(name: str) -> list[dict]:
    records = [dict(r) for r in WEEKLY]
    del records[FIRST_NO2][name]
    return records


def json_with_filling(text: str) -> str:
    """The answer as JSON text with the first NO2 filling written as `text` (NaN, 1e999)."""
    return json.dumps(with_record(fylling_TWh="@")).replace('"@"', text)


MALFORMED = {
    "an HTML maintenance page": ("<!DOCTYPE html><html><body>Vedlikehold</body></html>", "HTML page"),
    "truncated JSON": (json.dumps(WEEKLY)[:5000], "not valid JSON"),
    "an object, not a list": ({"data": WEEKLY}, "expected a list of weekly records"),
    "a record that is not an object": ([*WEEKLY, ["EL", 2]], "not an object"),
    "a missing field": (without_field("fylling_TWh"), "has no ['fylling_TWh']"),
    "a decimal comma": (with_record(fylling_TWh="21,15"), "is not a finite number"),
    "NaN": (json_with_filling("NaN"), "is not a finite number"),
    "an overflowing number": (json_with_filling("1e999"), "is not a finite number"),
    "true for a number": (with_record(fylling_TWh=True), "is not a finite number"),
    "a negative filling": (with_record(fylling_TWh=-3.2), "not a stored energy in TWh"),
    "a date that is not its week's Sunday": (with_record(dato_Id="2023-01-09"), "is not the Sunday ending"),
    "a week given twice": ([*WEEKLY, WEEKLY[FIRST_NO2]], "week given twice"),
    "deeply nested JSON": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_answer_is_refused_with_the_reason(httpserver, make_feed, case):
    body, reason = MALFORMED[case]
    content_type = "text/html" if case.startswith("an HTML") else "application/json"
    text = body if isinstance(body, str) else json.dumps(body)
    httpserver.expect_request(BASE + WEEKLY_ENDPOINT).respond_with_data(text, content_type=content_type)

    with pytest.raises(MalformedResponse) as refused:
        make_feed().fetch(request())
    assert reason in str(refused.value)
    assert "nve reservoir_filling NO2" in str(refused.value)  # names the request


def test_a_malformed_normal_is_refused_with_the_reason(httpserver, make_feed):
    swapped = [dict(r) for r in NORMAL]
    swapped[0]["minFyllingTWH"], swapped[0]["maxFyllingTWH"] = (
        swapped[0]["maxFyllingTWH"],
        swapped[0]["minFyllingTWH"],
    )
    serve(httpserver, normal=swapped)
    with pytest.raises(MalformedResponse, match="min > median or median > max"):
        make_feed().fetch(request(series="reservoir_normal_median"))


@pytest.mark.parametrize(("status", "body"), [(404, "Not Found"), (200, ""), (302, "")])
def test_an_unexpected_status_or_empty_body_is_malformed(httpserver, make_feed, status, body):
    httpserver.expect_request(BASE + WEEKLY_ENDPOINT).respond_with_data(body, status=status)
    with pytest.raises(MalformedResponse, match=r"unexpected HTTP|empty answer"):
        make_feed().fetch(request())


def test_server_errors_and_rate_limits_are_site_down(httpserver, make_feed):
    httpserver.expect_oneshot_request(BASE + WEEKLY_ENDPOINT).respond_with_data("busy", status=503)
    httpserver.expect_oneshot_request(BASE + WEEKLY_ENDPOINT).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "120"}
    )
    feed = make_feed(reuse_s=0)
    with pytest.raises(SiteDown, match="HTTP 503"):
        feed.fetch(request())
    with pytest.raises(SiteDown, match="429") as limited:
        feed.fetch(request())
    assert limited.value.retry_after_s == 120


def test_the_answer_is_accepted_with_date_times_as_dato_id(httpserver, make_feed):
    """NVE's swagger shows `dato_Id` as a date-time at midnight; raw dumps show the date alone."""
    serve(httpserver, weekly=[{**r, "dato_Id": f"{r['dato_Id']}T00:00:00"} for r in WEEKLY])
    assert len(make_feed().fetch(request())) == 5


# --- through the pipeline: configuration, the daily plan, a real lake ----------------------------


def nve_settings(make_settings: Callable[..., Settings], url: str) -> Settings:
    feeds = {"nve": {"kind": "nve", "base_url": url, "series": list(SERIES), "timeout_s": 5}}
    return make_settings(feeds=feeds)


def test_the_configured_feed_is_built_and_unknown_series_are_refused(httpserver, make_settings):
    settings = nve_settings(make_settings, httpserver.url_for(BASE))
    assert isinstance(build_feed(settings, "nve"), NveFeed)

    wrong = settings.model_copy(
        update={"feeds": {"nve": settings.feeds["nve"].model_copy(update={"series": ("price_da",)})}}
    )
    with pytest.raises(ConfigError, match="not served by NVE"):
        NveFeed.from_settings(wrong)


def test_the_daily_plan_asks_for_the_newest_published_week_and_it_is_fresh(httpserver, make_settings):
    serve(httpserver)
    settings = nve_settings(make_settings, httpserver.url_for(BASE))
    as_of = utc("2023-03-29 12:00")  # Wednesday 14:00 in Oslo: week 12 is out
    plans = [
        p for p in plan_daily(settings, pd.DataFrame(), as_of) if p.request.series == "reservoir_filling"
    ]
    assert {p.request.zone.name for p in plans} == {"NO1", "NO2"}
    assert all(p.expected_newest == WEEK_12 for p in plans)

    feed = NveFeed(httpserver.url_for(BASE), RULES, timeout_s=5, clock=lambda: as_of)
    outcome = pull(
        feed, plans[0], settings.retry, settings.series["reservoir_filling"].staleness_tolerance_hours
    )
    assert outcome.status == "ok" and outcome.newest_hour == WEEK_12


def test_landed_weeks_read_as_of_show_only_what_was_published(httpserver, make_feed, tmp_path):
    serve(httpserver)
    feed = make_feed()
    lake = LakeFS.open(str(tmp_path / "lake"))
    for zone in ZONES[:2]:
        for series in SERIES:
            append_series(lake, feed.fetch(request(zone, series)), feed.name)

    before = read_series(lake, zones=["NO2"], as_of=utc("2023-03-29 10:59"))  # Wednesday 12:59 CEST
    after = read_series(lake, zones=["NO2"], as_of=utc("2023-03-29 11:00"))
    assert before.groupby(SERIES_COL)[DELIVERY_HOUR].max().to_dict() == dict.fromkeys(
        SERIES, utc("2023-03-12 23:00")
    )
    assert after.groupby(SERIES_COL)[DELIVERY_HOUR].max().to_dict() == dict.fromkeys(SERIES, WEEK_12)
    landed = read_series(lake, series=["reservoir_filling"])
    assert len(landed) == 2 * 5 and set(landed[ZONE]) == {"NO1", "NO2"}
    assert by_hour(landed[landed[ZONE] == "NO1"])[WEEK_12] == nve_filling(1, 12)
