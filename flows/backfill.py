"""The manual backfill: full history or a date range, resumable (it continues after what landed)."""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow
from prefect.states import State

from flows.ingest_tasks import finish, ingest
from forecasting.config import Settings, load_settings
from forecasting.ingest.plan import plan_backfill
from forecasting.ingest.runs import as_utc, resolve_as_of
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import newest_hours


def settings_for(config: str | None, zones: list[str] | None) -> Settings:
    settings = load_settings(config)
    if not zones:
        return settings
    chosen = tuple(settings.zone(name) for name in zones)  # unknown names fail here, clearly
    return settings.model_copy(update={"zones": chosen})


@flow(name="backfill")
def backfill_flow(
    config: str | None = None,
    start: date | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    resume: bool = True,
    zones: list[str] | None = None,
) -> State:
    """Pull history from `start` (default: the configured history start) up to `end` (default: all
    published by now, or by the end of the recording for replay) in chunks of at most a year."""
    settings = settings_for(config, zones)
    as_of_utc = resolve_as_of(settings, as_of)
    lake = LakeFS.open(settings.lake_root)
    plans = plan_backfill(settings, newest_hours(lake), as_utc(end), start, resume, as_of_utc)
    return finish(ingest(settings, lake, plans, as_of_utc, "backfill"), "backfill")
