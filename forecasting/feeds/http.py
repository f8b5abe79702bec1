"""One HTTP GET for all web feeds, mapping transport failures onto the feed failure classes.

Timeouts, connection errors, HTTP 5xx and 429 → `SiteDown`. Other statuses are returned to the
caller, which knows what they mean for its API (ENTSO-E's 400 may carry "no matching data").
Query parameters are never put into error messages, and the requests exception (whose text holds
the URL, token included) is not chained.
"""

from __future__ import annotations

import requests

from forecasting.feeds.base import SiteDown

USER_AGENT = "spotcast/0.1 (+https://github.com/spotcast)"


def http_get(
    session: requests.Session, url: str, params: dict[str, str], timeout_s: float, what: str
) -> requests.Response:
    """GET `url`; `what` names the request in errors (e.g. "entsoe price_da NO1 2024-01-01")."""
    try:
        response = session.get(url, params=params, timeout=timeout_s, headers={"User-Agent": USER_AGENT})
    except requests.Timeout:
        raise SiteDown(f"{what}: timed out after {timeout_s:.0f} s") from None
    except requests.ConnectionError as exc:
        raise SiteDown(f"{what}: connection failed ({type(exc).__name__})") from None
    except requests.RequestException as exc:
        raise SiteDown(f"{what}: request failed ({type(exc).__name__})") from None
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "?")
        raise SiteDown(f"{what}: rate limited (HTTP 429, Retry-After {retry_after})")
    if response.status_code >= 500:
        raise SiteDown(f"{what}: server error HTTP {response.status_code}")
    return response


def looks_like_html(response: requests.Response) -> bool:
    """Proxies and maintenance pages answer HTML where XML/JSON was asked for."""
    content_type = response.headers.get("Content-Type", "")
    head = response.content[:200].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))
