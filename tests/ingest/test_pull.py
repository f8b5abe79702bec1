"""One pull with its retry policies: EntsoeFeed against a real HTTP server (127.0.0.1) serving
real-format ENTSO-E answers, and the staleness check against the replay of the bundled history.
Sleeping is injected: the tests record the delays instead of waiting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from forecasting.config import RetryPolicies, RetryPolicy, Settings
from forecasting.feeds.base import SeriesRequest
from forecasting.feeds.entsoe import EntsoeFeed
from forecasting.feeds.replay import ReplayFeed
from forecasting.ingest.plan import plan_daily
from forecasting.ingest.pull import PullPlan, StaleData, check_fresh, pull
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import newest_hours
from forecasting.schema import DELIVERY_HOUR

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "entsoe"
API = "/api"
TOKEN = "test-token-0000"
# Distinct numbers per class, so each recorded delay shows which policy produced it.
POLICIES = RetryPolicies(
    not_available=RetryPolicy(interval_s=7.0, backoff=1.0, max_attempts=4),
    site_down=RetryPolicy(interval_s=3.0, backoff=2.0, max_attempts=5),
)
HTML_PAGE = "<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# Local delivery day 2023-05-28 in Oslo, as the platform sends it; its prices were out on May 27.
MAY_28_START, MAY_28_END = utc("2023-05-27 22:00"), utc("2023-05-28 22:00")


class Sleeps(list):
    """A sleep function that records its delays."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def entsoe(httpserver: HTTPServer) -> EntsoeFeed:
    return EntsoeFeed(httpserver.url_for(API), TOKEN, timeout_s=5, clock=lambda: utc("2023-05-27 12:00"))


@pytest.fixture
def daily_plan(settings: Settings) -> PullPlan:
    request = SeriesRequest(settings.zone("NO1"), "price_da", MAY_28_START, MAY_28_END)
    return PullPlan("entsoe", request, expected_newest=MAY_28_END - pd.Timedelta(hours=1))


@pytest.fixture
def backfill_plan(settings: Settings) -> PullPlan:
    return PullPlan(
        "entsoe", SeriesRequest(settings.zone("NO1"), "price_da", utc("2014-01-01"), utc("2014-02-01"))
    )


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def serve_always(
    httpserver: HTTPServer, data: bytes | str, status: int = 200, content_type: str = "text/xml"
) -> None:
    httpserver.expect_request(API).respond_with_data(data, status=status, content_type=content_type)


# --- retries against the HTTP server ---------------------------------------------------------------


def test_rate_limit_then_success_is_ok_after_two_attempts_with_the_site_down_interval(
    httpserver: HTTPServer, entsoe: EntsoeFeed, daily_plan: PullPlan, sleeps: Sleeps
) -> None:
    httpserver.expect_ordered_request(API).respond_with_data("", status=429)  # no Retry-After
    httpserver.expect_ordered_request(API).respond_with_data(body("NO1_A44_2023-05-28_negative.xml"))

    outcome = pull(entsoe, daily_plan, POLICIES, sleep=sleeps)

    assert (outcome.status, outcome.attempts, outcome.rows) == ("ok", 2, 24)
    assert sleeps == [3.0]
    assert outcome.newest_hour == daily_plan.expected_newest
    assert len(httpserver.log) == 2


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("10", [10.0]),  # longer than the policy's 3 s: the server's wish is kept
        ("1", [3.0]),  # shorter: the policy's interval still applies
        ("600", [24.0]),  # beyond the policy's longest delay (3 s × 2³): capped there
        ("soon", [3.0]),  # unreadable: as if absent
    ],
)
def test_rate_limit_retry_after_stretches_the_delay_up_to_the_policy_s_longest(
    httpserver: HTTPServer,
    entsoe: EntsoeFeed,
    daily_plan: PullPlan,
    sleeps: Sleeps,
    retry_after: str,
    expected: list[float],
) -> None:
    httpserver.expect_ordered_request(API).respond_with_data(
        "", status=429, headers={"Retry-After": retry_after}
    )
    httpserver.expect_ordered_request(API).respond_with_data(body("NO1_A44_2023-05-28_negative.xml"))

    outcome = pull(entsoe, daily_plan, POLICIES, sleep=sleeps)

    assert (outcome.status, outcome.attempts) == ("ok", 2)
    assert sleeps == expected


