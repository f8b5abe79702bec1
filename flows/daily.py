"""The scheduled daily run: ingest the new delivery day(s) (backfilling first on an empty lake)."""

from __future__ import annotations

from datetime import datetime

from prefect import flow
from prefect.states import State

from flows.backfill import backfill_flow, settings_for, utc_or_none
from flows.ingest_tasks import finish, ingest
from forecasting.ingest.plan import plan_daily
from forecasting.ingest.runs import default_as_of
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import newest_hours


@flow(name="daily")
def daily_flow(
    config: str | None = None, as_of: datetime | None = None, zones: list[str] | None = None
) -> State:
    settings = settings_for(config, zones)
    as_of_utc = utc_or_none(as_of) or default_as_of(settings)
    lake = LakeFS.open(settings.lake_root)
    if newest_hours(lake).empty:  # no history yet: the reference design's full download first
        backfill_flow(config=config, as_of=as_of_utc, zones=zones)
    plans = plan_daily(settings, newest_hours(lake), as_of_utc)
    return finish(ingest(settings, lake, plans, as_of_utc, "daily"), "daily")
