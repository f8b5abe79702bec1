"""The scheduled daily run, as the desk's runbook reads:
ingest the new delivery day(s) (backfilling first on an empty lake, as a sub-flow run) and land the
desk's forwards files → load the champion model (training one if none exists) → issue the four-week
forecast and its products → write them and the analyst report."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from prefect import flow, get_run_logger
from prefect.states import State

from flows.backfill import backfill_flow, settings_for
from flows.forecast_tasks import champion_task, forecast_task, report_task
from flows.ingest_tasks import finish, log_progress, pull_task, pulls_stop_with_the_run, report_of
from forecasting.ingest import runs
from forecasting.ingest.land import IngestReport
from forecasting.reports.product_tables import render_product_summary
from forecasting.reports.tables import render_summary, summary_table


@flow(name="daily")
def daily_flow(
    config: str | None = None, as_of: datetime | None = None, zones: list[str] | None = None
) -> State:
    settings = settings_for(config, zones)
    as_of_utc = runs.resolve_as_of(settings, as_of)

    def backfill_first(at: pd.Timestamp) -> IngestReport:
        return report_of(backfill_flow(config=config, as_of=at, zones=zones, return_state=True))

    with pulls_stop_with_the_run():
        reports = runs.daily(
            settings, as_of_utc, submit=pull_task.submit, progress=log_progress, backfill_first=backfill_first
        )
    ingest_table = reports[-1].table()
    model = champion_task(settings, as_of_utc)
    issued = forecast_task(settings, model, as_of_utc, ingest_table)
    report_dir = report_task(settings, issued, ingest_table)
    get_run_logger().info(
        "forecast issued %s by %s; report in %s\n%s\n\n%s",
        issued.issue_date,
        model.model_id_,
        report_dir,
        render_summary(summary_table(issued.forecast)),
        render_product_summary(issued.view),
    )
    return finish(reports, "daily")
