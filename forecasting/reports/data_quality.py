"""The data-quality table of a run: per feed × zone × series, how fresh and complete the inputs were.

It joins five views of the same series, each optional except the lake's:

* the lake's newest hours as of the run's instant (`series_store.scan_lake(lake, as_of=…)`: zone, series, newest_hour),
* the hour each series is due by then under its publication rule (`due_hours`: zone, series, due_hour),
* the ingest status of this run (`IngestReport.table()`: feed, zone, series, status, attempts, …),
* recent curated rows (a tidy series frame) in which missing hours are counted,
* the forecast's covariate input status (zone, series — or `covariate` —, newest_published_hour,
  hours_extended, method), of which any column may be absent.

`data_quality` is the whole table (data_quality.csv: every column, for a program); `quality_view` the
same rows in few, short columns for a page (summary.md and the Prefect artifact), with
`QUALITY_LEGEND` under it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from forecasting.config import SeriesRule
from forecasting.features.covariates import COVARIATE
from forecasting.publication import newest_published_hour
from forecasting.schema import DELIVERY_HOUR, SERIES_COL, WEEKLY_SERIES, ZONE

FEED = "feed"
STATE = "state"
NEWEST_HOUR = "newest_hour"
DUE_HOUR = "due_hour"
HOURS_AHEAD = "hours_ahead"
GAP_HOURS = "gap_hours"
INGEST_STATUS = "ingest_status"
ATTEMPTS = "attempts"
NEW_ROWS = "new_rows"
ERROR = "error"
NEWEST_PUBLISHED_HOUR = "newest_published_hour"
HOURS_EXTENDED = "hours_extended"
EXTENSION_METHOD = "extension_method"
QUALITY_COLUMNS = [
    FEED,
    ZONE,
    SERIES_COL,
    STATE,
    NEWEST_HOUR,
    DUE_HOUR,
    HOURS_AHEAD,
    GAP_HOURS,
    INGEST_STATUS,
    ATTEMPTS,
    NEW_ROWS,
    ERROR,
    NEWEST_PUBLISHED_HOUR,
    HOURS_EXTENDED,
    EXTENSION_METHOD,
]
KEYS = [ZONE, SERIES_COL]
COUNTS = [GAP_HOURS, ATTEMPTS, NEW_ROWS, HOURS_EXTENDED]  # whole numbers, empty where a view is absent
GAP_DAYS = 7

# States, worst first.
MISSING = "missing"  # nothing in the lake
STALE = "stale"  # this run's pull did not land: the lake holds only older data
ABSENT = "absent"  # late by more than ABSENT_AFTER: the source no longer publishes it (NO5 wind since 2016)
LATE = "late"  # the newest hour is older than the publication rule allows (the feed stopped?)
OK = "ok"
ABSENT_AFTER = pd.Timedelta(days=30)
LANDED = ("ok", "empty")  # pull statuses that are not a problem (`forecasting.ingest.pull.PullStatus`)


def due_hours(
    rules: Mapping[str, SeriesRule], timezones: Mapping[str, str], as_of: pd.Timestamp
) -> pd.DataFrame:
    """Per zone × series with a rule: the oldest newest hour the lake may hold at `as_of` and still be
    on time, the newest hour the rule publishes by then less the series' staleness tolerance."""
    rows = [
        {
            ZONE: zone,
            SERIES_COL: series,
            DUE_HOUR: newest_published_hour(as_of, rule.publication, timezone)
            - pd.Timedelta(hours=rule.staleness_tolerance_hours),
        }
        for zone, timezone in timezones.items()
        for series, rule in rules.items()
    ]
    return pd.DataFrame(rows, columns=[*KEYS, DUE_HOUR])


def gap_hours(recent: pd.DataFrame, as_of: pd.Timestamp, days: int = GAP_DAYS) -> pd.DataFrame:
    """Per zone × hourly series of `recent`: hours without a row between `as_of − days` and the
    series' newest hour. Hours after the newest are not gaps: a late series is stale, which the
    ingest status reports. Weekly series (the hydro balance) are not gap-counted."""
    window_start = pd.Timestamp(as_of).floor("h") - pd.Timedelta(days=days)
    inside = ~recent[SERIES_COL].isin(WEEKLY_SERIES) & (recent[DELIVERY_HOUR] >= window_start)
    rows = recent.loc[inside, [*KEYS, DELIVERY_HOUR]].drop_duplicates()
    counts = rows.groupby(KEYS)[DELIVERY_HOUR].agg(["size", "max"])
    expected = (counts["max"] - window_start) // pd.Timedelta(hours=1) + 1
    return (expected - counts["size"]).rename(GAP_HOURS).reset_index()


