"""The scheduled daily run, as the desk's runbook reads:
ingest the new delivery day(s) (backfilling first on an empty lake, as a sub-flow run) and land the
desk's forwards files → load the champion model (training one first, as a task run of its own, if
none exists) → issue the four-week forecast and its products → write them and the analyst report.

A run that fails ends Failed with a message naming the step and the one-line reason
(`step 'load champion' failed: NoChampion: …`): what the failure alert sends (flows/alerts.py)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from prefect import flow, get_run_logger
from prefect.states import Failed, State

from flows.backfill import backfill_flow
from flows.defaults import apply_prefect_defaults
from flows.forecast_tasks import champion, forecast_task, report_task
from flows.ingest_tasks import finish, log_progress, pull_task_for, pulls_stop_with_the_run, report_of
from forecasting.config import settings_for
from forecasting.errors import SpotcastError
from forecasting.ingest.land import IngestReport
from forecasting.jobs import ingest
from forecasting.reports.product_tables import render_product_summary
from forecasting.reports.tables import render_summary, summary_table

# A deployment's entrypoint (prefect.yaml, `serve`): the module a worker's flow-run process imports
# of Spotcast, so Prefect's defaults are applied here for that process (flows/defaults.py).
apply_prefect_defaults()


@flow(name="daily")
def daily_flow(
    config: str | None = None, as_of: datetime | None = None, zones: list[str] | None = None
) -> State:
    step = "configuration"  # the step running: a failure's message names it (an alert sends it)
    try:
        settings = settings_for(config, zones)
        as_of_utc = ingest.resolve_as_of(settings, as_of)

        def enter(name: str) -> None:
            nonlocal step
            step = name

        def backfill_first(at: pd.Timestamp) -> IngestReport:
            nonlocal step
            step = "backfill"
            report = report_of(backfill_flow(config=config, as_of=at, zones=zones, return_state=True))
            step = "ingest"
            return report

        step = "ingest"
        pulls = pull_task_for(settings)  # its Prefect retries are the settings' retry policies
        with pulls_stop_with_the_run():
            reports = ingest.daily(
                settings, as_of_utc, submit=pulls.submit, progress=log_progress, backfill_first=backfill_first
            )
        ingest_table = reports[-1].table()
        model = champion(settings, as_of_utc, on_step=enter)  # "load champion", and "train" where it must
        step = forecast_task.name
        issued = forecast_task(settings, model, as_of_utc, ingest_table)
        step = report_task.name
        report_dir = report_task(settings, issued, ingest_table)
    except Exception as exc:
        return step_failed(step, exc)
    get_run_logger().info(
        "forecast issued %s by %s; report in %s\n%s\n\n%s",
        issued.issue_date,
        model.model_id_,
        report_dir,
        render_summary(summary_table(issued.forecast)),
        render_product_summary(issued.view),
    )
    return finish(reports, "daily")


def one_line_reason(exc: BaseException) -> str:
    """`Type: first line of the message`: what an operator reads first, on one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def step_failed(step: str, exc: Exception) -> State:
    """How the daily run ends when its step `step` raised `exc`: Failed, its message naming the step
    and the one-line reason (`step 'forecast' failed: MissingData: …`, what the failure alert sends:
    flows/alerts.py), the exception its result (`state.result()` raises it, so `spotcast daily` exits
    as before). A bug (not a SpotcastError) keeps its traceback in the run's log."""
    if not isinstance(exc, SpotcastError):
        get_run_logger().error("step %r failed", step, exc_info=exc)
    return Failed(message=f"step {step!r} failed: {one_line_reason(exc)}", data=exc)