def test_server_error_every_time_is_unavailable_after_site_down_attempts_with_growing_delays(
    httpserver: HTTPServer, entsoe: EntsoeFeed, daily_plan: PullPlan, sleeps: Sleeps
) -> None:
    serve_always(httpserver, "Service Unavailable", status=503, content_type="text/plain")

    outcome = pull(entsoe, daily_plan, POLICIES, sleep=sleeps)

    assert (outcome.status, outcome.attempts) == ("unavailable", 5)
    assert sleeps == [3.0, 6.0, 12.0, 24.0]
    assert len(httpserver.log) == 5
    assert outcome.frame is None and "SiteDown" in outcome.error and "503" in outcome.error


def test_no_data_every_time_in_a_daily_plan_is_unavailable_after_not_available_attempts(
    httpserver: HTTPServer, entsoe: EntsoeFeed, daily_plan: PullPlan, sleeps: Sleeps
) -> None:
    serve_always(httpserver, body("acknowledgement_999_no_matching_data.docs_example.xml"))

    outcome = pull(entsoe, daily_plan, POLICIES, sleep=sleeps)

    assert (outcome.status, outcome.attempts) == ("unavailable", 4)
    assert sleeps == [7.0, 7.0, 7.0]
    assert len(httpserver.log) == 4
    assert "DataNotAvailable" in outcome.error and "No matching data found" in outcome.error


def test_html_error_page_fails_without_retry(
    httpserver: HTTPServer, entsoe: EntsoeFeed, daily_plan: PullPlan, sleeps: Sleeps
) -> None:
    serve_always(httpserver, HTML_PAGE, content_type="text/html")

    outcome = pull(entsoe, daily_plan, POLICIES, sleep=sleeps)

    assert (outcome.status, outcome.attempts) == ("failed", 1)
    assert sleeps == []
    assert len(httpserver.log) == 1
    assert "MalformedResponse" in outcome.error and "HTML" in outcome.error


def test_no_data_in_a_backfill_plan_is_empty_without_retry(
    httpserver: HTTPServer, entsoe: EntsoeFeed, backfill_plan: PullPlan, sleeps: Sleeps
) -> None:
    serve_always(httpserver, body("acknowledgement_999_no_matching_data.docs_example.xml"), status=400)

    outcome = pull(entsoe, backfill_plan, POLICIES, sleep=sleeps)

    assert (outcome.status, outcome.attempts, outcome.rows) == ("empty", 1, 0)
    assert sleeps == []
    assert len(httpserver.log) == 1


def test_each_failure_class_counts_its_own_attempts(
    httpserver: HTTPServer, entsoe: EntsoeFeed, daily_plan: PullPlan, sleeps: Sleeps
) -> None:
    no_data = body("acknowledgement_999_no_matching_data.docs_example.xml")
    for status, data in ((503, b"down"), (200, no_data), (502, b"down"), (200, no_data)):
        httpserver.expect_ordered_request(API).respond_with_data(data, status=status, content_type="text/xml")
    httpserver.expect_ordered_request(API).respond_with_data(body("NO1_A44_2023-05-28_negative.xml"))

    outcome = pull(entsoe, daily_plan, POLICIES, sleep=sleeps)

    assert (outcome.status, outcome.attempts) == ("ok", 5)
    assert sleeps == [3.0, 7.0, 6.0, 7.0]  # site_down 1st, 2nd retry; not_available 1st, 2nd retry


# --- staleness with the replay feed ---------------------------------------------------------------


@pytest.fixture
def replay_daily_plan(settings: Settings, as_of: pd.Timestamp) -> PullPlan:
    """The daily plan for NO1 prices at `as_of` on an empty lake (as plan_daily makes it)."""
    plans = plan_daily(settings, newest_hours(LakeFS.open(settings.lake_root)), as_of)
    return next(p for p in plans if p.request.zone.name == "NO1" and p.request.series == "price_da")


