"""NVE's reservoir statistics (Magasinstatistikk) as tables, and the weekly series made from them.

One piece serves both sources of the same records: the API's JSON answers (`forecasting.feeds.nve`)
and the bundled copy of NVE's history (`data/bundled/hydro/`, read by the replay). NVE's own field
names are kept:

* weekly records (`HentOffentligData`): `dato_Id` the Sunday that ends ISO week `iso_uke` of
  `iso_aar` (a date, or a date-time at midnight), `omrType` ("EL" bidding zone, "NO" Norway, others
  watercourse areas), `omrnr` (EL 1–5 = NO1–NO5), `fylling_TWh` the stored energy at the end of
  the week.
* the normal (`HentOffentligDataMinMaxMedian`): per `omrType`, `omrnr` and ISO week `iso_uke`
  (1–53), the min / median / max filling of NVE's reference years (`minFyllingTWH`,
  `medianFylling_TWH`, `maxFyllingTWH`).

Each week's value is stored at the week's start hour (`forecasting.weekly`); the normal of ISO week
w is placed on every week w of the filling's weeks. Records that break this shape raise
`TableError` with the first offending record, which the feed reports as a malformed answer and the
replay as a broken recording.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from forecasting.errors import DataError
from forecasting.schema import (
    DELIVERY_HOUR,
    RESERVOIR_FILLING,
    SERIES_COL,
    SERIES_UNITS,
    UNIT,
    VALUE,
    ZONE,
)
from forecasting.weekly import iso_week_starts

# NVE field names.
DATE_ID = "dato_Id"
AREA_TYPE = "omrType"
AREA_NUMBER = "omrnr"
ISO_YEAR = "iso_aar"
ISO_WEEK = "iso_uke"
FILLING_TWH = "fylling_TWh"
NORMAL_TWH: dict[str, str] = {  # series → field of the normal
    "reservoir_normal_min": "minFyllingTWH",
    "reservoir_normal_median": "medianFylling_TWH",
    "reservoir_normal_max": "maxFyllingTWH",
}
BIDDING_ZONE_AREA = "EL"
WEEKLY_FIELDS = (DATE_ID, AREA_TYPE, AREA_NUMBER, ISO_YEAR, ISO_WEEK, FILLING_TWH)
NORMAL_FIELDS = (AREA_TYPE, AREA_NUMBER, ISO_WEEK, *NORMAL_TWH.values())
# Far above any Norwegian zone's capacity (NO2: 34 TWh; Norway: 87 TWh): a larger "TWh" value is
# another unit or garbage.
MAX_TWH = 1000.0
ZONE_NAME = re.compile(r"^NO([1-5])$")

# The bundled copy (`data/bundled/hydro/`): NVE's two tables, only the columns used.
HYDRO_FOLDER = "hydro"
WEEKLY_FILE = "zones_weekly.csv"
NORMAL_FILE = "zones_week_of_year_min_median_max.csv"


class TableError(DataError):
    """NVE records that are not of the documented shape."""


def area_number(zone: str) -> int | None:
    """NVE's bidding-zone number of a zone (NO1 → 1 … NO5 → 5); None for a zone NVE does not cover."""
    match = ZONE_NAME.match(zone)
    return int(match[1]) if match else None


def _is_number(value: object) -> bool:
    # bool is an int subclass; JSON true/false is not a number here.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shown(record: object) -> str:
    text = repr(record)
    return text if len(text) <= 160 else text[:159] + "…"


def _bidding_zone_records(records: object, what: str) -> list[tuple[int, dict]]:
    """(position, record) of the bidding-zone records: the answer also holds Norway as a whole and
    the watercourse areas, which are not checked (nor used)."""
    if not isinstance(records, list):
        raise TableError(f"expected a list of {what} records, got {type(records).__name__}")
    found = []
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            raise TableError(f"record {number} is a {type(record).__name__}, not an object: {_shown(record)}")
        if not isinstance(record.get(AREA_TYPE), str):
            raise TableError(f"record {number}: no text {AREA_TYPE}: {_shown(record)}")
        if record[AREA_TYPE] == BIDDING_ZONE_AREA:
            found.append((number, record))
    return found


