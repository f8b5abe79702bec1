"""The manual backfill: full history or a date range, resumable (it continues after what landed), or
a repair (corrupt series files set aside, every hole in the range pulled again)."""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow
from prefect.states import State

from flows.defaults import apply_prefect_defaults
from flows.ingest_tasks import finish, log_progress, pull_task_for, pulls_stop_with_the_run
from forecasting.config import settings_for
from forecasting.jobs import ingest

# A deployment's entrypoint (prefect.yaml, `serve`): the module a worker's flow-run process imports
# of Spotcast, so Prefect's defaults are applied here for that process (flows/defaults.py).
apply_prefect_defaults()


@flow(name="backfill")
def backfill_flow(
    config: str | None = None,
    start: date | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    resume: bool = True,
    zones: list[str] | None = None,
    repair: bool = False,
) -> State:
    """Pull history from `start` (default: the configured history start) up to `end` (default: all
    published by now, or by the end of the recording for replay) in chunks of at most a year; with
    `repair`, set corrupt series files aside and pull every hole in that range."""
    settings = settings_for(config, zones)
    pulls = pull_task_for(settings)  # its Prefect retries are the settings' retry policies
    with pulls_stop_with_the_run():
        report = ingest.backfill(
            settings, as_of, start, end, resume, repair, submit=pulls.submit, progress=log_progress
        )
    return finish([report], "repair" if repair else "backfill")
