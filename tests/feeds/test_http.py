"""The transport both web feeds share (forecasting/feeds/http.py), against real servers on
127.0.0.1: one deadline for the whole request, redirects and plain http with a token, the token
kept out of exception chains and frame locals, Retry-After and empty answers.

Fixtures: tests/fixtures/entsoe and tests/fixtures/energy_charts (see their READMEs).
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import pandas as pd
import pytest
import requests
import trustme
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from forecasting.config import (
    ConfigError,
    FeedConfig,
    Publication,
    RetryPolicies,
    RetryPolicy,
    SeriesRule,
    Settings,
    Zone,
    load_settings,
)
from forecasting.feeds.base import FeedError, MalformedResponse, SeriesRequest, SiteDown
from forecasting.feeds.energy_charts import EnergyChartsFeed
from forecasting.feeds.entsoe import EntsoeFeed, from_settings
from forecasting.feeds.http import retry_after_seconds
from forecasting.ingest.pull import PullPlan, pull

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TESTS = Path(__file__).resolve().parents[1]
API = "/api"
TOKEN = "5ecre7-t0ken-do-not-leak-9a8b7c6d"
NOW = pd.Timestamp("2025-01-15 12:00", tz="UTC")
BE = Zone(name="BE", eic="10YBE----------2", timezone="Europe/Brussels")
DE_LU = Zone(name="DE-LU", eic="10Y1001A1001A82H", timezone="Europe/Berlin")
BE_DAY = SeriesRequest(
    BE, "price_da", pd.Timestamp("2024-10-07 22:00", tz="UTC"), pd.Timestamp("2024-10-08 22:00", tz="UTC")
)
DE_MAY_4 = SeriesRequest(
    DE_LU, "price_da", pd.Timestamp("2024-05-03 22:00", tz="UTC"), pd.Timestamp("2024-05-04 22:00", tz="UTC")
)
TRICKLE_FOR_S = 6
RULES = {series: rule.publication for series, rule in load_settings().series.items()}


def entsoe_body() -> bytes:
    return (FIXTURES / "entsoe" / "BE_60M.xml").read_bytes()


def energy_charts_body() -> bytes:
    return (FIXTURES / "energy_charts" / "price_DE-LU_2024-05-04.json").read_bytes()


def entsoe_feed(base_url: str, timeout_s: float = 5, session: requests.Session | None = None) -> EntsoeFeed:
    return EntsoeFeed(base_url, TOKEN, timeout_s=timeout_s, session=session, clock=lambda: NOW)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a server that sends its headers at once, then the body piece by piece ------------------------


@pytest.fixture
def trickle() -> Iterator[Callable[[bytes, int, float], str]]:
    """Start a threaded server on 127.0.0.1 answering every GET with `body`, `piece` bytes at a
    time with `pause_s` between pieces; returns its base URL. It hangs up after TRICKLE_FOR_S, so
    a client without a whole-request deadline fails these tests instead of hanging them."""
    servers: list[ThreadingHTTPServer] = []

    def start(body: bytes, piece: int, pause_s: float) -> str:
        class Trickle(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                stop = time.monotonic() + TRICKLE_FOR_S
                for offset in range(0, len(body), piece):
                    if time.monotonic() > stop:
                        return
                    try:
                        self.wfile.write(body[offset : offset + piece])
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up
                    time.sleep(pause_s)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("feed_kind", ["entsoe", "energy_charts"])
def test_a_body_trickling_one_byte_every_half_second_is_cut_off_at_the_deadline(
    trickle: Callable[[bytes, int, float], str], feed_kind: str
) -> None:
    if feed_kind == "entsoe":
        feed: EntsoeFeed | EnergyChartsFeed = entsoe_feed(trickle(entsoe_body(), 1, 0.5) + API, timeout_s=1)
        request = BE_DAY
    else:
        feed = EnergyChartsFeed(trickle(energy_charts_body(), 1, 0.5), RULES, timeout_s=1)
        request = DE_MAY_4
    started = time.monotonic()
    with pytest.raises(SiteDown, match="timed out, no complete answer within 1 s"):
        feed.fetch(request)
    assert time.monotonic() - started < 2  # per-read timeouts alone held it for minutes


def test_a_body_trickling_within_the_deadline_is_read_whole(
    trickle: Callable[[bytes, int, float], str],
) -> None:
    body = entsoe_body()
    feed = entsoe_feed(trickle(body, len(body) // 5 + 1, 0.1) + API, timeout_s=5)
    assert len(feed.fetch(BE_DAY)) == 24


def test_a_pull_with_a_trickling_server_ends_near_its_deadline(
    trickle: Callable[[bytes, int, float], str],
) -> None:
    feed = entsoe_feed(trickle(entsoe_body(), 1, 0.5) + API, timeout_s=1)
    once = RetryPolicy(interval_s=1, backoff=1, max_attempts=1)
    started = time.monotonic()
    outcome = pull(feed, PullPlan("entsoe", BE_DAY), RetryPolicies(not_available=once, site_down=once))
    assert (outcome.status, outcome.attempts) == ("unavailable", 1)
    assert time.monotonic() - started < 2


# --- redirects ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[HTTPServer]:
    """A second server on 127.0.0.1: another port, so another origin than `httpserver`."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def other(elsewhere: HTTPServer) -> Iterator[HTTPServer]:
    yield elsewhere
    elsewhere.clear()