def _check_record(record: dict, fields: Sequence[str], number: int) -> dict:
    missing = [f for f in fields if f not in record]
    if missing:
        raise TableError(f"record {number} has no {missing}: {_shown(record)}")
    for name in fields:
        if name in (AREA_TYPE, DATE_ID):
            continue
        value = record[name]
        if not _is_number(value):
            raise TableError(f"record {number}: {name} = {value!r} is not a finite number: {_shown(record)}")
        if name in (AREA_NUMBER, ISO_YEAR, ISO_WEEK) and value != int(value):
            raise TableError(f"record {number}: {name} = {value!r} is not a whole number: {_shown(record)}")
    return record


def _checked_twh(values: pd.Series, field: str, frame: pd.DataFrame) -> None:
    bad = (values < 0) | (values > MAX_TWH)
    if bad.any():
        row = frame.loc[bad].iloc[0].to_dict()
        raise TableError(
            f"{field} = {row[field]!r} is not a stored energy in TWh (0 … {MAX_TWH:g}): {_shown(row)}"
        )


def weekly_table(records: object) -> pd.DataFrame:
    """NVE's weekly records (a list of objects) → one row per bidding zone × week, checked: the
    fields present and numeric, `dato_Id` the Sunday ending its ISO week, no week twice, TWh
    plausible."""
    found = _bidding_zone_records(records, "weekly")
    rows = [_check_record(r, WEEKLY_FIELDS, n) for n, r in found]
    frame = pd.DataFrame(rows, columns=list(WEEKLY_FIELDS))
    if frame.empty:
        return frame
    frame = frame.astype({AREA_NUMBER: "int64", ISO_YEAR: "int64", ISO_WEEK: "int64", FILLING_TWH: "float64"})
    frame[DATE_ID] = [_sunday(record, n) for n, record in found]
    _checked_twh(frame[FILLING_TWH], FILLING_TWH, frame)
    repeated = frame.duplicated([AREA_TYPE, AREA_NUMBER, ISO_YEAR, ISO_WEEK])
    if repeated.any():
        row = frame.loc[repeated].iloc[0].to_dict()
        raise TableError(f"week given twice: {_shown(row)}")
    return frame


def _sunday(record: dict, number: int) -> date:
    """The record's `dato_Id` as a date; it must be the Sunday that ends its ISO week."""
    text = record[DATE_ID]
    try:
        day = date.fromisoformat(str(text)[:10]) if isinstance(text, str) else None
        sunday = date.fromisocalendar(int(record[ISO_YEAR]), int(record[ISO_WEEK]), 7)
    except ValueError:
        day = sunday = None
    if day is None or sunday is None:
        raise TableError(f"record {number}: {DATE_ID} / ISO week is not a date: {_shown(record)}")
    if day != sunday:
        raise TableError(
            f"record {number}: {DATE_ID} {day} is not the Sunday ending ISO week "
            f"{record[ISO_YEAR]}-W{int(record[ISO_WEEK]):02d} ({sunday}): {_shown(record)}"
        )
    return day


def normal_table(records: object) -> pd.DataFrame:
    """NVE's min/median/max records → one row per bidding zone × ISO week (1–53), checked like the
    weekly records, with min ≤ median ≤ max."""
    rows = [_check_record(r, NORMAL_FIELDS, n) for n, r in _bidding_zone_records(records, "min/median/max")]
    frame = pd.DataFrame(rows, columns=list(NORMAL_FIELDS))
    if frame.empty:
        return frame
    frame = frame.astype({AREA_NUMBER: "int64", ISO_WEEK: "int64"})
    frame = frame.astype({field: "float64" for field in NORMAL_TWH.values()})
    outside = ~frame[ISO_WEEK].between(1, 53)
    if outside.any():
        raise TableError(f"ISO week outside 1…53: {_shown(frame.loc[outside].iloc[0].to_dict())}")
    for field in NORMAL_TWH.values():
        _checked_twh(frame[field], field, frame)
    low, mid, high = (frame[field] for field in NORMAL_TWH.values())
    unordered = (low > mid) | (mid > high)
    if unordered.any():
        raise TableError(f"min > median or median > max: {_shown(frame.loc[unordered].iloc[0].to_dict())}")
    repeated = frame.duplicated([AREA_TYPE, AREA_NUMBER, ISO_WEEK])
    if repeated.any():
        raise TableError(f"ISO week given twice: {_shown(frame.loc[repeated].iloc[0].to_dict())}")
    return frame