def _ingest_view(ingest_table: pd.DataFrame) -> pd.DataFrame:
    """One row per feed × zone × series of the ingest table; of several pulls (backfill chunks) the
    first failed one gives status and error, attempts and new rows are summed."""
    keys = [FEED, *KEYS]
    landed = ingest_table["status"].isin(LANDED).to_numpy()
    failed_first = ingest_table.iloc[np.argsort(landed, kind="stable")]
    worst = failed_first.drop_duplicates(keys)[[*keys, "status", ERROR]]
    totals = ingest_table.groupby(keys, as_index=False)[[ATTEMPTS, NEW_ROWS]].sum()
    return worst.merge(totals, on=keys).rename(columns={"status": INGEST_STATUS})


def _input_view(input_status: pd.DataFrame) -> pd.DataFrame:
    """zone × series → newest published hour, hours extended, method; absent columns become NA."""
    frame = input_status.rename(columns={COVARIATE: SERIES_COL, "method": EXTENSION_METHOD})
    frame = frame.reindex(columns=[*KEYS, NEWEST_PUBLISHED_HOUR, HOURS_EXTENDED, EXTENSION_METHOD])
    # One forecast has one row per zone × covariate; keep the last should windows repeat it.
    return frame.dropna(subset=KEYS).drop_duplicates(KEYS, keep="last")


