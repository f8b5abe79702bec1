"""EntsoeFeed against a real HTTP server on 127.0.0.1 serving real-format ENTSO-E answers.

Fixtures: tests/fixtures/entsoe (see its README for what is published and what is rendered).
"""

from __future__ import annotations

import logging
import socket
import traceback
from datetime import time
from pathlib import Path

import pandas as pd
import pytest
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from forecasting.config import (
    TOKEN_ENV,
    ConfigError,
    FeedConfig,
    Publication,
    SeriesRule,
    Settings,
    Zone,
)
from forecasting.feeds.base import (
    DataNotAvailable,
    FeedError,
    MalformedResponse,
    SeriesRequest,
    SiteDown,
)
from forecasting.feeds.entsoe import EntsoeFeed, RequestRejected, from_settings
from forecasting.schema import DELIVERY_HOUR, PUBLISHED_AT, RETRIEVED_AT, UNIT, VALUE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "entsoe"
API_PATH = "/api"
TOKEN = "5ecre7-t0ken-do-not-leak-0f1e2d3c"
NOW = pd.Timestamp("2025-01-15 12:00", tz="UTC")  # the clock of the feed
NO1 = Zone(name="NO1", eic="10YNO-1--------2", timezone="Europe/Oslo")
BE = Zone(name="BE", eic="10YBE----------2", timezone="Europe/Brussels")
DAY_AHEAD_13 = Publication(kind="day_ahead", local_time=time(13, 0))
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Maintenance</title></head>"
    "<body><h1>The Transparency Platform is under maintenance</h1></body></html>"
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def request(zone: Zone, start: str, end: str, series: str = "price_da") -> SeriesRequest:
    return SeriesRequest(zone=zone, series=series, start=utc(start), end=utc(end))


def serve(
    httpserver: HTTPServer, body: bytes | str, status: int = 200, content_type: str = "text/xml"
) -> None:
    httpserver.expect_request(API_PATH).respond_with_data(body, status=status, content_type=content_type)