def redirect_keeping_the_query(target: str, status: int = 302) -> Callable[[Request], Response]:
    """Redirect to `target` with the request's own query, as servers moving an API often do."""

    def handler(request: Request) -> Response:
        return Response(status=status, headers={"Location": f"{target}?{request.query_string.decode()}"})

    return handler


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_to_another_origin_is_not_followed_with_the_token(
    httpserver: HTTPServer, other: HTTPServer, status: int
) -> None:
    httpserver.expect_request(API).respond_with_handler(
        redirect_keeping_the_query(other.url_for(API), status)
    )
    other.expect_request(API).respond_with_data(entsoe_body(), content_type="text/xml")
    with pytest.raises(
        MalformedResponse, match=r"redirected \(HTTP \d+\) to another origin \(http://127\.0\.0\.1:"
    ) as caught:
        entsoe_feed(httpserver.url_for(API)).fetch(BE_DAY)
    assert other.log == []  # the other host never heard of us
    assert TOKEN not in str(caught.value)


def test_redirect_within_the_origin_is_followed_and_sends_the_token_once(httpserver: HTTPServer) -> None:
    httpserver.expect_request(API).respond_with_handler(redirect_keeping_the_query("/v2" + API))
    httpserver.expect_request("/v2" + API).respond_with_data(entsoe_body(), content_type="text/xml")
    assert len(entsoe_feed(httpserver.url_for(API)).fetch(BE_DAY)) == 24
    (_, _), (second, _) = httpserver.log
    assert second.path == "/v2" + API
    assert second.args.getlist("securityToken") == [TOKEN]
    assert second.args["documentType"] == "A44"


def test_redirect_loop_within_the_origin_ends_as_malformed(httpserver: HTTPServer) -> None:
    httpserver.expect_request(API).respond_with_handler(redirect_keeping_the_query(API))
    with pytest.raises(MalformedResponse, match="more than 5 redirects"):
        entsoe_feed(httpserver.url_for(API)).fetch(BE_DAY)
    assert len(httpserver.log) == 6


def test_https_redirect_down_to_http_is_not_followed(other: HTTPServer, tmp_path: Path) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    secure = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_context)
    secure.expect_request(API).respond_with_handler(redirect_keeping_the_query(other.url_for(API)))
    other.expect_request(API).respond_with_data(entsoe_body(), content_type="text/xml")
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would win over our authority
    session.verify = str(tmp_path / "ca.pem")
    with secure:
        assert secure.url_for(API).startswith("https://")
        with pytest.raises(MalformedResponse, match="another origin"):
            entsoe_feed(secure.url_for(API), session=session).fetch(BE_DAY)
        assert len(secure.log) == 1  # the https request itself did go out
    assert other.log == []


