"""Retries the UI can see: the pull task against a real HTTP server (pytest-httpserver on 127.0.0.1,
real-format ENTSO-E answers) in flows on a real Prefect server (`prefect_test_harness`). Each attempt
a retry policy grants is a retry of the task run (its `run_count` and Retrying states, read back from
the API), with the library's wait before it (logged, ended at once by a stop) and the same outcome the
library's own loop returns; without Prefect the library still retries by itself. Training, where the
daily run must train first, is a task run of its own beside "load champion"."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from flows.forecast_tasks import TrainFirst, champion, champion_task
from flows.ingest_tasks import pull_task, pull_task_for
from forecasting.config import RetryPolicies, Settings
from forecasting.feeds.base import Feed, SeriesRequest
from forecasting.feeds.entsoe import EntsoeFeed
from forecasting.ingest.pull import PullOutcome, PullPlan, allow_pulls, most_retries, pull_planned, stop_pulls
from forecasting.jobs.train import TrainResult
from forecasting.model import registry

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import TaskRun

T = TypeVar("T")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "entsoe"
API = "/api"
PRICES = (FIXTURES / "NO1_A44_2023-05-28_negative.xml").read_bytes()
NO_DATA = (FIXTURES / "acknowledgement_999_no_matching_data.docs_example.xml").read_bytes()
HTML_PAGE = "<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"
# Distinct delays per class (shown to one decimal in the log), short enough to wait for.
RETRY = {
    "not_available": {"interval_s": 0.3, "backoff": 1.0, "max_attempts": 4},
    "site_down": {"interval_s": 0.1, "backoff": 2.0, "max_attempts": 3},
}
# Local delivery day 2023-05-28 in Oslo, as the platform sends it; its prices were out on May 27.
MAY_28_START = pd.Timestamp("2023-05-27 22:00", tz="UTC")
MAY_28_END = pd.Timestamp("2023-05-28 22:00", tz="UTC")


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    """A real Prefect server and database for the flows of this module (its start can take a minute)."""
    from prefect.events.worker import EventsWorker
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        # Task runs reach the server as events. Prefect keeps one events worker per process for any
        # PREFECT_API_URL, connected to the server of the test that started it (test_alerts' one,
        # stopped since): stopped here, the next event starts one connected to this server.
        EventsWorker.drain_all()
        yield


@pytest.fixture
def retry_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(retry=RETRY)


@pytest.fixture
def feeds(httpserver: HTTPServer) -> dict[str, Feed]:
    def may_27() -> pd.Timestamp:
        return pd.Timestamp("2023-05-27 12:00", tz="UTC")

    return {"entsoe": EntsoeFeed(httpserver.url_for(API), "test-token-0000", timeout_s=5, clock=may_27)}


@pytest.fixture
def daily_plan(retry_settings: Settings) -> PullPlan:
    request = SeriesRequest(retry_settings.zone("NO1"), "price_da", MAY_28_START, MAY_28_END)
    return PullPlan("entsoe", request, expected_newest=MAY_28_END - pd.Timedelta(hours=1))


@pytest.fixture
def stoppable() -> Iterator[None]:
    """A test that stops the pulls lets the next ones run again."""
    yield
    allow_pulls()


def answer(httpserver: HTTPServer, *responses: tuple[int, bytes | str, str]) -> None:
    """The server's answers, in this order: (status, body, content type) each."""
    for status, data, content_type in responses:
        httpserver.expect_ordered_request(API).respond_with_data(
            data, status=status, content_type=content_type
        )


DOWN_503 = (503, "Service Unavailable", "text/plain")
DOWN_502 = (502, "Bad Gateway", "text/plain")
NOT_YET = (200, NO_DATA, "text/xml")
UP = (200, PRICES, "text/xml")


def pull_in_a_flow(feeds: dict[str, Feed], plan: PullPlan, settings: Settings) -> tuple[PullOutcome, UUID]:
    """One pull task run, submitted as the backfill and daily flows submit theirs."""
    from prefect import flow

    @flow(name="one pull")
    def one_pull() -> tuple[PullOutcome, UUID]:
        future = pull_task_for(settings).submit(feeds, plan, settings)
        return future.result(), future.task_run_id

    return one_pull()


