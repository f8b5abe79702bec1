"""The ingestion steps as Prefect tasks: the library's runbook (`forecasting.jobs.ingest`) with each
pull submitted as a task run, its progress in the run log, and the per-feed status at the end.

Retries the UI can see: the retry policies (`[retry.*]`) are executed by Prefect here, one attempt
per run of the pull task. An attempt that fails in a class its policy retries raises `PullRetry`; the
task's `retry_condition_fn` retries exactly those (a bug or a malformed answer is not retried), so
each attempt is a retry of the task run (`run_count`, the Retrying states in the UI). The wait before
an attempt is not Prefect's `retry_delay_seconds` but the library's, at the start of the retried run:
Prefect sleeps its retry delay uninterruptibly in the task runner's thread, and its task runner waits
for that thread before the run (and the process) can end, so a SIGTERM would wait out an hour's delay.
The library's wait ends at once on `stop_pulls()`. The delays stay per class (and stretch to a
Retry-After), which one list of delays per task cannot express.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import Completed, Failed, State

from forecasting.config import RetryPolicies, Settings
from forecasting.errors import log_handled_errors_in_one_line
from forecasting.feeds.base import Feed
from forecasting.ingest.land import IngestReport
from forecasting.ingest.pull import (
    PullAttempts,
    PullOutcome,
    PullPlan,
    RetryDue,
    allow_pulls,
    most_retries,
    pull_attempt_planned,
    pull_planned,
    stop_pulls,
)

# A SpotcastError leaving a task or flow is handled (its message is the news): one log line, no
# traceback, also in runs that `serve` starts.
log_handled_errors_in_one_line("prefect.flow_runs", "prefect.task_runs")


class PullRetry(Exception):
    """An attempt of a pull task run failed in a class its policy retries: Prefect retries the task
    run, whose next attempt first waits the policy's delay (`due.delay_s`)."""

    def __init__(self, due: RetryDue) -> None:
        super().__init__(due.describe())
        self.due = due


def retry_by_failure_class(task: Task[Any, Any], task_run: TaskRun, state: State) -> bool:
    """The pull task's `retry_condition_fn`: a retry for a failure of a class whose policy has an
    attempt left (`PullRetry`: data not yet available or stale, site down); none for anything else
    (a bug in a feed). Malformed answers and used-up policies never get here: they end the pull."""
    failure = state.data  # the raised exception (Prefect's Failed state of an exception holds it)
    return isinstance(failure, PullRetry) and failure.due.attempt <= failure.due.max_attempts


# Each pull task run's progress across its Prefect retries, by task run id: Prefect calls the task's
# function again in the same process and hands it nothing of the attempt before (the attempts, the
# failures per class its policies count, the wait the last one asked for).
_RETRYING: dict[UUID, PullAttempts] = {}


@task(
    name="pull",
    task_run_name="pull {plan.feed} {plan.request.series} {plan.request.zone.name}",
    cache_policy=NO_CACHE,  # feeds and frames are not meant to be hashed or cached
    retries=most_retries(RetryPolicies()),  # for the default policies; a run's: `pull_task_for`
    retry_delay_seconds=0,  # the policy's wait is the library's, interruptible (module docstring)
    retry_condition_fn=retry_by_failure_class,
)
def pull_task(feeds: dict[str, Feed], plan: PullPlan, settings: Settings) -> PullOutcome:
    """One attempt of the pull per run of the task: a retry its policy grants is a Prefect retry of
    the task run (`PullRetry`), its wait at the start of the retried run. The outcome is the one the
    library's loop returns (`pull_planned`): an exhausted policy ends Completed, "unavailable"."""
    context = TaskRunContext.get()
    if context is None or context.task.fn is not pull_task.fn:
        return pull_planned(feeds, plan, settings)  # not this task's run (`pull_task.fn`): the library's loop
    run = context.task_run
    so_far = (_RETRYING.pop(run.id, None) if run.run_count > 1 else None) or PullAttempts()
    verdict = pull_attempt_planned(feeds, plan, settings, so_far)
    if isinstance(verdict, PullOutcome):
        return verdict
    if run.run_count <= (context.task.retries or 0):  # a Prefect retry is left for it
        _RETRYING[run.id] = so_far
        raise PullRetry(verdict)
    # A task given fewer retries than the policies grant: the library's loop does the rest in place.
    return pull_planned(feeds, plan, settings, so_far=so_far)


def pull_task_for(settings: Settings) -> Task[[dict[str, Feed], PullPlan, Settings], PullOutcome]:
    """The pull task with the Prefect retries the settings' policies can use (each class its own
    attempts: `most_retries`); its `.submit` is what a run's pulls are started with."""
    return pull_task.with_options(retries=most_retries(settings.retry))


@contextlib.contextmanager
def pulls_stop_with_the_run() -> Iterator[None]:
    """Around a flow's body: when anything leaves it (Prefect's TerminationSignal on SIGTERM,
    KeyboardInterrupt on Ctrl-C, an error while landing), the pulls still running end at once
    (`stop_pulls`) instead of sleeping through their retry waits: Prefect's task runner waits for
    its threads before the run, and the process, can end."""
    allow_pulls()
    try:
        yield
    except BaseException:
        stop_pulls()
        raise


def log_progress(done: int, total: int, outcome: PullOutcome) -> None:
    get_run_logger().info(
        "[%d/%d] %s: %s, %d rows", done, total, outcome.plan.describe(), outcome.status, outcome.rows
    )


def finish(reports: list[IngestReport], purpose: str) -> State:
    """Publish the per-feed status and end in a state the operator sees: Failed when a pull did not land."""
    report = IngestReport.combine(reports)
    summary = report.summary()
    create_markdown_artifact(
        key=f"{purpose}-feed-status",
        markdown=f"# {purpose} feed status\n\n```\n{summary}\n```\n",
        description=f"Per-feed status of the {purpose} run",
    )
    get_run_logger().info("%s feed status:\n%s", purpose, summary)
    if report.problems():
        return Failed(message=report.not_landed(), data=report)  # one short line; the table has them all
    return Completed(message=f"{report.new_rows} new or revised rows", data=report)


def report_of(state: State) -> IngestReport:
    """The ingest report a (sub)flow run ended with; the exception it ended with is raised."""
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