def values_by_hour(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index(DELIVERY_HOUR)[VALUE]


def sent_periods(httpserver: HTTPServer) -> list[tuple[str, str]]:
    return [(req.args["periodStart"], req.args["periodEnd"]) for req, _ in httpserver.log]


@pytest.fixture
def feed(httpserver: HTTPServer) -> EntsoeFeed:
    return EntsoeFeed(httpserver.url_for(API_PATH), TOKEN, timeout_s=5, clock=lambda: NOW)


BE_DAY = request(BE, "2024-10-07 22:00", "2024-10-08 22:00")


# --- parsing real documents ----------------------------------------------------------------------


def test_be_sample_gives_24_hourly_prices_matching_the_xml(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, fixture("BE_60M.xml"))
    frame = feed.fetch(BE_DAY)
    values = values_by_hour(frame)
    assert len(frame) == 24
    assert list(values.index) == list(pd.date_range(utc("2024-10-07 22:00"), periods=24, freq="h"))
    assert values[utc("2024-10-07 22:00")] == 64.98  # position 1
    assert values[utc("2024-10-08 06:00")] == 100  # position 9
    assert values[utc("2024-10-08 17:00")] == 115.47  # position 20
    assert values[utc("2024-10-08 21:00")] == 50  # position 24
    assert set(frame[UNIT]) == {"EUR/MWh"}
    assert set(frame[RETRIEVED_AT]) == {NOW}


def test_a03_omitted_positions_repeat_the_previous_value(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    # Present positions: 1, 2, 4, 6, 7, 8, 18, 23, 24 of 24.
    serve(httpserver, fixture("NO1_A44_2020-07-14_A03_omitted.xml"))
    values = values_by_hour(feed.fetch(request(NO1, "2020-07-13 22:00", "2020-07-14 22:00")))
    assert len(values) == 24
    assert values[utc("2020-07-14 00:00")] == 1.53  # position 3 repeats position 2
    assert (values[utc("2020-07-14 06:00") : utc("2020-07-14 14:00")] == 1.58).all()  # 9..17
    assert values[utc("2020-07-14 20:00")] == 1.56  # position 23
    assert values[utc("2020-07-14 21:00")] == 1.55  # position 24, the period's last


def test_pt15m_quarter_hours_are_averaged_to_hours(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, fixture("NO1_A69_2023-06-15_wind_onshore_PT15M.xml"))
    frame = feed.fetch(request(NO1, "2023-06-14 22:00", "2023-06-15 22:00", "wind_onshore_da"))
    values = values_by_hour(frame)
    assert len(values) == 24
    assert values[utc("2023-06-14 22:00")] == pytest.approx((29 + 31 + 33 + 35) / 4)
    assert values[utc("2023-06-14 23:00")] == pytest.approx((37 + 44.75 + 52.5 + 60.25) / 4)
    assert set(frame[UNIT]) == {"MW"}


def test_publication_document_namespace_7_0_parses(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, fixture("NO1_A44_2018-03-01_ns7_0.xml"))
    values = values_by_hour(feed.fetch(request(NO1, "2018-02-28 23:00", "2018-03-01 23:00")))
    assert len(values) == 24
    assert values[utc("2018-02-28 23:00")] == 39.52
    assert values[utc("2018-03-01 07:00")] == 255.02


def test_load_forecast_gl_document_gives_megawatts(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, fixture("NO1_A65_2023-01-16_load_da.xml"))
    frame = feed.fetch(request(NO1, "2023-01-15 23:00", "2023-01-16 23:00", "load_da"))
    values = values_by_hour(frame)
    assert len(values) == 24
    assert values[utc("2023-01-15 23:00")] == 4427
    assert set(frame[UNIT]) == {"MW"}


def test_generation_forecast_ignores_the_consumption_time_series(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture("NO1_A71_2023-01-16_generation_and_consumption.xml"))
    frame = feed.fetch(request(NO1, "2023-01-15 23:00", "2023-01-16 23:00", "generation_da"))
    values = values_by_hour(frame)
    assert len(values) == 24
    assert values[utc("2023-01-15 23:00")] == 1615  # inBiddingZone, not the 4427 consumption


@pytest.mark.parametrize(
    ("name", "start", "end", "hours", "probe", "expected"),
    [
        # 25 hours: both 02:00 local hours are 00:00Z and 01:00Z; 03:00 CET is 02:00Z.
        (
            "NO1_A44_2022-10-30_dst_25h.xml",
            "2022-10-29 22:00",
            "2022-10-30 23:00",
            25,
            "2022-10-30 02:00",
            95.46,
        ),
        # 23 hours: 02:00 local does not exist; 03:00 CEST is 01:00Z.
        (
            "NO1_A44_2023-03-26_dst_23h.xml",
            "2023-03-25 23:00",
            "2023-03-26 22:00",
            23,
            "2023-03-26 01:00",
            76.45,
        ),
    ],
    ids=["autumn_25h", "spring_23h"],
)
def test_dst_day_lands_on_the_right_utc_hours(
    httpserver: HTTPServer,
    feed: EntsoeFeed,
    name: str,
    start: str,
    end: str,
    hours: int,
    probe: str,
    expected: float,
) -> None:
    serve(httpserver, fixture(name))
    values = values_by_hour(feed.fetch(request(NO1, start, end)))
    assert list(values.index) == list(pd.date_range(utc(start), periods=hours, freq="h"))
    assert values[utc(probe)] == expected


def test_negative_prices_are_kept(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, fixture("NO1_A44_2023-05-28_negative.xml"))
    values = values_by_hour(feed.fetch(request(NO1, "2023-05-27 22:00", "2023-05-28 22:00")))
    assert (values < 0).sum() == 7
    assert values[utc("2023-05-28 09:00")] == -10.06


# --- only the TimeSeries asked for --------------------------------------------------------------

JUNE_15 = ("2023-06-14 22:00", "2023-06-15 22:00")
MIXED_A69 = "NO1_A69_2023-06-15_solar_B16_and_wind_B19.xml"  # solar first, then wind


def test_a69_answer_with_solar_and_wind_gives_wind_only_the_wind_series(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture(MIXED_A69))
    wind = values_by_hour(feed.fetch(request(NO1, *JUNE_15, "wind_onshore_da")))
    httpserver.clear()
    serve(httpserver, fixture("NO1_A69_2023-06-15_wind_onshore_PT15M.xml"))
    wind_alone = values_by_hour(feed.fetch(request(NO1, *JUNE_15, "wind_onshore_da")))
    pd.testing.assert_series_equal(wind, wind_alone)
    assert wind[utc("2023-06-14 22:00")] == pytest.approx((29 + 31 + 33 + 35) / 4)


def test_a69_answer_with_solar_and_wind_gives_solar_only_the_solar_series(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture(MIXED_A69))
    solar = values_by_hour(feed.fetch(request(NO1, *JUNE_15, "solar_da")))
    assert len(solar) == 24
    assert solar[utc("2023-06-14 22:00")] == 50  # the B16 quarters 50, 50, 50, 50
    assert solar[utc("2023-06-14 23:00")] == pytest.approx((50 + 48.75 + 47.5 + 46.25) / 4)


def test_a69_answer_without_the_requested_production_type_is_malformed(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture("NO1_A69_2023-06-15_wind_onshore_PT15M.xml"))
    with pytest.raises(MalformedResponse, match=r"no TimeSeries of the requested.*psrType B19"):
        feed.fetch(request(NO1, *JUNE_15, "solar_da"))


def test_a69_time_series_without_a_production_type_is_not_taken(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    untyped = fixture("NO1_A69_2023-06-15_wind_onshore_PT15M.xml").replace(
        b"<psrType>B19</psrType>", b""
    )
    serve(httpserver, untyped)
    with pytest.raises(MalformedResponse, match="psrType missing"):
        feed.fetch(request(NO1, *JUNE_15, "wind_onshore_da"))


def test_load_answer_of_another_process_type_is_malformed(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    # A day-ahead forecast (process A01) where the realised load (A16) was asked for.
    serve(httpserver, fixture("NO1_A65_2023-01-16_load_da.xml"))
    with pytest.raises(MalformedResponse, match=r"process\.processType A01"):
        feed.fetch(request(NO1, "2023-01-15 23:00", "2023-01-16 23:00", "load_actual"))


def test_price_answer_with_intraday_and_day_ahead_keeps_the_day_ahead_prices(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    # The intraday (A07) TimeSeries comes first and carries other prices.
    serve(httpserver, fixture("NO1_A44_2023-06-20_intraday_A07_and_day_ahead_A01.xml"))
    mixed = values_by_hour(feed.fetch(request(NO1, "2023-06-19 22:00", "2023-06-20 22:00")))
    httpserver.clear()
    serve(httpserver, fixture("NO1_A44_2023-06-20_sequence_1_and_2.xml"))
    day_ahead = values_by_hour(feed.fetch(request(NO1, "2023-06-19 22:00", "2023-06-20 22:00")))
    pd.testing.assert_series_equal(mixed, day_ahead)


def test_price_answer_with_only_intraday_prices_is_malformed(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    intraday = fixture("NO1_A44_2023-05-28_negative.xml").replace(
        b"<contract_MarketAgreement.type>A01<", b"<contract_MarketAgreement.type>A07<"
    )
    serve(httpserver, intraday)
    with pytest.raises(MalformedResponse, match=r"contract_MarketAgreement\.type A07"):
        feed.fetch(request(NO1, "2023-05-27 22:00", "2023-05-28 22:00"))


def test_price_document_that_states_no_market_agreement_type_is_read(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    # Older publication documents carry no contract_MarketAgreement.type at all.
    old = fixture("NO1_A44_2018-03-01_ns7_0.xml").replace(
        b"<contract_MarketAgreement.type>A01</contract_MarketAgreement.type>", b""
    )
    assert b"contract_MarketAgreement" not in old
    serve(httpserver, old)
    assert len(feed.fetch(request(NO1, "2018-02-28 23:00", "2018-03-01 23:00"))) == 24


# --- published_at --------------------------------------------------------------------------------


def test_published_at_is_created_date_time_without_publication_rule(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture("BE_60M.xml"))
    frame = feed.fetch(BE_DAY)
    assert set(frame[PUBLISHED_AT]) == {utc("2024-10-07 14:34:54")}


def test_published_at_follows_the_publication_rule_when_given(httpserver: HTTPServer) -> None:
    serve(httpserver, fixture("BE_60M.xml"))
    feed = EntsoeFeed(
        httpserver.url_for(API_PATH),
        TOKEN,
        clock=lambda: NOW,
        rules={"price_da": DAY_AHEAD_13},
    )
    frame = feed.fetch(BE_DAY)
    assert set(frame[PUBLISHED_AT]) == {utc("2024-10-07 11:00")}  # 13:00 CEST on D-1


def test_published_at_is_never_after_retrieval(httpserver: HTTPServer) -> None:
    serve(httpserver, fixture("BE_60M.xml"))
    early = utc("2024-10-07 10:30")  # before the rule's 11:00Z: the prices were out earlier
    feed = EntsoeFeed(
        httpserver.url_for(API_PATH), TOKEN, clock=lambda: early, rules={"price_da": DAY_AHEAD_13}
    )
    assert set(feed.fetch(BE_DAY)[PUBLISHED_AT]) == {early}


# --- the request sent ----------------------------------------------------------------------------

NO1_EIC = NO1.eic


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (
            "price_da",
            {
                "documentType": "A44",
                "in_Domain": NO1_EIC,
                "out_Domain": NO1_EIC,
                "contract_MarketAgreement.type": "A01",
            },
        ),
        ("load_da", {"documentType": "A65", "processType": "A01", "outBiddingZone_Domain": NO1_EIC}),
        ("load_actual", {"documentType": "A65", "processType": "A16", "outBiddingZone_Domain": NO1_EIC}),
        ("generation_da", {"documentType": "A71", "processType": "A01", "in_Domain": NO1_EIC}),
        (
            "wind_onshore_da",
            {"documentType": "A69", "processType": "A01", "in_Domain": NO1_EIC, "psrType": "B19"},
        ),
        ("solar_da", {"documentType": "A69", "processType": "A01", "in_Domain": NO1_EIC, "psrType": "B16"}),
    ],
)
def test_query_parameters_sent_for_each_series(
    httpserver: HTTPServer, feed: EntsoeFeed, series: str, expected: dict[str, str]
) -> None:
    serve(httpserver, fixture("acknowledgement_999_no_matching_data.docs_example.xml"))
    with pytest.raises(DataNotAvailable):
        feed.fetch(request(NO1, "2023-01-15 23:00", "2023-01-16 23:00", series))
    ((sent, _),) = httpserver.log
    assert sent.path == API_PATH
    assert sent.args.to_dict() == {
        **expected,
        "periodStart": "202301152300",
        "periodEnd": "202301162300",
        "securityToken": TOKEN,
    }


def test_request_longer_than_a_year_is_split_into_yearly_requests(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture("NO1_A44_2022-12-31_two_days.xml"))
    feed.fetch(request(NO1, "2021-01-01 00:00", "2023-03-01 00:00"))
    assert sent_periods(httpserver) == [
        ("202101010000", "202201010000"),
        ("202201010000", "202301010000"),
        ("202301010000", "202303010000"),
    ]


def test_day_straddling_two_yearly_requests_is_returned_once(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    # Both requests get both whole local days, as the platform answers prices in whole days.
    serve(httpserver, fixture("NO1_A44_2022-12-31_two_days.xml"))
    frame = feed.fetch(request(NO1, "2022-01-01 00:00", "2023-01-02 00:00"))
    assert len(httpserver.log) == 2
    assert len(frame) == 48
    assert frame[DELIVERY_HOUR].is_unique


def test_year_without_data_does_not_hide_the_other_years(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    httpserver.expect_ordered_request(API_PATH).respond_with_data(
        fixture("acknowledgement_999_no_matching_data.docs_example.xml"), status=400
    )
    httpserver.expect_ordered_request(API_PATH).respond_with_data(fixture("NO1_A44_2022-12-31_two_days.xml"))
    frame = feed.fetch(request(NO1, "2021-12-30 23:00", "2023-01-01 23:00"))
    assert len(frame) == 48


# --- answers classified as failures --------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 400])
def test_acknowledgement_no_matching_data_is_data_not_available(
    httpserver: HTTPServer, feed: EntsoeFeed, status: int
) -> None:
    serve(httpserver, fixture("acknowledgement_999_no_matching_data.docs_example.xml"), status)
    with pytest.raises(DataNotAvailable, match="No matching data found"):
        feed.fetch(BE_DAY)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("acknowledgement_999_too_many_documents.xml", "exceeds allowed limit"),
        ("acknowledgement_999_invalid_combination.xml", r"\[DOCUMENT_TYPE=A65\] is not valid"),
    ],
)
def test_acknowledgement_with_another_reason_is_rejected_with_its_text(
    httpserver: HTTPServer, feed: EntsoeFeed, name: str, reason: str
) -> None:
    serve(httpserver, fixture(name), status=400)
    with pytest.raises(RequestRejected, match=reason):
        feed.fetch(BE_DAY)


def test_document_without_time_series_is_data_not_available(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, fixture("NO1_A44_no_timeseries.xml"))
    with pytest.raises(DataNotAvailable, match="no TimeSeries"):
        feed.fetch(BE_DAY)


def test_unauthorized_says_the_token_was_refused(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, "Unauthorized", status=401, content_type="text/plain")
    with pytest.raises(RequestRejected, match=f"token was refused.*{TOKEN_ENV}"):
        feed.fetch(BE_DAY)


def test_rate_limit_is_site_down_and_the_next_call_succeeds(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    httpserver.expect_ordered_request(API_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "600"}
    )
    httpserver.expect_ordered_request(API_PATH).respond_with_data(fixture("BE_60M.xml"))
    with pytest.raises(SiteDown, match="429"):
        feed.fetch(BE_DAY)
    assert len(feed.fetch(BE_DAY)) == 24


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_site_down(httpserver: HTTPServer, feed: EntsoeFeed, status: int) -> None:
    serve(httpserver, "Service Unavailable", status=status, content_type="text/plain")
    with pytest.raises(SiteDown, match=f"HTTP {status}"):
        feed.fetch(BE_DAY)


def test_html_error_page_is_malformed(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    serve(httpserver, HTML_PAGE, content_type="text/html")
    with pytest.raises(MalformedResponse, match="HTML page"):
        feed.fetch(BE_DAY)


def test_truncated_document_is_malformed(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    whole = fixture("BE_60M.xml")
    serve(httpserver, whole[: len(whole) // 2])
    with pytest.raises(MalformedResponse, match="not well-formed XML"):
        feed.fetch(BE_DAY)


def test_entity_expansion_document_is_refused_without_expanding(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture("billion_laughs.xml"))
    with pytest.raises(MalformedResponse, match="hostile XML") as caught:
        feed.fetch(BE_DAY)
    assert "lollol" not in str(caught.value)


def test_external_entity_document_is_refused_without_reading_the_file(
    httpserver: HTTPServer, feed: EntsoeFeed
) -> None:
    serve(httpserver, fixture("xxe_external_entity.xml"))
    with pytest.raises(MalformedResponse, match="hostile XML") as caught:
        feed.fetch(BE_DAY)
    assert "root:" not in str(caught.value)


# --- the token stays secret ----------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{API_PATH}"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b"Unauthorized"),
        (400, fixture("acknowledgement_999_invalid_combination.xml")),
        (200, fixture("acknowledgement_999_no_matching_data.docs_example.xml")),
        (429, b""),
        (503, b"Service Unavailable"),
        (200, HTML_PAGE.encode()),
        (200, fixture("BE_60M.xml")[:1000]),
    ],
    ids=["401", "rejected", "no_data", "429", "503", "html", "truncated"],
)
def test_token_is_absent_from_errors_and_repr(
    httpserver: HTTPServer, feed: EntsoeFeed, status: int, body: bytes
) -> None:
    serve(httpserver, body, status=status)
    with pytest.raises(FeedError) as caught:
        feed.fetch(BE_DAY)
    traced = "".join(traceback.format_exception(caught.value))
    assert all(TOKEN not in text for text in (str(caught.value), repr(caught.value), traced))
    assert TOKEN not in repr(feed)


def test_token_quoted_in_a_reason_text_is_redacted(httpserver: HTTPServer, feed: EntsoeFeed) -> None:
    echo = fixture("acknowledgement_999_invalid_combination.xml").replace(
        b"[DOCUMENT_TYPE=A65]", f"[securityToken={TOKEN}]".encode()
    )
    serve(httpserver, echo, status=400)
    with pytest.raises(RequestRejected, match=r"\[securityToken=\[redacted\]\]") as caught:
        feed.fetch(BE_DAY)
    assert TOKEN not in str(caught.value)


def test_token_is_absent_from_connection_errors() -> None:
    feed = EntsoeFeed(closed_port_url(), TOKEN, timeout_s=5)
    with pytest.raises(SiteDown) as caught:
        feed.fetch(BE_DAY)
    # The requests exception, whose text holds the whole URL, must not be chained.
    assert TOKEN not in "".join(traceback.format_exception(caught.value))


def test_token_is_absent_from_logs(
    httpserver: HTTPServer, feed: EntsoeFeed, caplog: pytest.LogCaptureFixture
) -> None:
    serve(httpserver, fixture("BE_60M.xml"))
    with caplog.at_level(logging.DEBUG):
        feed.fetch(BE_DAY)
    # The werkzeug records are the test server's own access log, i.e. the platform's side.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]
    assert any(f"GET {API_PATH}?" in message for message in ours)  # urllib3 did log the URL
    assert all(TOKEN not in message for message in ours)


# --- construction from settings ------------------------------------------------------------------


def settings(base_url: str, token: str | None) -> Settings:
    return Settings(
        lake_root="unused",
        zones=(BE,),
        feeds={"entsoe": FeedConfig(kind="entsoe", series=("price_da",), base_url=base_url)},
        series={"price_da": SeriesRule(publication=DAY_AHEAD_13)},
        entsoe_token=None if token is None else SecretStr(token),
    )


def test_from_settings_without_token_names_the_environment_variable() -> None:
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        from_settings(settings("https://web-api.tp.entsoe.eu/api", None))


def test_from_settings_uses_the_configured_url_and_publication_rules(
    httpserver: HTTPServer,
) -> None:
    serve(httpserver, fixture("BE_60M.xml"))
    feed = from_settings(settings(httpserver.url_for(API_PATH), TOKEN))
    frame = feed.fetch(BE_DAY)
    assert set(frame[PUBLISHED_AT]) == {utc("2024-10-07 11:00")}
    assert TOKEN not in repr(feed)