def recorded(read: Callable[[SyncPrefectClient], T | None], timeout_s: float = 60) -> T:
    """What `read(client)` finds in the API, once it finds it (not None). Task runs and their states
    reach the server as events, which it records a moment later (more on a busy machine)."""
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker
    from prefect.exceptions import ObjectNotFound

    EventsWorker.drain_all()  # the events this process still holds: sent now
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            with contextlib.suppress(ObjectNotFound):
                found = read(client)
                if found is not None:
                    return found
            assert time.monotonic() < deadline, f"not in the API after {timeout_s} s"
            time.sleep(0.2)


def task_run_and_states(task_run_id: UUID) -> tuple[TaskRun, list[str]]:
    """The task run as the API holds it, once final, and the names of its states, oldest first."""

    def final(client: SyncPrefectClient) -> TaskRun | None:
        task_run = client.read_task_run(task_run_id)
        return task_run if task_run.state is not None and task_run.state.is_final() else None

    task_run = recorded(final)
    states = recorded(lambda client: client.read_task_run_states(task_run_id))
    return task_run, [state.name for state in sorted(states, key=lambda s: s.timestamp)]


class Lines(list):
    """The messages of one logger, in order (a handler of its own: the root's is shared)."""

    def retries(self) -> list[str]:
        """`retry in 0.1 s (site_down attempt 2 of 3)` of each retry line, without the error."""
        return [line.split("; ", 1)[1] for line in self if "; retry in " in line]


@pytest.fixture
def ingest_lines() -> Iterator[Lines]:
    logger = logging.getLogger("spotcast.ingest")
    lines = Lines()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler, level = Collect(logging.INFO), logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


# --- under Prefect: each attempt a retry of the task run --------------------------------------------


@pytest.mark.slow
def test_a_feed_down_then_up_is_a_task_run_retried_after_the_policy_s_wait(
    prefect_server: None,
    httpserver: HTTPServer,
    feeds: dict[str, Feed],
    daily_plan: PullPlan,
    retry_settings: Settings,
    ingest_lines: Lines,
) -> None:
    answer(httpserver, DOWN_503, UP)

    outcome, task_run_id = pull_in_a_flow(feeds, daily_plan, retry_settings)

    assert (outcome.status, outcome.attempts, outcome.rows) == ("ok", 2, 24)
    assert outcome.newest_hour == daily_plan.expected_newest
    assert len(httpserver.log) == 2
    task_run, states = task_run_and_states(task_run_id)
    assert task_run.run_count == 2  # the UI counts the attempts
    assert task_run.state.is_completed()
    assert states.count("Retrying") == 1 and states[-1] == "Completed", states
    assert ingest_lines.retries() == ["retry in 0.1 s (site_down attempt 2 of 3)"]


@pytest.mark.slow
def test_each_failure_class_counts_its_own_attempts_as_retries_of_one_task_run(
    prefect_server: None,
    httpserver: HTTPServer,
    feeds: dict[str, Feed],
    daily_plan: PullPlan,
    retry_settings: Settings,
    ingest_lines: Lines,
) -> None:
    # Two site-down and two not-yet answers: four retries, more than either class's policy alone
    # would grant a pull (site_down: 2), which the task's retries (`most_retries`) allow.
    answer(httpserver, DOWN_503, NOT_YET, DOWN_502, NOT_YET, UP)
    began = time.monotonic()

    outcome, task_run_id = pull_in_a_flow(feeds, daily_plan, retry_settings)

    assert (outcome.status, outcome.attempts) == ("ok", 5)
    assert time.monotonic() - began >= 0.1 + 0.3 + 0.2 + 0.3  # each policy's waits were waited
    task_run, states = task_run_and_states(task_run_id)
    assert task_run.run_count == 5
    assert states.count("Retrying") == 4, states
    assert ingest_lines.retries() == [
        "retry in 0.1 s (site_down attempt 2 of 3)",
        "retry in 0.3 s (not_available attempt 2 of 4)",
        "retry in 0.2 s (site_down attempt 3 of 3)",
        "retry in 0.3 s (not_available attempt 3 of 4)",
    ]