def _of_zone(table: pd.DataFrame, zone: str) -> pd.DataFrame:
    number = area_number(zone)
    if table.empty or number is None:
        return table.iloc[0:0]
    return table[table[AREA_NUMBER] == number]


def zone_filling(weekly: pd.DataFrame, zone: str, timezone: str) -> pd.Series:
    """The zone's stored energy (TWh) indexed by the start hour (UTC) of each week, sorted."""
    rows = _of_zone(weekly, zone)
    starts = iso_week_starts(rows[ISO_YEAR], rows[ISO_WEEK], timezone)
    return pd.Series(
        rows[FILLING_TWH].to_numpy(dtype="float64"), index=starts, name=RESERVOIR_FILLING
    ).sort_index()


def zone_normal(
    normal: pd.DataFrame, zone: str, series: str, week_starts: pd.DatetimeIndex, timezone: str
) -> pd.Series:
    """NVE's normal `series` (min, median or max) of the zone on each week start hour of
    `week_starts`, by the week's ISO week number; weeks the normal lacks are left out."""
    by_week = _of_zone(normal, zone).set_index(ISO_WEEK)[NORMAL_TWH[series]]
    weeks = pd.DatetimeIndex(week_starts).tz_convert(timezone).isocalendar().week.to_numpy()
    values = pd.Series(by_week.reindex(weeks).to_numpy(dtype="float64"), index=pd.DatetimeIndex(week_starts))
    return values.dropna().rename(series)


def zone_series(
    weekly: pd.DataFrame, normal: pd.DataFrame | None, zone: str, timezone: str
) -> dict[str, pd.Series]:
    """series → values by week start hour for one zone: the filling, and (with `normal`) the normal
    band on the filling's weeks. Empty when NVE has no rows of the zone."""
    filling = zone_filling(weekly, zone, timezone)
    if filling.empty:
        return {}
    found = {RESERVOIR_FILLING: filling}
    if normal is not None:
        found |= {series: zone_normal(normal, zone, series, filling.index, timezone) for series in NORMAL_TWH}
    return found


# --- the bundled copy ----------------------------------------------------------------------------


def has_bundled_hydro(source: Path) -> bool:
    """Whether a replay source folder holds the NVE copy (`hydro/zones_weekly.csv`)."""
    return (source / HYDRO_FOLDER / WEEKLY_FILE).is_file()


def _csv_records(path: Path) -> list[dict]:
    try:
        return pd.read_csv(path).to_dict("records")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({' '.join(str(exc).split())[:200]})") from None


def read_bundled_hydro(folder: Path, zone_timezones: dict[str, str]) -> pd.DataFrame:
    """The NVE copy in `folder` (`zones_weekly.csv`, optionally the normal
    `zones_week_of_year_min_median_max.csv`) as bundled rows (zone, series, delivery_hour, value,
    unit) of the configured zones NVE covers. DataError names the file of a broken record."""
    weekly_path, normal_path = folder / WEEKLY_FILE, folder / NORMAL_FILE
    records = _csv_records(weekly_path)
    for record in records:  # the copy keeps only bidding-zone rows: the area type is implied
        record.setdefault(AREA_TYPE, BIDDING_ZONE_AREA)
    try:
        weekly = weekly_table(records)
    except TableError as exc:
        raise DataError(f"{weekly_path}: {exc}") from None
    normal = None
    if normal_path.is_file():
        records = _csv_records(normal_path)
        for record in records:
            record.setdefault(AREA_TYPE, BIDDING_ZONE_AREA)
        try:
            normal = normal_table(records)
        except TableError as exc:
            raise DataError(f"{normal_path}: {exc}") from None
    frames = [
        pd.DataFrame(
            {
                ZONE: zone,
                SERIES_COL: series,
                DELIVERY_HOUR: values.index,
                VALUE: values.to_numpy(),
                UNIT: SERIES_UNITS[series],
            }
        )
        for zone, timezone in sorted(zone_timezones.items())
        for series, values in zone_series(weekly, normal, zone, timezone).items()
    ]
    columns = [ZONE, SERIES_COL, DELIVERY_HOUR, VALUE, UNIT]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