def test_feed_without_token_follows_a_redirect_to_another_origin(
    httpserver: HTTPServer, other: HTTPServer
) -> None:
    httpserver.expect_request("/price").respond_with_handler(
        redirect_keeping_the_query(other.url_for("/price"), 301)
    )
    other.expect_request("/price").respond_with_data(energy_charts_body(), content_type="application/json")
    feed = EnergyChartsFeed(httpserver.url_for(""), RULES, timeout_s=5, clock=lambda: NOW)
    assert len(feed.fetch(DE_MAY_4)) == 24
    assert other.log[0][0].args["bzn"] == "DE-LU"


# --- plain http only on loopback ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://web-api.tp.entsoe.eu/api",
        "http://10.0.0.5:8080/api",
        "http://127.example.com/api",
        "ftp://127.0.0.1/api",
        "web-api.tp.entsoe.eu/api",
    ],
)
def test_token_feed_refuses_a_base_url_that_is_not_https_off_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match=r"must be https://"):
        EntsoeFeed(url, TOKEN)


@pytest.mark.parametrize(
    "url",
    [
        "https://web-api.tp.entsoe.eu/api",
        "http://127.0.0.1:8080/api",
        "http://127.3.2.1/api",
        "http://[::1]:8080/api",
        "http://localhost:8080/api",
    ],
)
def test_token_feed_accepts_https_and_plain_http_on_loopback(url: str) -> None:
    assert "EntsoeFeed" in repr(EntsoeFeed(url, TOKEN))


def test_configured_plain_http_base_url_is_a_configuration_error() -> None:
    settings = Settings(
        lake_root="unused",
        zones=(BE,),
        feeds={
            "entsoe": FeedConfig(
                kind="entsoe", series=("price_da",), base_url="http://web-api.tp.entsoe.eu/api"
            )
        },
        series={"price_da": SeriesRule(publication=Publication(kind="day_ahead", local_time=dt_time(13, 0)))},
        entsoe_token=SecretStr(TOKEN),
    )
    with pytest.raises(ConfigError, match="https"):
        from_settings(settings)


# --- the token in exception chains and frame locals -----------------------------------------------