@pytest.mark.slow
def test_a_feed_that_stays_down_ends_unavailable_in_a_completed_task_run_after_its_policy(
    prefect_server: None,
    httpserver: HTTPServer,
    feeds: dict[str, Feed],
    daily_plan: PullPlan,
    retry_settings: Settings,
) -> None:
    httpserver.expect_request(API).respond_with_data(
        "Service Unavailable", status=503, content_type="text/plain"
    )

    outcome, task_run_id = pull_in_a_flow(feeds, daily_plan, retry_settings)

    # what the library's loop returns: the run goes on without it, and ends degraded (exit 3)
    assert (outcome.status, outcome.attempts) == ("unavailable", 3)
    assert outcome.frame is None and "SiteDown" in outcome.error and "503" in outcome.error
    assert len(httpserver.log) == 3
    task_run, states = task_run_and_states(task_run_id)
    assert task_run.run_count == 3 and task_run.state.is_completed()
    assert states.count("Retrying") == 2, states
    waits: list[float] = []
    in_the_library = pull_planned(feeds, daily_plan, retry_settings, sleep=waits.append)
    assert (in_the_library.status, in_the_library.attempts, in_the_library.error) == (
        outcome.status,
        outcome.attempts,
        outcome.error,
    )
    assert waits == [0.1, 0.2]


class BrokenFeed:
    """A feed with a bug: not a feed's error, so not a failure class any policy retries."""

    def fetch(self, request: SeriesRequest) -> pd.DataFrame:
        raise KeyError("a bug")


@pytest.mark.slow
def test_a_malformed_answer_and_a_bug_are_not_retried(
    prefect_server: None,
    httpserver: HTTPServer,
    feeds: dict[str, Feed],
    daily_plan: PullPlan,
    retry_settings: Settings,
) -> None:
    from prefect import flow

    httpserver.expect_request(API).respond_with_data(HTML_PAGE, content_type="text/html")
    outcome, task_run_id = pull_in_a_flow(feeds, daily_plan, retry_settings)
    assert (outcome.status, outcome.attempts) == ("failed", 1)
    assert "MalformedResponse" in outcome.error
    assert task_run_and_states(task_run_id)[0].run_count == 1

    @flow(name="broken pull")
    def broken_pull() -> UUID:
        future = pull_task_for(retry_settings).submit({"entsoe": BrokenFeed()}, daily_plan, retry_settings)
        future.wait()
        with pytest.raises(KeyError, match="a bug"):
            future.result()
        return future.task_run_id

    task_run, states = task_run_and_states(broken_pull())
    assert task_run.run_count == 1 and task_run.state.is_failed()
    assert "Retrying" not in states, states


@pytest.mark.slow
def test_a_stop_ends_the_wait_of_a_retried_task_run_at_once(
    prefect_server: None,
    httpserver: HTTPServer,
    feeds: dict[str, Feed],
    daily_plan: PullPlan,
    make_settings: Callable[..., Settings],
    stoppable: None,
) -> None:
    # The defaults' order of magnitude: a stop must not sleep through an hour.
    settings = make_settings(retry={name: {**policy, "interval_s": 3600} for name, policy in RETRY.items()})
    httpserver.expect_request(API).respond_with_data(
        "Service Unavailable", status=503, content_type="text/plain"
    )

    def stop_once_it_waits() -> None:
        deadline = time.monotonic() + 120
        while not httpserver.log and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the retried run is in its hour's wait by now
        stop_pulls()

    stopper = threading.Thread(target=stop_once_it_waits, daemon=True)
    stopper.start()
    began = time.monotonic()
    outcome, task_run_id = pull_in_a_flow(feeds, daily_plan, settings)
    took = time.monotonic() - began
    stopper.join()

    assert (outcome.status, outcome.attempts) == ("stopped", 1)
    assert took < 60  # the stop, not the hour, ended it
    assert len(httpserver.log) == 1  # no attempt after the stop
    task_run, states = task_run_and_states(task_run_id)
    assert task_run.run_count == 2 and task_run.state.is_completed()  # the retry, stopped in its wait
    assert states.count("Retrying") == 1, states


@pytest.mark.slow
def test_a_task_given_fewer_retries_than_the_policies_grant_ends_the_pull_in_the_library_s_loop(
    prefect_server: None,
    httpserver: HTTPServer,
    feeds: dict[str, Feed],
    daily_plan: PullPlan,
    retry_settings: Settings,
) -> None:
    from prefect import flow

    answer(httpserver, DOWN_503, DOWN_503, UP)

    @flow(name="one retry")
    def one_retry() -> tuple[PullOutcome, UUID]:
        future = pull_task.with_options(retries=1).submit(feeds, daily_plan, retry_settings)
        return future.result(), future.task_run_id

    outcome, task_run_id = one_retry()

    assert (outcome.status, outcome.attempts) == ("ok", 3)  # the policy's attempts, not Prefect's
    assert task_run_and_states(task_run_id)[0].run_count == 2