def data_quality(
    ingest_table: pd.DataFrame | None,
    lake_newest: pd.DataFrame,
    input_status: pd.DataFrame | None,
    as_of: pd.Timestamp,
    recent: pd.DataFrame | None = None,
    gap_days: int = GAP_DAYS,
    due: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per feed × zone × series (QUALITY_COLUMNS): state, the lake's newest hour (`lake_newest`
    should hold what was published by `as_of`), the hour it is `due` by then (`due_hours`), how many
    whole hours the newest lies ahead of `as_of` (UTC; negative: behind), missing hours of the last
    `gap_days` days in `recent`, this run's ingest status, and the covariate extension the forecast
    used. A series known to any input but `due` gets a row; a view not given leaves its columns empty.

    State, worst first: missing (nothing in the lake), stale (this run's pull did not land), absent
    (the newest hour is more than ABSENT_AFTER older than its due hour: the source stopped
    publishing it long ago; `quality_view` says since when), late (older than its due hour: the feed
    stopped publishing?), ok."""
    as_of = pd.Timestamp(as_of)
    table = lake_newest[[*KEYS, NEWEST_HOUR]]
    views = [
        _ingest_view(ingest_table) if ingest_table is not None else None,
        gap_hours(recent, as_of, gap_days) if recent is not None else None,
        _input_view(input_status) if input_status is not None else None,
    ]
    for view in views:
        if view is not None:
            table = table.merge(view, on=KEYS, how="outer")
    if due is not None:  # only annotates: a rule for a series no input knows adds no row
        table = table.merge(due, on=KEYS, how="left")
    table = table.reindex(columns=QUALITY_COLUMNS)
    table[COUNTS] = table[COUNTS].astype("Int64")
    for column in (NEWEST_HOUR, DUE_HOUR, NEWEST_PUBLISHED_HOUR):  # object dtype where a view held None
        table[column] = pd.to_datetime(table[column], utc=True)
    newest = table[NEWEST_HOUR]
    table[HOURS_AHEAD] = ((newest - as_of.floor("h")) // pd.Timedelta(hours=1)).astype("Int64")
    failed = table[INGEST_STATUS].notna() & ~table[INGEST_STATUS].isin(LANDED)
    late = (newest < table[DUE_HOUR]).fillna(False).astype(bool)
    absent = (newest < table[DUE_HOUR] - ABSENT_AFTER).fillna(False).astype(bool)
    table[STATE] = np.select([newest.isna(), failed, absent, late], [MISSING, STALE, ABSENT, LATE], OK)
    return table.sort_values([ZONE, SERIES_COL, FEED], na_position="last").reset_index(drop=True)


# The page view's columns (`quality_view`); those no row fills are left out.
VIEW_COLUMNS = [FEED, ZONE, SERIES_COL, STATE, "newest (UTC)", "ahead", "gaps", "pull", "extended", ERROR]
ERROR_WIDTH = 32  # the page cuts a longer error (…); data_quality.csv holds it whole
QUALITY_LEGEND = (
    "state: ok; late by N h (its newest hour is older than its publication rule allows); absent since "
    f"DATE (nothing for over {ABSENT_AFTER.days} days: the source no longer publishes it); stale (this "
    "run's pull did not land); missing (nothing in the lake). ahead: hours from the run's instant to "
    "the newest hour (negative: behind). gaps: missing hours in the last 7 days. pull: this run's ingest "
    "status (×N: attempts), +N new or revised rows. extended: hours the forecast filled in for the "
    "covariate, and how. Every column, errors whole: data_quality.csv."
)


def _count(value: object) -> str:
    return "" if pd.isna(value) else str(int(value))


def _state_text(row: pd.Series) -> str:
    if row[STATE] == ABSENT:
        return f"absent since {row[NEWEST_HOUR]:%Y-%m-%d}"
    if row[STATE] == LATE:
        return f"late by {(row[DUE_HOUR] - row[NEWEST_HOUR]) // pd.Timedelta(hours=1)} h"
    return str(row[STATE])


def _pull_text(row: pd.Series) -> str:
    if pd.isna(row[INGEST_STATUS]):
        return ""
    tries = f" ×{int(row[ATTEMPTS])}" if pd.notna(row[ATTEMPTS]) and row[ATTEMPTS] > 1 else ""
    rows = f", +{int(row[NEW_ROWS])}" if pd.notna(row[NEW_ROWS]) and row[NEW_ROWS] > 0 else ""
    return f"{row[INGEST_STATUS]}{tries}{rows}"


def _extended_text(row: pd.Series) -> str:
    hours, method = row[HOURS_EXTENDED], row[EXTENSION_METHOD]
    method = "" if pd.isna(method) else str(method)
    if pd.isna(hours) or hours == 0:
        return method if method == "missing" else ""
    return f"+{int(hours)} h {method}".rstrip()


def _cut(text: object, width: int) -> str:
    text = "" if pd.isna(text) else " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def quality_view(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of `data_quality` (or of data_quality.csv, `read_quality`) for a page: short text
    columns (VIEW_COLUMNS, legend QUALITY_LEGEND), each left out when no row fills it, the feed
    too when there is only one. A long-dead series says `absent since 2016-03-06`, not how many
    tens of thousands of hours it is behind; a late one how late it is."""
    absent = table[STATE].isin([ABSENT, MISSING])
    ahead = table[HOURS_AHEAD].where(~absent)
    newest = table[NEWEST_HOUR]
    view = pd.DataFrame(
        {
            FEED: table[FEED].fillna(""),
            ZONE: table[ZONE],
            SERIES_COL: table[SERIES_COL],
            STATE: table.apply(_state_text, axis=1) if len(table) else [],
            "newest (UTC)": [f"{t:%Y-%m-%d %H:%M}" if pd.notna(t) else "" for t in newest],
            "ahead": [f"{int(h):+d}" if pd.notna(h) else "" for h in ahead],
            "gaps": table[GAP_HOURS].map(_count),
            "pull": table.apply(_pull_text, axis=1) if len(table) else [],
            "extended": table.apply(_extended_text, axis=1) if len(table) else [],
            ERROR: table[ERROR].map(lambda e: _cut(e, ERROR_WIDTH)),
        },
        columns=VIEW_COLUMNS,
    )
    keep = [c for c in VIEW_COLUMNS if (view[c] != "").any()]
    if view[FEED].nunique() <= 1:
        keep = [c for c in keep if c != FEED]
    return view[keep].reset_index(drop=True)


def read_quality(path: object) -> pd.DataFrame:
    """data_quality.csv back as `data_quality` wrote it: hours as UTC timestamps, counts whole."""
    table = pd.read_csv(path, keep_default_na=True).reindex(columns=QUALITY_COLUMNS)
    for column in (NEWEST_HOUR, DUE_HOUR, NEWEST_PUBLISHED_HOUR):
        table[column] = pd.to_datetime(table[column], utc=True)
    for column in [*COUNTS, HOURS_AHEAD]:
        table[column] = table[column].astype("Int64")
    return table