def chain(error: BaseException) -> list[BaseException]:
    """The error with every __cause__ and __context__ reachable from it."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo += [linked for linked in (current.__cause__, current.__context__) if linked is not None]
    return seen


def frame_locals(error: BaseException) -> Iterator[tuple[str, object]]:
    """Locals of every frame of every traceback in the chain, except the tests' own frames
    (which hold the test server and its log of what it received)."""
    for linked in chain(error):
        tb: TracebackType | None = linked.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if not frame.f_code.co_filename.startswith(str(TESTS)):
                for name, value in frame.f_locals.items():
                    yield f"{frame.f_code.co_name}.{name}", value
            tb = tb.tb_next


def reachable_texts(error: BaseException) -> Iterator[tuple[str, str]]:
    """What an error reporter or `pytest --showlocals` could print of a failure."""
    for linked in chain(error):
        yield "exception", f"{linked!s} {linked!r}"
    yield "traceback", "".join(traceback.format_exception(error))
    for name, value in frame_locals(error):
        yield name, repr(value)
        if hasattr(value, "__dict__"):
            yield f"vars({name})", repr(vars(value))


def one_byte_every_0_3_s() -> Iterator[bytes]:
    for byte in entsoe_body()[: int(TRICKLE_FOR_S / 0.3)]:
        yield bytes([byte])
        time.sleep(0.3)


def trickling(httpserver: HTTPServer) -> None:
    httpserver.expect_request(API).respond_with_handler(
        lambda _: Response(one_byte_every_0_3_s(), content_type="text/xml")
    )


FAILURES: dict[str, Callable[[HTTPServer, HTTPServer], None]] = {
    "503": lambda s, _: s.expect_request(API).respond_with_data("down", status=503),
    "429": lambda s, _: s.expect_request(API).respond_with_data(
        "", status=429, headers={"Retry-After": "30"}
    ),
    "401": lambda s, _: s.expect_request(API).respond_with_data("Unauthorized", status=401),
    "empty": lambda s, _: s.expect_request(API).respond_with_data(""),
    "html": lambda s, _: s.expect_request(API).respond_with_data(
        "<html><body>down</body></html>", content_type="text/html"
    ),
    "echoing_rejection": lambda s, _: s.expect_request(API).respond_with_handler(
        lambda request: Response(
            (FIXTURES / "entsoe" / "acknowledgement_999_invalid_combination.xml")
            .read_text()
            .replace("[DOCUMENT_TYPE=A65]", f"[{request.query_string.decode()}]"),
            status=400,
        )
    ),
    "redirect_elsewhere": lambda s, o: s.expect_request(API).respond_with_handler(
        redirect_keeping_the_query(o.url_for(API))
    ),
    "deadline": lambda s, _: trickling(s),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_token_is_nowhere_in_the_exception_chain_or_frame_locals_of_a_failure(
    httpserver: HTTPServer, other: HTTPServer, failure: str
) -> None:
    FAILURES[failure](httpserver, other)
    with pytest.raises(FeedError) as caught:
        entsoe_feed(httpserver.url_for(API), timeout_s=1).fetch(BE_DAY)
    assert len(httpserver.log) >= 1  # the request did go out with the token
    leaks = [name for name, text in reachable_texts(caught.value) if TOKEN in text]
    assert leaks == []


def test_token_is_nowhere_in_the_exception_chain_of_a_connection_failure() -> None:
    with pytest.raises(SiteDown, match="connection failed") as caught:
        entsoe_feed(f"http://127.0.0.1:{closed_port()}{API}").fetch(BE_DAY)
    assert all(linked is caught.value for linked in chain(caught.value))  # nothing chained
    assert [name for name, text in reachable_texts(caught.value) if TOKEN in text] == []


def test_failing_pull_leaves_the_token_out_of_its_outcome_and_log(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(API).respond_with_data("down", status=503)
    twice = RetryPolicy(interval_s=1, backoff=1, max_attempts=2)
    with caplog.at_level(logging.DEBUG):
        outcome = pull(
            entsoe_feed(httpserver.url_for(API)),
            PullPlan("entsoe", BE_DAY),
            RetryPolicies(not_available=twice, site_down=twice),
            sleep=lambda _: None,
        )
    assert outcome.status == "unavailable" and TOKEN not in (outcome.error or "")
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]
    assert any("503" in message for message in ours)
    assert all(TOKEN not in message for message in ours)


# --- Retry-After and empty answers ----------------------------------------------------------------


def test_retry_after_in_seconds_and_as_http_date_is_read() -> None:
    in_90_s = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(in_90_s) == pytest.approx(90, abs=2)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # already past
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_rate_limit_keeps_the_retry_after_the_server_asked_for(httpserver: HTTPServer) -> None:
    httpserver.expect_request(API).respond_with_data("", status=429, headers={"Retry-After": "600"})
    with pytest.raises(SiteDown, match=r"HTTP 429, Retry-After 600 s") as caught:
        entsoe_feed(httpserver.url_for(API)).fetch(BE_DAY)
    assert caught.value.retry_after_s == 600


def test_empty_entsoe_answer_says_empty_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request(API).respond_with_data("", content_type="text/xml")
    with pytest.raises(MalformedResponse, match=r"\(HTTP 200\): empty answer$"):
        entsoe_feed(httpserver.url_for(API)).fetch(BE_DAY)


def test_empty_energy_charts_answer_says_empty_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/price").respond_with_data("", content_type="application/json")
    feed = EnergyChartsFeed(httpserver.url_for(""), RULES, timeout_s=5, clock=lambda: NOW)
    with pytest.raises(MalformedResponse, match=r"empty answer$"):
        feed.fetch(DE_MAY_4)


def test_gzip_answer_is_decompressed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/price").respond_with_data(
        gzip.compress(energy_charts_body()),
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    feed = EnergyChartsFeed(httpserver.url_for(""), RULES, timeout_s=5, clock=lambda: NOW)
    assert json.loads(energy_charts_body())["price"][0] == feed.fetch(DE_MAY_4)["value"].iloc[0]
