"""One pull of one feed: the staleness check on content and the per-class retry policy.

Failure classes (as in the reference design): *data not yet available* (including stale content)
and *site down* each have their own interval, backoff and maximum attempts; a malformed answer, or
one whose rows break the lake's schema (non-finite values, duplicate hours), is not retried. After
the last attempt the pull is marked unavailable and the run goes on without it. A rate limit's
Retry-After lengthens the site-down delay, up to the longest delay of that policy.

One policy table (`[retry.*]`, `RetryPolicies`), two executors of it. `pull_attempt` is one attempt:
the wait the previous failure asked for, one fetch, and the verdict (how the pull ended, or the retry
its policy grants). `pull` repeats it in place: the library's loop, for a notebook or any run without
Prefect. Under Prefect each attempt is one run of the pull task, and a due retry is a Prefect retry of
that task run, so the UI counts the attempts (`flows.ingest_tasks.pull_task`).

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
from dataclasses import dataclass, field
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
# The failure classes a policy retries (`[retry.<class>]`).
RetryKind = Literal["not_available", "site_down"]

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


def _policy_for(error: FeedError, policies: RetryPolicies) -> tuple[RetryKind, RetryPolicy] | None:
    if isinstance(error, DataNotAvailable):
        return "not_available", policies.not_available
    if isinstance(error, SiteDown):
        return "site_down", policies.site_down
    return None  # malformed or rejected answers do not get better by asking again


def most_retries(policies: RetryPolicies) -> int:
    """The most retries one pull can make: each failure class counts its own attempts, so a pull that
    alternates between them may use every class's retries (what a Prefect task's `retries` must allow)."""
    return sum(policy.max_attempts - 1 for policy in (policies.not_available, policies.site_down))


def _retry_delay(error: FeedError, policy: RetryPolicy, attempt: int) -> float:
    """The policy's delay, stretched to a Retry-After the source asked for (HTTP 429), but never
    beyond the longest delay of the policy: a server cannot park a run for longer than that."""
    delay = policy.delay_before(attempt)
    if isinstance(error, SiteDown) and error.retry_after_s is not None:
        longest = policy.delay_before(policy.max_attempts)
        delay = max(delay, min(error.retry_after_s, longest))
    return delay


@dataclass
class PullAttempts:
    """How far one pull has got: the attempts made, how many of them failed per failure class (each
    class counts against its own policy), and the wait the last failure asked for before the next
    attempt. The library's loop keeps one per pull; a Prefect task run keeps one across its retries."""

    made: int = 0
    failed: dict[RetryKind, int] = field(default_factory=dict)
    wait_s: float = 0.0


@dataclass(frozen=True)
class RetryDue:
    """An attempt failed in a class its policy retries: the next attempt is due after `delay_s`."""

    kind: RetryKind
    delay_s: float
    attempt: int  # the class's number of the attempt that is due (2, 3, …)
    max_attempts: int  # the class's policy
    error: FeedError

    def describe(self) -> str:
        return f"{self.error}; retry in {self.delay_s:.1f} s ({self.kind} attempt {self.attempt} of {self.max_attempts})"


def stopped_outcome(plan: PullPlan, so_far: PullAttempts) -> PullOutcome:
    """The end of a pull that the run's stop reached before its next attempt."""
    # A pull that never started is not news (a stopped backfill has hundreds of them).
    log.log(
        logging.INFO if so_far.made else logging.DEBUG,
        "%s: stopped before attempt %d: the run is stopping",
        plan.describe(),
        so_far.made + 1,
    )
    return PullOutcome(plan, "stopped", so_far.made, error="stopped: the run was stopped")


def pull_attempt(
    feed: Feed,
    plan: PullPlan,
    policies: RetryPolicies,
    so_far: PullAttempts,
    tolerance_hours: int = 0,
    sleep: Callable[[float], None] = wait_unless_stopped,
) -> PullOutcome | RetryDue:
    """One attempt of a pull, the step both executors of the policies repeat (the library's `pull`
    loop, and the Prefect task's retries): first the wait the previous failure asked for (a stop ends
    it), then, unless the run is stopping, one fetch and its staleness check. Returns how the pull
    ended, or the retry its policy grants (logged with its wait: `…; retry in 3600.0 s (site_down
    attempt 2 of 5)`); `so_far` is updated. Errors that are not a feed's (a bug) are raised."""
    if so_far.wait_s > 0:
        sleep(so_far.wait_s)
        so_far.wait_s = 0.0
    if _STOP.is_set():
        return stopped_outcome(plan, so_far)
    so_far.made += 1
    try:
        frame = feed.fetch(plan.request)
        check_fresh(frame, plan, tolerance_hours)
        return PullOutcome(plan, "ok", so_far.made, frame=frame)
    except SchemaError as error:
        log.error("failed, not retried: %s", error)
        return PullOutcome(plan, "failed", so_far.made, error=f"{type(error).__name__}: {error}")
    except FeedError as error:
        if isinstance(error, NotCovered) or (
            isinstance(error, DataNotAvailable) and plan.expected_newest is None
        ):
            return PullOutcome(plan, "empty", so_far.made, error=str(error))  # a gap, not a failure
        classified = _policy_for(error, policies)
        if classified is None:
            log.error("failed, not retried: %s", error)
            return PullOutcome(plan, "failed", so_far.made, error=f"{type(error).__name__}: {error}")
        kind, policy = classified
        failed = so_far.failed[kind] = so_far.failed.get(kind, 0) + 1
        if failed >= policy.max_attempts:
            log.error("unavailable after %d attempt(s): %s", so_far.made, error)
            return PullOutcome(plan, "unavailable", so_far.made, error=f"{type(error).__name__}: {error}")
        due = RetryDue(kind, _retry_delay(error, policy, failed + 1), failed + 1, policy.max_attempts, error)
        log.warning("%s", due.describe())
        so_far.wait_s = due.delay_s
        return due


def pull(
    feed: Feed,
    plan: PullPlan,
    policies: RetryPolicies,
    tolerance_hours: int = 0,
    sleep: Callable[[float], None] = wait_unless_stopped,
    so_far: PullAttempts | None = None,
) -> PullOutcome:
    """Fetch `plan` from `feed`, retrying each failure class by its own policy; "stopped" when
    `stop_pulls()` is called before it ends otherwise (no attempt is started after that). The
    library's executor of the policies: it waits and retries in place (`so_far`: go on from there)."""
    so_far = PullAttempts() if so_far is None else so_far
    while True:
        verdict = pull_attempt(feed, plan, policies, so_far, tolerance_hours, sleep)
        if isinstance(verdict, PullOutcome):
            return verdict
        # a retry is due: the next attempt starts with its wait


def pull_planned(
    feeds: dict[str, Feed],
    plan: PullPlan,
    settings: Settings,
    sleep: Callable[[float], None] = wait_unless_stopped,
    so_far: PullAttempts | None = None,
) -> PullOutcome:
    """`pull` with the feed, retry policies and staleness tolerance the settings give for `plan`."""
    return pull(feeds[plan.feed], plan, settings.retry, _tolerance(plan, settings), sleep, so_far)


def pull_attempt_planned(
    feeds: dict[str, Feed], plan: PullPlan, settings: Settings, so_far: PullAttempts
) -> PullOutcome | RetryDue:
    """`pull_attempt` with the feed, retry policies and staleness tolerance the settings give for `plan`."""
    return pull_attempt(feeds[plan.feed], plan, settings.retry, so_far, _tolerance(plan, settings))


def _tolerance(plan: PullPlan, settings: Settings) -> int:
    return settings.series[plan.request.series].staleness_tolerance_hours
