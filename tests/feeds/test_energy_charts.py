"""EnergyChartsFeed against a real local HTTP server serving real-format Energy-Charts answers.

Fixtures in tests/fixtures/energy_charts/ (provenance in its README.md): two real DE-LU `/price`
answers, and bodies rendered from the bundled NO history (nulls, 15-minute, load forecast).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from forecasting.config import ConfigError, Settings, Zone, load_settings
from forecasting.feeds.base import DataNotAvailable, MalformedResponse, SeriesRequest, SiteDown
from forecasting.feeds.energy_charts import (
    EnergyChartsFeed,
    InvalidRequest,
    UnsupportedSeries,
)
from forecasting.schema import DELIVERY_HOUR, PUBLISHED_AT, RETRIEVED_AT, UNIT, VALUE

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "energy_charts"
JSON = "application/json"
NO_LOAD = "public_power_forecast_no_load_2023-01-01.json"
NOW = pd.Timestamp("2025-01-15 12:00", tz="UTC")
DE_LU = Zone(name="DE-LU", eic="10Y1001A1001A82H", timezone="Europe/Berlin")
SETTINGS = load_settings()
NO1 = SETTINGS.zone("NO1")
RULES = {series: rule.publication for series, rule in SETTINGS.series.items()}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_text(name))


def series_request(zone: Zone, start: str, end: str, series: str = "price_da") -> SeriesRequest:
    return SeriesRequest(zone=zone, series=series, start=utc(start), end=utc(end))


# Local delivery days of the fixtures, as UTC intervals.
DE_MAY_4 = series_request(DE_LU, "2024-05-03 22:00", "2024-05-04 22:00")
DE_DEC_8 = series_request(DE_LU, "2024-12-07 23:00", "2024-12-08 23:00")
NO1_NOV_2 = series_request(NO1, "2020-11-01 23:00", "2020-11-02 23:00")
NO1_JAN_1 = series_request(NO1, "2022-12-31 23:00", "2023-01-01 23:00")


@pytest.fixture
def feed(httpserver: HTTPServer) -> EnergyChartsFeed:
    return EnergyChartsFeed(httpserver.url_for(""), RULES, timeout_s=5, clock=lambda: NOW)


def serve(httpserver: HTTPServer, path: str, body: str, status: int = 200, ctype: str = JSON) -> None:
    httpserver.expect_request(path).respond_with_data(body, status=status, content_type=ctype)


def serve_json(httpserver: HTTPServer, path: str, body: dict) -> None:
    serve(httpserver, path, json.dumps(body))


def by_hour(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index(DELIVERY_HOUR)[VALUE]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- parsing real answers -----------------------------------------------------------------------


def test_real_may_answer_gives_24_utc_hours(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_DE-LU_2024-05-04.json"))
    values = by_hour(feed.fetch(DE_MAY_4))
    assert len(values) == 24
    assert values.index[0] == utc("2024-05-03 22:00")
    assert values.index[-1] == utc("2024-05-04 21:00")
    assert values[utc("2024-05-03 22:00")] == 90.8
    assert values[utc("2024-05-04 12:00")] == 13.34
    assert values[utc("2024-05-04 18:00")] == 135.4


def test_real_no_unit_answer_gets_schema_unit(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_DE-LU_2024-12-08.json"))
    frame = feed.fetch(DE_DEC_8)
    values = by_hour(frame)
    assert len(values) == 24
    assert set(frame[UNIT]) == {"EUR/MWh"}
    assert values[utc("2024-12-07 23:00")] == 93.91
    assert values[utc("2024-12-08 11:00")] == 118.36
    assert values[utc("2024-12-08 22:00")] == 75.01


def test_published_at_follows_day_ahead_rule(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_DE-LU_2024-05-04.json"))
    frame = feed.fetch(DE_MAY_4)
    # Delivery day 2024-05-04 Berlin is published 2024-05-03 13:00 CEST = 11:00 UTC.
    assert set(frame[PUBLISHED_AT]) == {utc("2024-05-03 11:00")}


def test_retrieved_at_comes_from_clock(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_DE-LU_2024-05-04.json"))
    assert set(feed.fetch(DE_MAY_4)[RETRIEVED_AT]) == {NOW}


def test_nulls_are_dropped(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_NO1_2020-11-02_nulls.json"))
    values = by_hour(feed.fetch(NO1_NOV_2))
    assert len(values) == 22
    assert utc("2020-11-02 04:00") not in values.index
    assert utc("2020-11-02 16:00") not in values.index


@pytest.mark.parametrize(
    ("name", "request_", "expected"),
    [
        (
            "price_NO1_2020-11-02_nulls.json",
            NO1_NOV_2,
            [
                "energy_charts price_da NO1 [2020-11-01 23:00, 2020-11-02 23:00) UTC: "
                "2 of 24 price values are null (in 2 hour(s)); they are left out"
            ],
        ),
        ("price_DE-LU_2024-05-04.json", DE_MAY_4, []),
    ],
    ids=["two_nulls", "none"],
)
def test_null_values_are_counted_in_a_warning(
    httpserver: HTTPServer,
    feed: EnergyChartsFeed,
    caplog: pytest.LogCaptureFixture,
    name: str,
    request_: SeriesRequest,
    expected: list[str],
) -> None:
    serve(httpserver, "/price", fixture_text(name))
    with caplog.at_level(logging.WARNING, logger="spotcast.feeds.energy_charts"):
        feed.fetch(request_)
    assert [r.getMessage() for r in caplog.records if "null" in r.getMessage()] == expected


def test_negative_prices_are_kept(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_NO1_2020-11-02_nulls.json"))
    values = by_hour(feed.fetch(NO1_NOV_2))
    assert values[utc("2020-11-02 00:00")] == -0.04
    assert values[utc("2020-11-02 02:00")] == -1.73


def test_quarter_hours_are_averaged_to_hours(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    body = fixture_json("price_NO1_2023-01-01_15min.json")
    serve_json(httpserver, "/price", body)
    values = by_hour(feed.fetch(NO1_JAN_1))
    assert len(values) == 24
    first_hour = sum(body["price"][:4]) / 4
    assert values[utc("2022-12-31 23:00")] == pytest.approx(first_hour)
    # The quarters were rendered around the bundled hourly prices, so the means give them back.
    assert values[utc("2022-12-31 23:00")] == pytest.approx(119.32, abs=0.01)
    assert values[utc("2023-01-01 12:00")] == pytest.approx(122.17, abs=0.01)


def test_only_hours_inside_request_are_returned(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_DE-LU_2024-05-04.json"))
    values = by_hour(feed.fetch(series_request(DE_LU, "2024-05-04 06:00", "2024-05-04 09:00")))
    assert list(values.index) == [utc(f"2024-05-04 0{h}:00") for h in (6, 7, 8)]


def test_load_forecast_is_parsed_in_mw(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/public_power_forecast", fixture_text(NO_LOAD))
    frame = feed.fetch(series_request(NO1, "2022-12-31 23:00", "2023-01-01 23:00", "load_da"))
    values = by_hour(frame)
    assert len(values) == 24
    assert set(frame[UNIT]) == {"MW"}
    assert values[utc("2022-12-31 23:00")] == 16416.0
    assert values[utc("2023-01-01 15:00")] == 19118.0


def test_deprecated_answer_logs_a_warning(
    httpserver: HTTPServer, feed: EnergyChartsFeed, caplog: pytest.LogCaptureFixture
) -> None:
    body = fixture_json("price_DE-LU_2024-05-04.json") | {"deprecated": True}
    serve_json(httpserver, "/price", body)
    with caplog.at_level(logging.WARNING, logger="spotcast.feeds.energy_charts"):
        feed.fetch(DE_MAY_4)
    assert any("deprecated" in record.getMessage() for record in caplog.records)


# --- query parameters ---------------------------------------------------------------------------


def test_price_query_sends_bzn_start_end(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_DE-LU_2024-05-04.json"))
    feed.fetch(DE_MAY_4)
    ((request, _),) = httpserver.log
    assert dict(request.args) == {
        "bzn": "DE-LU",
        "start": "2024-05-03T22:00Z",
        "end": "2024-05-04T22:00Z",
    }


def test_price_query_prefers_energy_charts_bzn(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("price_NO1_2020-11-02_nulls.json"))
    zone = NO1.model_copy(update={"energy_charts_bzn": "NO2NSL"})
    feed.fetch(series_request(zone, "2020-11-01 23:00", "2020-11-02 23:00"))
    ((request, _),) = httpserver.log
    assert request.args["bzn"] == "NO2NSL"


def test_forecast_query_sends_country_and_type(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/public_power_forecast", fixture_text(NO_LOAD))
    feed.fetch(series_request(NO1, "2022-12-31 23:00", "2023-01-01 23:00", "load_da"))
    ((request, _),) = httpserver.log
    assert dict(request.args) == {
        "country": "no",
        "production_type": "load",
        "forecast_type": "day-ahead",
        "start": "2022-12-31T23:00Z",
        "end": "2023-01-01T23:00Z",
    }


def test_unsupported_series_is_refused_without_request(
    httpserver: HTTPServer, feed: EnergyChartsFeed
) -> None:
    with pytest.raises(UnsupportedSeries, match="load_actual"):
        feed.fetch(series_request(NO1, "2023-01-01 00:00", "2023-01-02 00:00", "load_actual"))
    assert httpserver.log == []


# --- failures -----------------------------------------------------------------------------------


def test_404_is_data_not_available(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("not_found_404.json"), status=404)
    with pytest.raises(DataNotAvailable, match="404"):
        feed.fetch(DE_MAY_4)


def test_empty_arrays_are_data_not_available(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    body = fixture_json("price_DE-LU_2024-05-04.json") | {"unix_seconds": [], "price": []}
    serve_json(httpserver, "/price", body)
    with pytest.raises(DataNotAvailable, match="empty"):
        feed.fetch(DE_MAY_4)


def test_422_is_malformed_with_detail(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("error_422_bzn.json"), status=422)
    with pytest.raises(InvalidRequest, match=r"422.*query\.bzn: Input should be") as caught:
        feed.fetch(DE_MAY_4)
    assert isinstance(caught.value, MalformedResponse)


def test_429_then_success(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    httpserver.expect_ordered_request("/price").respond_with_data(
        "", status=429, headers={"Retry-After": "60"}
    )
    httpserver.expect_ordered_request("/price").respond_with_data(
        fixture_text("price_DE-LU_2024-05-04.json"), content_type=JSON
    )
    with pytest.raises(SiteDown, match="429"):
        feed.fetch(DE_MAY_4)
    assert len(feed.fetch(DE_MAY_4)) == 24
    httpserver.check_assertions()


def test_503_is_site_down(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", "Service Unavailable", status=503, ctype="text/plain")
    with pytest.raises(SiteDown, match="503"):
        feed.fetch(DE_MAY_4)


def test_connection_refused_is_site_down() -> None:
    feed = EnergyChartsFeed(f"http://127.0.0.1:{closed_port()}", RULES, timeout_s=5)
    with pytest.raises(SiteDown, match="connection failed"):
        feed.fetch(DE_MAY_4)


def test_timeout_is_site_down(httpserver: HTTPServer) -> None:
    def slow(_: Request) -> Response:
        time.sleep(0.5)
        return Response(fixture_text("price_DE-LU_2024-05-04.json"), content_type=JSON)

    httpserver.expect_request("/price").respond_with_handler(slow)
    feed = EnergyChartsFeed(httpserver.url_for(""), RULES, timeout_s=0.1)
    with pytest.raises(SiteDown, match="timed out"):
        feed.fetch(DE_MAY_4)


def test_html_page_is_malformed(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    serve(httpserver, "/price", fixture_text("maintenance.html"), ctype="text/html; charset=utf-8")
    with pytest.raises(MalformedResponse, match="HTML"):
        feed.fetch(DE_MAY_4)


def test_truncated_json_is_malformed(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    text = fixture_text("price_DE-LU_2024-05-04.json")
    serve(httpserver, "/price", text[: len(text) // 2])
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        feed.fetch(DE_MAY_4)


def test_unequal_arrays_are_malformed(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    body = fixture_json("price_DE-LU_2024-05-04.json")
    serve_json(httpserver, "/price", body | {"price": body["price"][:-1]})
    with pytest.raises(MalformedResponse, match="24 unix_seconds but 23 price"):
        feed.fetch(DE_MAY_4)


def test_missing_values_key_is_malformed(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    body = fixture_json("price_DE-LU_2024-05-04.json")
    del body["price"]
    serve_json(httpserver, "/price", body)
    with pytest.raises(MalformedResponse, match="no 'price' field"):
        feed.fetch(DE_MAY_4)


def test_non_numeric_value_is_malformed(httpserver: HTTPServer, feed: EnergyChartsFeed) -> None:
    body = fixture_json("price_DE-LU_2024-05-04.json")
    body["price"][3] = "87.72"
    serve_json(httpserver, "/price", body)
    with pytest.raises(MalformedResponse, match="non-numeric price"):
        feed.fetch(DE_MAY_4)


# --- configuration ------------------------------------------------------------------------------


def energy_charts_settings(base_url: str, series: list[str]) -> Settings:
    feeds = {"energy_charts": {"kind": "energy_charts", "base_url": base_url, "series": series}}
    return load_settings(feeds=feeds)


def test_from_settings_fetches_configured_series(httpserver: HTTPServer) -> None:
    serve(httpserver, "/price", fixture_text("price_NO1_2020-11-02_nulls.json"))
    settings = energy_charts_settings(httpserver.url_for(""), ["price_da", "load_da"])
    feed = EnergyChartsFeed.from_settings(settings)
    assert feed.name == "energy_charts"
    assert len(feed.fetch(NO1_NOV_2)) == 22


def test_from_settings_rejects_unsupported_series() -> None:
    settings = energy_charts_settings("https://api.energy-charts.info", ["load_actual"])
    with pytest.raises(ConfigError, match="load_actual"):
        EnergyChartsFeed.from_settings(settings)
