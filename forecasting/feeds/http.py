"""One HTTP GET for all web feeds: a deadline for the whole request, redirects that never carry a
token elsewhere, answers that hold no token, and transport failures mapped onto the feed classes.

* Timeouts, connection errors, HTTP 5xx and 429 → `SiteDown` (a 429 keeps the server's
  Retry-After). Other statuses are handed back: the caller knows what they mean for its API
  (ENTSO-E's 400 may carry "no matching data").
* `timeout_s` bounds the whole exchange, from connecting to the last byte of the body (redirects
  included): `requests` alone bounds each socket operation, so a server that trickles its headers
  or its body one byte at a time could hold a pull for hours. A watchdog (`_Deadline`) shuts the
  socket of the connection the request is using when the time is up, and the body is read piece by
  piece with each read bounded by the time left. (Name resolution is not bounded by it.)
* A token (`QueryToken`) is put into the URL while `requests` prepares the request, so no dict,
  URL or frame of the feeds holds it; urllib3's log lines and the `Answer` handed back are
  scrubbed of it. Redirects of a token-bearing request are followed within the same origin only.
* Failures are raised after the `except` block that caught them: the `requests` exception, whose
  text and frames hold the full URL, is neither `__cause__` nor `__context__` of what is raised.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from forecasting.config import ConfigError
from forecasting.feeds.base import MalformedResponse, SiteDown

USER_AGENT = "spotcast/0.1 (+https://github.com/spotcast)"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
REDACTED = "[redacted]"  # harmless inside XML, JSON, headers and log lines
# urllib3 logs request URLs at DEBUG level, and a token-bearing URL carries the token.
URLLIB3_LOGGER = "urllib3.connectionpool"


@dataclass(frozen=True)
class Answer:
    """What the feeds read of an HTTP answer. It keeps no URL and no request, so no token."""

    status: int
    reason: str
    headers: Mapping[str, str] = field(repr=False)  # case-insensitive
    content: bytes = field(repr=False)

    def json(self) -> Any:
        """The body as JSON; a ValueError when it is not."""
        return json.loads(self.content)


class _RedactSecrets(logging.Filter):
    """Replaces registered secrets in log messages (attached to the urllib3 logger)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        self._secrets.update({secret, quote_plus(secret)})  # raw and as it appears in a URL

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


_LOG_REDACTOR = _RedactSecrets()


class QueryToken(requests.auth.AuthBase):
    """A secret query parameter (ENTSO-E's securityToken), added to the URL only while `requests`
    prepares the request; its repr, vars() and every answer it touches show no secret."""

    def __init__(self, name: str, secret: str) -> None:
        self.name = name
        self._secret = SecretStr(secret)
        _LOG_REDACTOR.add(secret)
        logging.getLogger(URLLIB3_LOGGER).addFilter(_LOG_REDACTOR)  # idempotent: one filter object

    def __repr__(self) -> str:
        return f"QueryToken({self.name!r}, {REDACTED!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_url(request.url, {self.name: self._secret.get_secret_value()})
        return request

    def redact(self, text: str) -> str:
        for form in self._forms():
            text = text.replace(form, REDACTED)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        for form in self._forms():
            data = data.replace(form.encode(), REDACTED.encode())
        return data

    def without(self, url: str) -> str:
        """`url` without this parameter (a redirect target that echoes the query)."""
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != self.name]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _forms(self) -> tuple[str, ...]:
        secret = self._secret.get_secret_value()
        return (secret, quote_plus(secret))  # raw and as it appears in a URL


class _DeadlinePassed(Exception):
    """The whole-request deadline passed while the answer was still coming."""


# --- the whole-exchange deadline ------------------------------------------------------------------
# `requests`' timeouts bound each socket operation, so a server sending its status line and headers
# one byte a second holds a request as long as it likes. The connections a request uses register
# with the deadline of the request running in their thread (`_Deadline`), whose timer shuts their
# sockets when the time is up: the blocked read ends at once, and the request fails as timed out.

_RUNNING = threading.local()  # .deadline: the `_Deadline` of the request this thread is making


class _Deadline:
    """A timer that shuts the sockets of the connections a request uses when `deadline` (a
    `time.monotonic()` instant) passes; `passed` says whether it did."""

    def __init__(self, deadline: float) -> None:
        self._lock = threading.Lock()
        self._connections: list[urllib3.connection.HTTPConnection] = []
        self._over = False
        self.passed = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _RUNNING.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._over = True
            self._connections.clear()  # pooled connections are the pool's again
        _RUNNING.deadline = None

    def watch(self, connection: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            if self._over:
                return
            if self.passed:
                _shut(connection)
            elif not any(known is connection for known in self._connections):
                self._connections.append(connection)

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.passed = True
            for connection in self._connections:
                _shut(connection)


def _shut(connection: urllib3.connection.HTTPConnection) -> None:
    """End every read and write on the connection's socket (also one blocked in another thread;
    `close` would not wake it). The pool drops the connection when the request fails."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket, also under TLS


def _watched(connection: urllib3.connection.HTTPConnection) -> None:
    deadline = getattr(_RUNNING, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """A connection that joins the deadline of the request it serves: when it connects (a new one)
    and when it sends a request (a reused one)."""

    def connect(self) -> None:
        _watched(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        _watched(self)  # the TLS handshake included
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """`requests`' adapter whose connections (direct, or through an http(s) proxy) join the deadline
    of `http_get`. `http_get` mounts it on a session that has `requests`' default adapter."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has connection classes of its own
            manager.pool_classes_by_scheme = WATCHED_POOLS
        return manager


def _with_deadline_adapter(session: requests.Session) -> None:
    """Mount `DeadlineAdapter` where the session has `requests`' default adapter (keeping its
    settings); an adapter of the caller's own is kept (its headers are then bounded per read only)."""
    for prefix in ("https://", "http://"):
        adapter = session.adapters.get(prefix)
        if type(adapter) is HTTPAdapter:
            session.mount(
                prefix,
                DeadlineAdapter(
                    pool_connections=adapter._pool_connections,
                    pool_maxsize=adapter._pool_maxsize,
                    max_retries=adapter.max_retries,
                    pool_block=adapter._pool_block,
                ),
            )


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


def require_https(url: str, what: str) -> None:
    """A token-bearing feed talks https; plain http only to this machine (tests, a local proxy)."""
    parts = urlsplit(url)
    private = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))
    if parts.hostname and private:
        return
    raise ConfigError(
        f"{what}: base URL must be https:// (plain http:// only on loopback), "
        f"got {parts.scheme or 'no scheme'}://{parts.hostname or ''}"
    )


