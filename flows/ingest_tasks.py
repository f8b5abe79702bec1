"""The ingestion steps as Prefect tasks: pulls run concurrently, each lands as soon as it is done."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from forecasting.config import Settings
from forecasting.feeds.base import Feed
from forecasting.feeds.registry import build_feeds
from forecasting.ingest.land import IngestReport, Landing
from forecasting.ingest.pull import PullOutcome, PullPlan, pull_planned
from forecasting.ingest.runs import frozen_clock
from forecasting.lake.files import LakeFS


@task(
    name="pull",
    task_run_name="pull {plan.feed} {plan.request.series} {plan.request.zone.name}",
    cache_policy=NO_CACHE,  # feeds and frames are not meant to be hashed or cached
)
def pull_task(feeds: dict[str, Feed], plan: PullPlan, settings: Settings) -> PullOutcome:
    return pull_planned(feeds, plan, settings)


def ingest(
    settings: Settings, lake: LakeFS, plans: Sequence[PullPlan], as_of: pd.Timestamp, purpose: str
) -> IngestReport:
    """Pull `plans` as concurrent tasks and land them under the lake's write lock in plan order:
    each zone × series then lands oldest chunk first, so after a crash the lake holds a gap-free
    prefix of its history and a resumed backfill (which starts after the newest hour) misses nothing."""
    log = get_run_logger()
    feeds = build_feeds(settings, clock=frozen_clock(as_of))
    log.info("%s: %d pull(s) as of %s", purpose, len(plans), as_of)
    with Landing(lake, purpose) as landing:
        futures = [pull_task.submit(feeds, plan, settings) for plan in plans]
        for done, future in enumerate(futures, start=1):
            outcome = future.result()
            landing.add(outcome)
            log.info(
                "[%d/%d] %s: %s, %d rows",
                done,
                len(plans),
                outcome.plan.describe(),
                outcome.status,
                outcome.rows,
            )
    return landing.report


def finish(report: IngestReport, purpose: str) -> State:
    """Publish the per-feed status and end in a state the operator sees: Failed when a pull did not land."""
    summary = report.summary()
    create_markdown_artifact(
        key=f"{purpose}-feed-status",
        markdown=f"# {purpose} feed status\n\n```\n{summary}\n```\n",
        description=f"Per-feed status of the {purpose} run",
    )
    get_run_logger().info("%s feed status:\n%s", purpose, summary)
    problems = report.problems()
    if problems:
        names = "; ".join(f"{o.plan.describe()} ({o.status}: {o.error})" for o in problems)
        return Failed(message=f"{len(problems)} pull(s) did not land, the others did: {names}", data=report)
    return Completed(message=f"{report.new_rows} new or revised rows", data=report)
