"""Report job: the analyst bundle of one issue (fan charts, tables, data quality, calendar products
next to the forwards, the hydro balance) in the lake's reports area, handed to a publisher while its
files are at hand (the daily flow's: Prefect artifacts, flows/artifacts.py)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from forecasting.config import Settings
from forecasting.evaluation.record_scores import score_track_record
from forecasting.jobs.forecast import IssuedForecast
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import read_series, scan_lake
from forecasting.lake.track_record import LakeTrackRecord
from forecasting.reports.bundle import ReportBundle, write_report_bundle
from forecasting.reports.data_quality import due_hours
from forecasting.schema import ISSUED_AT, MODEL_ID, PRICE, WEEKLY_SERIES

RECENT_DAYS = 28  # history drawn and gap-checked beside the forecast
HYDRO_WEEKS = 53  # the hydro balance: the chart draws a year of weeks, the table the newest two


def reports_folder(lake: LakeFS, issued: IssuedForecast) -> str:
    return lake.path("reports", f"issue_date={issued.issue_date.isoformat()}")


def scored_track_record(
    lake: LakeFS, issued: IssuedForecast, timezones: dict[str, str]
) -> pd.DataFrame | None:
    """The forecasting model's stored past forecasts scored on what the lake knew at the issue."""
    model_id = str(issued.forecast[MODEL_ID].iloc[0])
    track = LakeTrackRecord(lake).read(model_id)
    if track.empty:
        return None
    issued_at = pd.Timestamp(issued.forecast[ISSUED_AT].iloc[0])
    start = pd.Timestamp(track[ISSUED_AT].min()) - pd.Timedelta(days=8)  # the naive's last week
    prices = read_series(lake, series=[PRICE], zones=list(timezones), start=start, as_of=issued_at)
    return score_track_record(track, prices, timezones)


def write_daily_report(
    settings: Settings,
    issued: IssuedForecast,
    ingest_table: pd.DataFrame | None,
    publish: Callable[[ReportBundle], object] | None = None,
) -> str:
    """The report bundle of `issued` in the lake's reports area; returns its folder there. `publish`,
    when given, is called with the bundle while its files exist locally (a remote lake's are staged
    in a temporary folder until they are uploaded)."""
    lake = LakeFS.of(settings)
    issued_at = pd.Timestamp(issued.forecast[ISSUED_AT].iloc[0])
    timezones = settings.zone_timezones
    recent = read_series(
        lake, zones=settings.zone_names, start=issued_at - pd.Timedelta(days=RECENT_DAYS), as_of=issued_at
    )
    hydro = read_series(
        lake,
        series=sorted(WEEKLY_SERIES),
        zones=settings.zone_names,
        start=issued_at - pd.Timedelta(weeks=HYDRO_WEEKS),
        as_of=issued_at,
    )
    folder = reports_folder(lake, issued)
    with lake.staged(folder) as local:
        bundle = write_report_bundle(
            local,
            issued.forecast,
            recent,
            ingest_table,
            issued.inputs,
            scan_lake(lake, as_of=issued_at).table,  # the lake as it stood then, not as it stands now
            timezones,
            as_of=issued_at,
            due=due_hours(settings.series, timezones, issued_at),
            track_record=scored_track_record(lake, issued, timezones),
            products=issued.view,
            hydro=hydro if not hydro.empty else None,
        )
        if publish is not None:
            publish(bundle)
    return folder