def test_the_task_s_retries_cover_every_attempt_the_policies_grant(retry_settings: Settings) -> None:
    assert most_retries(retry_settings.retry) == (4 - 1) + (3 - 1)
    assert pull_task_for(retry_settings).retries == 5
    assert pull_task.retries == most_retries(RetryPolicies()) == (8 - 1) + (5 - 1)  # the defaults
    assert pull_task.retry_delay_seconds == 0  # the wait is the library's: a stop ends it


# --- without Prefect: the library's own loop ---------------------------------------------------------


def test_without_prefect_the_library_retries_by_itself(
    httpserver: HTTPServer,
    feeds: dict[str, Feed],
    daily_plan: PullPlan,
    retry_settings: Settings,
    ingest_lines: Lines,
) -> None:
    answer(httpserver, DOWN_503, NOT_YET, UP, DOWN_503, UP)
    waits: list[float] = []

    in_the_library = pull_planned(feeds, daily_plan, retry_settings, sleep=waits.append)
    as_a_function = pull_task.fn(feeds, daily_plan, retry_settings)  # not a task run: the library's loop

    assert (in_the_library.status, in_the_library.attempts, in_the_library.rows) == ("ok", 3, 24)
    assert waits == [0.1, 0.3]
    assert (as_a_function.status, as_a_function.attempts, as_a_function.rows) == ("ok", 2, 24)
    assert len(httpserver.log) == 5
    assert ingest_lines.retries() == [
        "retry in 0.1 s (site_down attempt 2 of 3)",  # in the library
        "retry in 0.3 s (not_available attempt 2 of 4)",
        "retry in 0.1 s (site_down attempt 2 of 3)",  # as a function
    ]


# --- training: its own task run ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_champion_to_train_first_is_trained_in_a_task_run_of_its_own(
    prefect_server: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry and the fit are stand-ins: what is checked is which task runs the flow shows.
    from prefect import flow
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    import flows.forecast_tasks as forecast_tasks

    trained: list[dict[str, str] | None] = []
    model = object()

    def load(lake: object, settings: Settings, as_of: pd.Timestamp) -> object:
        if not trained:
            raise registry.NoChampion("no model was champion")
        return model

    def train(settings: Settings, as_of: pd.Timestamp, tags: dict[str, str] | None = None) -> TrainResult:
        trained.append(tags)
        return TrainResult("run", "deepar-x", "artifact", 0.0, {}, True, "first model")

    monkeypatch.setattr(forecast_tasks, "_load", load)
    monkeypatch.setattr(forecast_tasks, "train", train)
    monkeypatch.setattr(registry, "promotions", lambda lake: [])
    steps: list[str] = []

    @flow(name="champion")
    def champion_flow() -> tuple[object, UUID]:
        from prefect.runtime import flow_run

        return champion(
            settings, pd.Timestamp("2023-06-10 12:00", tz="UTC"), on_step=steps.append
        ), flow_run.id

    loaded, flow_run_id = champion_flow()

    assert loaded is model
    assert trained == [{"trigger": "daily: no model yet"}]
    assert steps == ["load champion", "train", "load champion"]  # a failed training names its step
    only_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))

    def all_three(client: SyncPrefectClient) -> list[TaskRun] | None:
        runs = client.read_task_runs(flow_run_filter=only_this_run)
        return runs if len(runs) >= 3 else None

    runs = recorded(all_three)
    shown = [run.name.rsplit("-", 1)[0] for run in sorted(runs, key=lambda run: run.expected_start_time)]
    assert shown == ["load champion", "train", "load champion"]


def test_load_champion_asks_for_training_instead_of_training(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.forecast_tasks as forecast_tasks

    def no_champion(*_: object) -> object:
        raise registry.NoChampion("no model was champion")

    monkeypatch.setattr(forecast_tasks, "_load", no_champion)
    monkeypatch.setattr(registry, "promotions", lambda lake: [])
    as_of = pd.Timestamp("2023-06-10 12:00", tz="UTC")

    assert champion_task.fn(settings, as_of) == TrainFirst("daily: no model yet")
    with pytest.raises(registry.NoChampion):  # after a training: no second one
        champion_task.fn(settings, as_of, may_train=False)
