"""The ingestion steps as Prefect tasks: the library's runbook (`forecasting.ingest.runs`) with each
pull submitted as a task run, its progress in the run log, and the per-feed status at the end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from forecasting.config import Settings
from forecasting.errors import log_handled_errors_in_one_line
from forecasting.feeds.base import Feed
from forecasting.ingest.land import IngestReport
from forecasting.ingest.pull import PullOutcome, PullPlan, allow_pulls, pull_planned, stop_pulls

# A SpotcastError leaving a task or flow is handled (its message is the news): one log line, no
# traceback, also in runs that `serve` starts.
log_handled_errors_in_one_line("prefect.flow_runs", "prefect.task_runs")


@task(
    name="pull",
    task_run_name="pull {plan.feed} {plan.request.series} {plan.request.zone.name}",
    cache_policy=NO_CACHE,  # feeds and frames are not meant to be hashed or cached
)
def pull_task(feeds: dict[str, Feed], plan: PullPlan, settings: Settings) -> PullOutcome:
    return pull_planned(feeds, plan, settings)


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