def test_replay_behind_the_expected_newest_hour_is_stale_retried_then_unavailable(
    replay: ReplayFeed, replay_daily_plan: PullPlan, settings: Settings, as_of: pd.Timestamp, sleeps: Sleeps
) -> None:
    replay.clock = lambda: as_of - pd.Timedelta(days=1)  # tomorrow's prices are not out yet

    outcome = pull(replay, replay_daily_plan, settings.retry, sleep=sleeps)

    assert (outcome.status, outcome.attempts) == ("unavailable", settings.retry.not_available.max_attempts)
    assert sleeps == [settings.retry.not_available.interval_s] * (
        settings.retry.not_available.max_attempts - 1
    )
    assert outcome.error.startswith("StaleData") and "older than the due" in outcome.error


def test_fresh_replay_pull_passes_with_the_expected_newest_hour(
    replay: ReplayFeed, replay_daily_plan: PullPlan, settings: Settings, as_of: pd.Timestamp, sleeps: Sleeps
) -> None:
    replay.clock = lambda: as_of

    outcome = pull(replay, replay_daily_plan, settings.retry, sleep=sleeps)

    assert (outcome.status, outcome.attempts) == ("ok", 1)
    assert sleeps == []
    assert outcome.newest_hour == replay_daily_plan.expected_newest == utc("2023-06-11 21:00")


def test_pull_that_only_repeats_the_previous_newest_hour_is_stale(
    replay: ReplayFeed, settings: Settings, as_of: pd.Timestamp
) -> None:
    previous = utc("2023-06-10 21:00")  # what the last daily run landed
    request = SeriesRequest(
        settings.zone("NO1"), "price_da", previous - pd.Timedelta(hours=47), utc("2023-06-11 22:00")
    )
    plan = PullPlan("replay", request, expected_newest=utc("2023-06-11 21:00"), previous_newest=previous)
    replay.clock = lambda: as_of - pd.Timedelta(days=1)
    frame = replay.fetch(request)
    assert frame[DELIVERY_HOUR].max() == previous

    with pytest.raises(StaleData, match="repeats the previous pull"):
        check_fresh(frame, plan)


def test_staleness_tolerance_allows_the_configured_lag(replay: ReplayFeed, settings: Settings) -> None:
    request = SeriesRequest(settings.zone("NO1"), "load_actual", utc("2023-06-09"), utc("2023-06-10 12:00"))
    frame = replay.fetch(request)
    newest = frame[DELIVERY_HOUR].max()
    tolerance = settings.series["load_actual"].staleness_tolerance_hours  # 2 in the configuration

    check_fresh(
        frame, PullPlan("replay", request, expected_newest=newest + pd.Timedelta(hours=tolerance)), tolerance
    )
    with pytest.raises(StaleData):
        check_fresh(
            frame,
            PullPlan("replay", request, expected_newest=newest + pd.Timedelta(hours=tolerance + 1)),
            tolerance,
        )


def test_backfill_plan_has_no_staleness_check(replay: ReplayFeed, settings: Settings) -> None:
    request = SeriesRequest(settings.zone("NO1"), "price_da", utc("2023-01-01"), utc("2023-01-02"))
    check_fresh(replay.fetch(request), PullPlan("replay", request))


def test_range_the_recording_lacks_is_empty_without_retry_even_in_a_daily_plan(
    replay: ReplayFeed, settings: Settings, sleeps: Sleeps
) -> None:
    request = SeriesRequest(settings.zone("NO1"), "price_da", utc("2031-01-01"), utc("2031-01-02"))
    plan = PullPlan("replay", request, expected_newest=utc("2031-01-01 23:00"))

    outcome = pull(replay, plan, settings.retry, sleep=sleeps)

    assert (outcome.status, outcome.attempts, outcome.rows) == ("empty", 1, 0)
    assert sleeps == []
