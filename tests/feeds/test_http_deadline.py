"""The whole-exchange deadline of the web feeds (forecasting/feeds/http.py) against a raw socket
server on 127.0.0.1 that sends its status line and headers one byte a second: `requests` bounds
each socket read only, so without the deadline such a server held a 1 s request 20.6 s, and a 2 s
one (no read waits 2 s) until the server stopped (8 s here). Plain http, a kept-alive connection
whose second answer trickles, and https (trustme's authority).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import trustme
from test_http import API, BE_DAY, DE_MAY_4, FIXTURES, NOW, TOKEN  # the feeds' test requests and fixtures

from forecasting.config import load_settings
from forecasting.feeds.base import SiteDown
from forecasting.feeds.energy_charts import EnergyChartsFeed
from forecasting.feeds.entsoe import EntsoeFeed

TRICKLE_FOR_S = 8  # the server gives up after this: a client without the deadline fails, not hangs
TIMEOUT_S = 2  # above the 1 s between bytes: no single read times out, only the whole exchange can
ENTSOE_BODY = (FIXTURES / "entsoe" / "BE_60M.xml").read_bytes()
RULES = {series: rule.publication for series, rule in load_settings().series.items()}


def _answer(body: bytes, content_type: str = "text/xml") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _read_request(conn: socket.socket) -> bool:
    """Read one request's head; False when the client hung up."""
    seen = b""
    while b"\r\n\r\n" not in seen:
        try:
            piece = conn.recv(4096)
        except OSError:
            return False
        if not piece:
            return False
        seen += piece
    return True


def _trickle(conn: socket.socket, data: bytes) -> None:
    """Send `data` one byte a second, until the client hangs up or TRICKLE_FOR_S is over."""
    stop = time.monotonic() + TRICKLE_FOR_S
    for byte in data:
        if time.monotonic() > stop:
            return
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return  # the client gave up
        time.sleep(1)


class HeaderTrickle:
    """A raw socket server on 127.0.0.1: answers the first `whole` requests of each connection at
    once (kept alive), then trickles the head of the next answer one byte a second. It counts the
    connections and records when each trickling one saw the client hang up."""

    def __init__(self, body: bytes, whole: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.body, self.whole, self.tls = body, whole, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.hung_up: list[float] = []
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            for _ in range(self.whole):
                if not _read_request(conn):
                    return
                conn.sendall(_answer(self.body))
            if _read_request(conn):
                _trickle(conn, _answer(self.body))
            self.hung_up.append(time.monotonic())

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.listener.close()


@pytest.fixture
def header_trickle() -> Iterator[Callable[..., HeaderTrickle]]:
    servers: list[HeaderTrickle] = []

    def start(body: bytes = ENTSOE_BODY, whole: int = 0, tls: ssl.SSLContext | None = None) -> HeaderTrickle:
        servers.append(HeaderTrickle(body, whole, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def entsoe_feed(base_url: str, timeout_s: float, session: requests.Session | None = None) -> EntsoeFeed:
    return EntsoeFeed(base_url, TOKEN, timeout_s=timeout_s, session=session, clock=lambda: NOW)


def _timed_fetch(fetch: Callable[[], object], timeout_s: float) -> float:
    began = time.monotonic()
    with pytest.raises(SiteDown, match=f"timed out, no complete answer within {timeout_s:g} s"):
        fetch()
    return time.monotonic() - began


@pytest.mark.parametrize("feed_kind", ["entsoe", "energy_charts"])
def test_headers_trickled_one_byte_a_second_are_cut_off_at_the_deadline(
    header_trickle: Callable[..., HeaderTrickle], feed_kind: str
) -> None:
    server = header_trickle()
    base = f"http://127.0.0.1:{server.port}"
    if feed_kind == "entsoe":
        feed: EntsoeFeed | EnergyChartsFeed = entsoe_feed(base + API, timeout_s=TIMEOUT_S)
        request = BE_DAY
    else:
        feed = EnergyChartsFeed(base, RULES, timeout_s=TIMEOUT_S, clock=lambda: NOW)
        request = DE_MAY_4

    took = _timed_fetch(lambda: feed.fetch(request), TIMEOUT_S)

    assert TIMEOUT_S - 0.1 < took < TIMEOUT_S + 0.6  # was: until the server stopped sending
    deadline_passed = time.monotonic()
    for _ in range(30):  # the server sees the connection end (at its next byte or the one after)
        if server.hung_up:
            break
        time.sleep(0.1)
    assert server.hung_up and server.hung_up[0] <= deadline_passed + 2.5  # not left hanging


def test_a_kept_alive_connection_whose_next_answer_trickles_is_cut_off_too(
    header_trickle: Callable[..., HeaderTrickle],
) -> None:
    server = header_trickle(whole=1)
    feed = entsoe_feed(f"http://127.0.0.1:{server.port}{API}", timeout_s=TIMEOUT_S)
    assert len(feed.fetch(BE_DAY)) == 24  # the first answer, at once; the connection is kept

    took = _timed_fetch(lambda: feed.fetch(BE_DAY), TIMEOUT_S)  # the same connection, reused

    assert took < TIMEOUT_S + 0.6


def test_https_headers_trickled_are_cut_off_at_the_deadline(
    header_trickle: Callable[..., HeaderTrickle], tmp_path: Path
) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = header_trickle(tls=server_context)
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would win over our authority
    session.verify = str(tmp_path / "ca.pem")
    feed = entsoe_feed(f"https://127.0.0.1:{server.port}{API}", timeout_s=TIMEOUT_S, session=session)

    took = _timed_fetch(lambda: feed.fetch(BE_DAY), TIMEOUT_S)

    assert took < TIMEOUT_S + 0.6


def test_an_answer_within_the_deadline_is_read_and_the_connection_kept(
    header_trickle: Callable[..., HeaderTrickle],
) -> None:
    server = header_trickle(whole=2)
    feed = entsoe_feed(f"http://127.0.0.1:{server.port}{API}", timeout_s=1)
    assert len(feed.fetch(BE_DAY)) == 24
    time.sleep(1.2)  # past the first request's deadline: its timer must not touch the kept connection
    assert len(feed.fetch(BE_DAY)) == 24
    assert server.connections == 1  # both answers on one connection
