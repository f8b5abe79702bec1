"""ENTSO-E's reservoir filling (document type A72) through EntsoeFeed, against a real HTTP server on
127.0.0.1.

No real A72 answer was at hand: tests/fixtures/entsoe/NO2_A72_2023-W10_W15_reservoir_P7D.xml follows
the documented shape (GL_MarketDocument, Period resolution P7D, MWh) with NVE's real weekly values of
NO2 (its README says so).
"""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from forecasting.config import Publication, Zone
from forecasting.feeds.base import MalformedResponse, SeriesRequest
from forecasting.feeds.entsoe import EntsoeFeed
from forecasting.schema import DELIVERY_HOUR, PUBLISHED_AT, UNIT, VALUE
from forecasting.weekly import iso_week_starts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
A72 = (FIXTURES / "entsoe" / "NO2_A72_2023-W10_W15_reservoir_P7D.xml").read_text()
API_PATH = "/api"
TOKEN = "a72-test-token-0123456789"
NOW = pd.Timestamp("2023-05-01 12:00", tz="UTC")
NO2 = Zone(name="NO2", eic="10YNO-2--------T", timezone="Europe/Oslo")
WEEKLY = Publication(kind="weekly", weekday=2, local_time=time(13, 0))
# Monday 00:00 Europe/Oslo of ISO weeks 2023-W10 … W15 in UTC, 2023-03-05 23:00 … 2023-04-09 22:00 (the
# instants tests/test_weekly.py spells out): the clock change is at the end of W12
WEEK_STARTS = list(iso_week_starts([2023] * 6, range(10, 16), NO2.timezone))
# The same weeks in NVE's own answer (the fixture's values are these × 10⁶ MWh)
NVE_NO2 = {
    r["iso_uke"]: r["fylling_TWh"]
    for r in json.loads((FIXTURES / "nve" / "HentOffentligData_2023-W01_W26.json").read_text())
    if (r["omrType"], r["omrnr"]) == ("EL", 2)
}


@pytest.fixture
def feed(httpserver: HTTPServer) -> EntsoeFeed:
    rules = {"reservoir_filling": WEEKLY}
    return EntsoeFeed(httpserver.url_for(API_PATH), TOKEN, timeout_s=5, clock=lambda: NOW, rules=rules)


def request(series: str = "reservoir_filling") -> SeriesRequest:
    return SeriesRequest(
        NO2, series, pd.Timestamp("2023-03-01", tz="UTC"), pd.Timestamp("2023-04-20", tz="UTC")
    )


def serve(httpserver: HTTPServer, body: str) -> None:
    httpserver.expect_request(API_PATH).respond_with_data(body, content_type="text/xml")


def test_weekly_points_land_on_the_zones_local_week_starts_in_twh(httpserver, feed):
    serve(httpserver, A72)
    frame = feed.fetch(request())

    values = frame.set_index(DELIVERY_HOUR)[VALUE]
    assert list(values.index) == WEEK_STARTS  # points stepped 7 × 24 h from the start are an hour
    assert list(values) == pytest.approx([NVE_NO2[week] for week in range(10, 16)], abs=1e-9)  # off after it
    assert set(frame[UNIT]) == {"TWh"}


def test_the_query_asks_for_a72_realised_filling_of_the_zone(httpserver, feed):
    serve(httpserver, A72)
    feed.fetch(request())

    (sent, _), *_ = httpserver.log
    assert sent.args["documentType"] == "A72" and sent.args["processType"] == "A16"
    assert sent.args["in_Domain"] == NO2.eic


def test_weeks_are_stamped_by_the_weekly_rule(httpserver, feed):
    serve(httpserver, A72)
    published = feed.fetch(request()).set_index(DELIVERY_HOUR)[PUBLISHED_AT]

    assert published[WEEK_STARTS[2]] == pd.Timestamp("2023-03-29 11:00", tz="UTC")  # Wed 13:00 CEST


def test_weekly_points_for_an_hourly_series_are_refused(httpserver, feed):
    serve(
        httpserver,
        A72.replace("<type>A72</type>", "<type>A65</type>")
        .replace("A16", "A01")
        .replace("inBiddingZone_Domain.mRID", "outBiddingZone_Domain.mRID"),
    )
    with pytest.raises(MalformedResponse, match=r"weekly \(P7D\) periods in an hourly series"):
        feed.fetch(request("load_da"))


def test_hourly_points_for_the_filling_are_refused(httpserver, feed):
    hourly = A72.replace("<resolution>P7D</resolution>", "<resolution>PT60M</resolution>").replace(
        "<end>2023-04-16T22:00Z</end>", "<end>2023-03-06T05:00Z</end>"
    )
    serve(httpserver, hourly)
    with pytest.raises(MalformedResponse, match=r"expected weekly \(P7D\) periods"):
        feed.fetch(request())


def test_a_filling_in_megawatts_is_refused(httpserver, feed):
    serve(httpserver, A72.replace("<quantity_Measure_Unit.name>MWH<", "<quantity_Measure_Unit.name>MAW<"))
    with pytest.raises(MalformedResponse, match="reservoir filling in 'MAW'"):
        feed.fetch(request())


def test_a_period_that_is_not_whole_weeks_is_refused(httpserver, feed):
    serve(httpserver, A72.replace("<end>2023-04-16T22:00Z</end>", "<end>2023-04-13T22:00Z</end>"))
    with pytest.raises(MalformedResponse, match="not a whole number of"):
        feed.fetch(request())
