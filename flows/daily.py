"""The scheduled daily run, as the desk's runbook reads:
ingest the new delivery day(s) (backfilling first on an empty lake) → load the champion model
(training one if none exists) → issue the four-week forecast → write it and the analyst report."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger
from prefect.states import State

from flows.backfill import backfill_flow, settings_for
from flows.forecast_tasks import champion_task, forecast_task, report_task
from flows.ingest_tasks import finish, ingest
from forecasting.ingest.plan import plan_daily
from forecasting.ingest.runs import resolve_as_of
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import newest_hours
from forecasting.reports.tables import render_summary, summary_table


@flow(name="daily")
def daily_flow(
    config: str | None = None, as_of: datetime | None = None, zones: list[str] | None = None
) -> State:
    settings = settings_for(config, zones)
    as_of_utc = resolve_as_of(settings, as_of)
    lake = LakeFS.open(settings.lake_root)
    landed = newest_hours(lake)
    if landed.empty:  # no history yet: the reference design's full download first
        backfill_flow(config=config, as_of=as_of_utc, zones=zones)
        landed = newest_hours(lake)
    report = ingest(settings, lake, plan_daily(settings, landed, as_of_utc), as_of_utc, "daily")
    ingest_table = report.table()
    model = champion_task(settings, as_of_utc)
    issued = forecast_task(settings, model, as_of_utc, ingest_table)
    reports = report_task(settings, issued, ingest_table)
    get_run_logger().info(
        "forecast issued %s by %s; report in %s\n%s",
        issued.issue_date,
        model.model_id_,
        reports,
        render_summary(summary_table(issued.forecast)),
    )
    return finish(report, "daily")
