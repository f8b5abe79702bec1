"""The manual backfill: full history or a date range, resumable (it continues after what landed)."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
from prefect import flow
from prefect.states import State

from flows.ingest_tasks import finish, ingest
from forecasting.config import Settings, load_settings
from forecasting.ingest.plan import plan_backfill
from forecasting.ingest.runs import default_as_of
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import newest_hours


def settings_for(config: str | None, zones: list[str] | None) -> Settings:
    settings = load_settings(config)
    if not zones:
        return settings
    chosen = tuple(settings.zone(name) for name in zones)  # unknown names fail here, clearly
    return settings.model_copy(update={"zones": chosen})


def utc_or_none(stamp: datetime | str | None) -> pd.Timestamp | None:
    if stamp is None:
        return None
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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
    as_of_utc = utc_or_none(as_of) or default_as_of(settings)
    lake = LakeFS.open(settings.lake_root)
    plans = plan_backfill(settings, newest_hours(lake), utc_or_none(end), start, resume, as_of_utc)
    return finish(ingest(settings, lake, plans, as_of_utc, "backfill"), "backfill")
