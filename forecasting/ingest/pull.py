"""One pull of one feed: the staleness check on content and the per-class retry policy.

Failure classes (as in the reference design): *data not yet available* (including stale content)
and *site down* each have their own interval, backoff and maximum attempts; a malformed answer, or
one whose rows break the lake's schema (non-finite values, duplicate hours), is not retried. After
the last attempt the pull is marked unavailable and the run goes on without it. A rate limit's
Retry-After lengthens the site-down delay, up to the longest delay of that policy.

Stopping: `stop_pulls()` ends every pull of the process at once (status "stopped"): a wait between
retries ends when it is called, and no new attempt starts. The command calls it on SIGTERM and
SIGINT, the flows when anything leaves their body (`flows.ingest_tasks.pulls_stop_with_the_run`):
the threads that run the pulls must end before the process can (a request in flight ends at its
deadline, `timeout_s`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from forecasting.config import RetryPolicies, RetryPolicy, Settings
from forecasting.feeds.base import DataNotAvailable, Feed, FeedError, NotCovered, SeriesRequest, SiteDown
from forecasting.schema import DELIVERY_HOUR, SchemaError

log = logging.getLogger("spotcast.ingest")

# ok: data fetched; empty: a range the source has no data for (a gap in history, not an error);
# unavailable: retries used up; failed: an answer that no retry can mend (malformed); stopped: the
# run was stopped (SIGTERM, Ctrl-C, an error) before the pull could end otherwise
PullStatus = Literal["ok", "empty", "unavailable", "failed", "stopped"]

# Set: every pull of this process ends at its next wait or attempt (see `stop_pulls`).
_STOP = threading.Event()


def stop_pulls() -> None:
    """End every pull of this process now: waits between retries end at once and no new attempt
    starts; each such pull ends "stopped". The command calls it from its signal handler."""
    _STOP.set()


def allow_pulls() -> None:
    """Let pulls run again (a new run in this process, after one was stopped)."""
    _STOP.clear()


def pulls_stopped() -> bool:
    return _STOP.is_set()


def wait_unless_stopped(seconds: float) -> None:
    """The default wait between retries: `seconds`, or until `stop_pulls()` is called."""
    _STOP.wait(seconds)


class StaleData(DataNotAvailable):
    """The feed answered, but its content is older than the publication rule expects."""


@dataclass(frozen=True)
class PullPlan:
    """What to fetch from which feed, and what the answer must contain to count as fresh."""

    feed: str
    request: SeriesRequest
    expected_newest: pd.Timestamp | None = None  # None: historical chunk, no staleness check
    previous_newest: pd.Timestamp | None = None  # newest hour already in the lake

    def describe(self) -> str:
        return f"{self.feed} {self.request.describe()}"


@dataclass
class PullOutcome:
    plan: PullPlan
    status: PullStatus
    attempts: int
    frame: pd.DataFrame | None = None
    error: str | None = None

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)

    @property
    def newest_hour(self) -> pd.Timestamp | None:
        if self.frame is None or self.frame.empty:
            return None
        return self.frame[DELIVERY_HOUR].max()


def check_fresh(frame: pd.DataFrame, plan: PullPlan, tolerance_hours: int = 0) -> None:
    """Raise StaleData when the newest hour lags the publication rule, or merely repeats the
    newest hour of the previous pull although newer data is due."""
    if plan.expected_newest is None:
        return
    newest = frame[DELIVERY_HOUR].max()
    due = plan.expected_newest - pd.Timedelta(hours=tolerance_hours)
    if plan.previous_newest is not None and newest <= plan.previous_newest < due:
        raise StaleData(
            f"{plan.describe()}: newest hour {newest:%Y-%m-%d %H:%M} repeats the previous pull; "
            f"{plan.expected_newest:%Y-%m-%d %H:%M} UTC is due"
        )
    if newest < due:
        raise StaleData(
            f"{plan.describe()}: newest hour {newest:%Y-%m-%d %H:%M} is older than the due "
            f"{plan.expected_newest:%Y-%m-%d %H:%M} UTC"
        )


def _policy_for(error: FeedError, policies: RetryPolicies) -> RetryPolicy | None:
    if isinstance(error, DataNotAvailable):
        return policies.not_available
    if isinstance(error, SiteDown):
        return policies.site_down
    return None  # malformed or rejected answers do not get better by asking again


def _retry_delay(error: FeedError, policy: RetryPolicy, attempt: int) -> float:
    """The policy's delay, stretched to a Retry-After the source asked for (HTTP 429), but never
    beyond the longest delay of the policy: a server cannot park a run for longer than that."""
    delay = policy.delay_before(attempt)
    if isinstance(error, SiteDown) and error.retry_after_s is not None:
        longest = policy.delay_before(policy.max_attempts)
        delay = max(delay, min(error.retry_after_s, longest))
    return delay


def pull(
    feed: Feed,
    plan: PullPlan,
    policies: RetryPolicies,
    tolerance_hours: int = 0,
    sleep: Callable[[float], None] = wait_unless_stopped,
) -> PullOutcome:
    """Fetch `plan` from `feed`, retrying each failure class by its own policy; "stopped" when
    `stop_pulls()` is called before it ends otherwise (no attempt is started after that)."""
    tries: dict[str, int] = {}
    attempts = 0
    while True:
        if _STOP.is_set():
            # A pull that never started is not news (a stopped backfill has hundreds of them).
            log.log(
                logging.INFO if attempts else logging.DEBUG,
                "%s: stopped before attempt %d: the run is stopping",
                plan.describe(),
                attempts + 1,
            )
            return PullOutcome(plan, "stopped", attempts, error="stopped: the run was stopped")
        attempts += 1
        try:
            frame = feed.fetch(plan.request)
            check_fresh(frame, plan, tolerance_hours)
            return PullOutcome(plan, "ok", attempts, frame=frame)
        except SchemaError as error:
            log.error("failed, not retried: %s", error)
            return PullOutcome(plan, "failed", attempts, error=f"{type(error).__name__}: {error}")
        except FeedError as error:
            if isinstance(error, NotCovered) or (
                isinstance(error, DataNotAvailable) and plan.expected_newest is None
            ):
                return PullOutcome(plan, "empty", attempts, error=str(error))  # a gap, not a failure
            policy = _policy_for(error, policies)
            if policy is None:
                log.error("failed, not retried: %s", error)
                return PullOutcome(plan, "failed", attempts, error=f"{type(error).__name__}: {error}")
            kind = "not_available" if isinstance(error, DataNotAvailable) else "site_down"
            tries[kind] = tries.get(kind, 0) + 1
            if tries[kind] >= policy.max_attempts:
                log.error("unavailable after %d attempt(s): %s", attempts, error)
                return PullOutcome(plan, "unavailable", attempts, error=f"{type(error).__name__}: {error}")
            delay = _retry_delay(error, policy, tries[kind] + 1)
            log.warning(
                "%s; retry in %.1f s (%s attempt %d of %d)",
                error,
                delay,
                kind,
                tries[kind] + 1,
                policy.max_attempts,
            )
            sleep(delay)


def pull_planned(
    feeds: dict[str, Feed],
    plan: PullPlan,
    settings: Settings,
    sleep: Callable[[float], None] = wait_unless_stopped,
) -> PullOutcome:
    """`pull` with the feed, retry policies and staleness tolerance the settings give for `plan`."""
    tolerance = settings.series[plan.request.series].staleness_tolerance_hours
    return pull(feeds[plan.feed], plan, settings.retry, tolerance, sleep)