def retry_after_seconds(value: str | None) -> float | None:
    """The wait a Retry-After header asks for (seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def http_get(
    session: requests.Session,
    url: str,
    params: Mapping[str, str],
    timeout_s: float,
    what: str,
    token: QueryToken | None = None,
) -> Answer:
    """GET `url` within `timeout_s` in all; `what` names the request in errors (e.g. "entsoe
    price_da NO1 [2024-01-01 00:00, ...)"). `token` is added to the query at send time."""
    _with_deadline_adapter(session)
    deadline = time.monotonic() + timeout_s
    watchdog = _Deadline(deadline)
    timed_out = SiteDown(f"{what}: timed out, no complete answer within {timeout_s:g} s")
    try:
        with watchdog:
            answer = _get_following(session, url, dict(params), token, deadline, what)
        if watchdog.passed:  # cut off: what was read of it is not the answer
            raise _DeadlinePassed
        return _checked(answer, what)
    except (_DeadlinePassed, requests.Timeout, urllib3.exceptions.TimeoutError):
        failure = timed_out
    except (requests.ConnectionError, urllib3.exceptions.ProtocolError) as exc:
        failed = SiteDown(f"{what}: connection failed ({type(exc).__name__})")
        failure = timed_out if watchdog.passed else failed
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        failed = SiteDown(f"{what}: request failed ({type(exc).__name__})")
        failure = timed_out if watchdog.passed else failed
    raise failure  # outside the except blocks, so the caught exception is not its __context__


def looks_like_html(answer: Answer) -> bool:
    """Proxies and maintenance pages answer HTML where XML/JSON was asked for."""
    content_type = answer.headers.get("Content-Type", "")
    head = answer.content[:200].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def json_body(answer: Answer, what: str) -> Any:
    """The JSON of a 200 answer's body; an empty body, an HTML page and broken JSON are a
    MalformedResponse that says which (JSON nested past Python's recursion limit is a RecursionError)."""
    if not answer.content.strip():
        raise MalformedResponse(f"{what}: empty answer")
    if looks_like_html(answer):
        raise MalformedResponse(f"{what}: got an HTML page instead of JSON")
    try:
        return answer.json()
    except ValueError as exc:  # json's JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedResponse(f"{what}: body is not valid JSON (truncated?): {exc}") from exc


def _checked(answer: Answer, what: str) -> Answer:
    if answer.status == 429:
        wait = retry_after_seconds(answer.headers.get("Retry-After"))
        asked = "" if wait is None else f", Retry-After {wait:.0f} s"
        raise SiteDown(f"{what}: rate limited (HTTP 429{asked})", retry_after_s=wait)
    if answer.status >= 500:
        raise SiteDown(f"{what}: server error HTTP {answer.status}")
    return answer


def _get_following(
    session: requests.Session,
    url: str,
    params: dict[str, str],
    token: QueryToken | None,
    deadline: float,
    what: str,
) -> Answer:
    """GET, following redirects; with a token only within the origin of `url`."""
    for _ in range(MAX_REDIRECTS + 1):
        answer = _get_once(session, url, params, token, deadline)
        location = answer.headers.get("Location")
        if answer.status not in REDIRECTS or not location:
            return answer
        target = urljoin(url, location)
        if token is not None:
            if _origin(target) != _origin(url):
                raise MalformedResponse(
                    f"{what}: redirected (HTTP {answer.status}) to another origin "
                    f"({_origin_text(target)}); not followed, so the token stays here. "
                    "Check the feed's base URL"
                )
            target = token.without(target)  # the token is added again when sent
        url, params = target, {}
    raise MalformedResponse(f"{what}: more than {MAX_REDIRECTS} redirects")


def _get_once(
    session: requests.Session,
    url: str,
    params: dict[str, str],
    token: QueryToken | None,
    deadline: float,
) -> Answer:
    remaining = _remaining(deadline)
    with session.get(
        url,
        params=params,
        auth=token,
        timeout=(remaining, remaining),
        allow_redirects=False,
        stream=True,
        headers={"User-Agent": USER_AGENT},
    ) as response:
        content = _read_body(response.raw, deadline)
        headers = CaseInsensitiveDict(response.headers)
        if token is not None:
            headers = CaseInsensitiveDict({k: token.redact(v) for k, v in headers.items()})
            content = token.redact_bytes(content)
        return Answer(response.status_code, response.reason or "", headers, content)


def _read_body(raw: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    """The whole body (decompressed), read piece by piece so that no read outlasts the deadline."""
    pieces: list[bytes] = []
    while True:
        connection = raw.connection
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(_remaining(deadline))
        piece = raw.read1(CHUNK_BYTES, decode_content=True)
        if not piece:
            return b"".join(pieces)
        pieces.append(piece)
        _remaining(deadline)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlinePassed
    return remaining


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname, parts.port or default_port


def _origin_text(url: str) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"
