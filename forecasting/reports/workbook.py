"""The forecast as a workbook a trader opens (`spotcast forecast --out x.xlsx`, `spotcast products
--out x.xlsx`), written with openpyxl:

    <zone> …   one sheet per zone: each delivery hour on the zone's wall clock, its UTC offset (which
               tells the two 02:00 hours of the October change apart), the UTC hour, the horizon hour,
               the mean and the deciles p10 … p90
    Weekly     per zone × horizon week (week k = forecast hours 168(k−1)+1 … 168k): its first and last
               local hour, hours, and the means of the hourly mean and deciles
    Products   the calendar products with the forward view (and P(settle > X) when asked for)
    About      the issue, the model, the units, and how to read the sheets

Units are in the headers ("p10 (EUR/MWh)"). Times are real Excel date-times, timezone-naive since
Excel has no time zones: local times are the zone's wall clock (its time zone named in the header),
UTC times are UTC. Each sheet's header row is frozen, columns are sized to their contents and numbers
formatted (prices to the cent, shares as percentages). Missing values (no forward) are empty cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forecasting.clock import WEEK_HOURS
from forecasting.forwards import TRADE_DATE
from forecasting.products import (
    DELIVERY_END,
    DELIVERY_START,
    FORWARD,
    FORWARD_PERCENTILE,
    HOURS,
    KIND,
    LOAD,
    P_SETTLE_ABOVE_FORWARD,
    PREMIUM,
    PREMIUM_EUR_PER_MW,
    PRODUCT,
    SETTLED_SHARE,
)
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOUR,
    ISSUED_AT,
    LOCAL_TIME,
    MEAN,
    MODEL_ID,
    PRICE,
    QUANTILE_COLUMNS,
    SERIES_UNITS,
    ZONE,
)

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

UNIT = SERIES_UNITS[PRICE]  # EUR/MWh
WEEKLY_SHEET, PRODUCTS_SHEET, ABOUT_SHEET = "Weekly", "Products", "About"
STATS = (MEAN, *QUANTILE_COLUMNS)

DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
PRICE_FORMAT = "0.00"
SHARE_FORMAT = "0%"
COUNT_FORMAT = "0"


def priced(name: str) -> str:
    """The header of a price column: "p10 (EUR/MWh)"."""
    return f"{name} ({UNIT})"


def local_header(timezone: str | None) -> str:
    return f"local time ({timezone})" if timezone else "local time (the zone's wall clock)"


UTC_OFFSET = "UTC offset"
UTC_HOUR = "delivery hour (UTC)"
HORIZON = "horizon hour"
HORIZON_WEEK = "horizon week"
FIRST_HOUR, LAST_HOUR = "first hour (local)", "last hour (local)"
# Products sheet: view column → (header, number format). issued_at is on the About sheet.
PRODUCT_HEADERS: dict[str, tuple[str, str | None]] = {
    ZONE: ("zone", None),
    PRODUCT: ("product", None),
    KIND: ("kind", None),
    LOAD: ("load", None),
    DELIVERY_START: ("first delivery day", DATE_FORMAT),
    DELIVERY_END: ("last delivery day", DATE_FORMAT),
    HOURS: ("delivery hours", COUNT_FORMAT),
    SETTLED_SHARE: ("settled share", SHARE_FORMAT),
    MEAN: (priced(MEAN), PRICE_FORMAT),
    "p10": (priced("p10"), PRICE_FORMAT),
    "p50": (priced("p50"), PRICE_FORMAT),
    "p90": (priced("p90"), PRICE_FORMAT),
    FORWARD: (priced(FORWARD), PRICE_FORMAT),
    TRADE_DATE: ("forward trade date", DATE_FORMAT),
    FORWARD_PERCENTILE: ("forward percentile (0-100)", "0.0"),
    P_SETTLE_ABOVE_FORWARD: ("P(settle > forward)", SHARE_FORMAT),
    PREMIUM: (priced("premium: forward - mean"), PRICE_FORMAT),
    PREMIUM_EUR_PER_MW: ("premium × hours (EUR/MW)", "#,##0"),
}


def above_header(level: float) -> str:
    """The Products column of P(settle > level)."""
    return f"P(settle > {level:g} {UNIT})"


@dataclass(frozen=True)
class Sheet:
    """One sheet: its table (headers as written) and each column's number format."""

    name: str
    table: pd.DataFrame
    formats: Mapping[str, str | None]


def _wall_clock(forecast: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Naive local date-times and "+01:00" offsets, read off the frame's own local_time
    ("2019-03-31T03:00+0200"): the zone's wall clock as the forecast was issued."""
    text = forecast[LOCAL_TIME].astype(str)
    local = pd.to_datetime(text.str.slice(0, 16), format="%Y-%m-%dT%H:%M")
    offset = text.str.slice(16)
    return local, offset.str.slice(0, 3) + ":" + offset.str.slice(3, 5)


def _utc_naive(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.tz_localize(None)


def zone_sheet(forecast: pd.DataFrame, zone: str, timezone: str | None) -> Sheet:
    """The hourly forecast of `zone` in delivery order."""
    rows = forecast[forecast[ZONE] == zone].sort_values(DELIVERY_HOUR)
    local, offset = _wall_clock(rows)
    table = pd.DataFrame(
        {
            local_header(timezone): local.to_numpy(),
            UTC_OFFSET: offset.to_numpy(),
            UTC_HOUR: _utc_naive(rows[DELIVERY_HOUR]).to_numpy(),
            HORIZON: rows[HORIZON_HOUR].to_numpy(),
            **{priced(stat): rows[stat].to_numpy(dtype="float64") for stat in STATS},
        }
    )
    formats = {
        local_header(timezone): DATETIME_FORMAT,
        UTC_OFFSET: None,
        UTC_HOUR: DATETIME_FORMAT,
        HORIZON: COUNT_FORMAT,
        **{priced(stat): PRICE_FORMAT for stat in STATS},
    }
    return Sheet(_sheet_name(zone), table, formats)


def weekly_sheet(forecast: pd.DataFrame) -> Sheet:
    """Per zone × horizon week: first and last local hour, hours, and the means of the hourly mean
    and deciles (the mean of hourly p10s, not the p10 of the week's average: see Products)."""
    local, _ = _wall_clock(forecast)
    rows = forecast.assign(
        _week=(forecast[HORIZON_HOUR] - 1) // WEEK_HOURS + 1, _local=local.to_numpy()
    ).sort_values([ZONE, DELIVERY_HOUR])
    grouped = rows.groupby([ZONE, "_week"], sort=False)
    means = grouped[list(STATS)].mean()
    table = pd.DataFrame(
        {
            "zone": means.index.get_level_values(0),
            HORIZON_WEEK: means.index.get_level_values(1).astype("int64"),
            FIRST_HOUR: grouped["_local"].min().to_numpy(),
            LAST_HOUR: grouped["_local"].max().to_numpy(),
            "hours": grouped.size().to_numpy(),
            **{f"mean of hourly {priced(stat)}": means[stat].to_numpy() for stat in STATS},
        }
    )
    formats = {
        "zone": None,
        HORIZON_WEEK: COUNT_FORMAT,
        FIRST_HOUR: DATETIME_FORMAT,
        LAST_HOUR: DATETIME_FORMAT,
        "hours": COUNT_FORMAT,
        **{f"mean of hourly {priced(stat)}": PRICE_FORMAT for stat in STATS},
    }
    return Sheet(WEEKLY_SHEET, table, formats)


def products_sheet(view: pd.DataFrame, above: tuple[float, np.ndarray] | None = None) -> Sheet:
    """The product table with its forward view (`forecasting.products.VIEW_COLUMNS`), and
    P(settle > X) per product when `above` = (X, the probabilities in the view's row order)."""
    columns = [c for c in PRODUCT_HEADERS if c in view.columns]
    table = pd.DataFrame({PRODUCT_HEADERS[c][0]: view[c].to_numpy() for c in columns})
    for column in (DELIVERY_START, DELIVERY_END, TRADE_DATE):
        if column in columns:
            header = PRODUCT_HEADERS[column][0]
            table[header] = [_as_date(v) for v in table[header]]
    formats = {PRODUCT_HEADERS[c][0]: PRODUCT_HEADERS[c][1] for c in columns}
    if above is not None:
        level, probabilities = above
        table[above_header(level)] = np.asarray(probabilities, dtype="float64")
        formats[above_header(level)] = SHARE_FORMAT
    return Sheet(PRODUCTS_SHEET, table, formats)


def _as_date(value: object) -> date | None:
    if value is None or (not isinstance(value, date) and pd.isna(value)):
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return value.date()
    return value if isinstance(value, date) else pd.Timestamp(value).date()


def about_sheet(
    forecast: pd.DataFrame | None,
    view: pd.DataFrame | None,
    timezones: Mapping[str, str],
    issue_date: date | None,
) -> Sheet:
    """What the workbook holds and how to read it, one line per item."""
    frame = forecast if forecast is not None and not forecast.empty else view
    lines: list[tuple[str, object]] = []
    if issue_date is not None:
        lines.append(("issue date", issue_date))
    if frame is not None and ISSUED_AT in frame.columns and len(frame):
        lines.append(("issued at (UTC)", _utc_naive(frame[ISSUED_AT]).iloc[0].to_pydatetime()))
    if forecast is not None and MODEL_ID in forecast.columns and len(forecast):
        lines.append(("model", str(forecast[MODEL_ID].iloc[0])))
    zones = list(dict.fromkeys(frame[ZONE])) if frame is not None else []
    for zone in zones:
        lines.append((f"zone {zone}", f"local times on {timezones.get(zone, 'its wall clock')}"))
    lines += [
        ("prices", f"{UNIT}, day-ahead auction"),
        (
            "zone sheets",
            "each delivery hour (hour beginning) on the zone's wall clock, as an Excel date-time without "
            "a time zone; the UTC offset tells the two 02:00 hours of the October change apart, and the "
            "UTC hour is given beside it. mean and p10 … p90: the hourly mean and deciles of the forecast.",
        ),
        (
            WEEKLY_SHEET,
            "per zone and horizon week (week k = forecast hours 168(k-1)+1 … 168k): the means of the "
            "hourly values over the week. The mean of hourly p10s is not the p10 of the week's average "
            "price, which is narrower: see the week products.",
        ),
        (
            PRODUCTS_SHEET,
            "calendar products (base: every hour; peak: the configured peak hours): mean and p10/p50/p90 "
            "of the settlement, the average price over the delivery hours, across the sample paths; "
            "settled share: hours already published. Where the desk's forward was given: its trade "
            "date, its percentile in our distribution, P(settle > forward), and the premium (forward "
            "minus mean) per MWh and times the delivery hours per MW.",
        ),
    ]
    table = pd.DataFrame({"item": [k for k, _ in lines], "value": [v for _, v in lines]})
    formats = {"item": None, "value": None}
    return Sheet(ABOUT_SHEET, table, formats)


def workbook_sheets(
    forecast: pd.DataFrame | None,
    view: pd.DataFrame | None,
    timezones: Mapping[str, str],
    above: tuple[float, np.ndarray] | None = None,
    issue_date: date | None = None,
) -> list[Sheet]:
    """The sheets in their order: one per zone (in the forecast's zone order), Weekly, Products, About."""
    sheets: list[Sheet] = []
    if forecast is not None and not forecast.empty:
        for zone in dict.fromkeys(forecast[ZONE]):
            sheets.append(zone_sheet(forecast, zone, timezones.get(zone)))
        sheets.append(weekly_sheet(forecast))
    if view is not None:
        sheets.append(products_sheet(view, above))
    sheets.append(about_sheet(forecast, view, timezones, issue_date))
    return sheets


def write_workbook(
    out: Path,
    forecast: pd.DataFrame | None,
    view: pd.DataFrame | None,
    timezones: Mapping[str, str],
    above: tuple[float, np.ndarray] | None = None,
    issue_date: date | None = None,
) -> Path:
    """Write the workbook (see the module's docstring) to `out`, replacing it in one step: a reader
    never opens a half-written file."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for sheet in workbook_sheets(forecast, view, timezones, above, issue_date):
        _write_sheet(book.create_sheet(sheet.name), sheet)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.partial")
    try:
        book.save(staged)
        staged.replace(out)
    finally:
        staged.unlink(missing_ok=True)
    return out


def _sheet_name(name: str) -> str:
    """A valid sheet name (≤ 31 characters, none of []:*?/\\) that is none of the fixed sheets'."""
    cleaned = "".join("_" if c in "[]:*?/\\" else c for c in name)[:31] or "zone"
    return f"zone {cleaned}"[:31] if cleaned in (WEEKLY_SHEET, PRODUCTS_SHEET, ABOUT_SHEET) else cleaned


def _cell(value: object) -> object:
    """A value openpyxl writes as Excel reads it: numpy scalars as Python ones, NaN/NaT/None empty,
    timestamps as naive date-times."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _width(values: Sequence[object], header: str, number_format: str | None) -> float:
    """A column wide enough for its header and its widest value as shown."""
    if number_format in (DATETIME_FORMAT,):
        shown = len("2019-03-31 02:00")
    elif number_format == DATE_FORMAT:
        shown = len("2019-03-31")
    elif number_format in (PRICE_FORMAT, "0.0", "#,##0", SHARE_FORMAT, COUNT_FORMAT):
        finite = [abs(v) for v in values if isinstance(v, int | float) and np.isfinite(v)]
        shown = len(f"-{max(finite, default=0):,.2f}")
    else:
        shown = max((len(str(v)) for v in values if v is not None), default=0)
    return float(min(max(len(header), shown) + 2, 100))


def _write_sheet(ws: Worksheet, sheet: Sheet) -> None:
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    headers = list(sheet.table.columns)
    ws.append(headers)
    columns = [[_cell(v) for v in sheet.table[header].tolist()] for header in headers]
    for row in zip(*columns, strict=True) if columns else ():
        ws.append(list(row))
    bold = Font(bold=True)
    for index, header in enumerate(headers, start=1):
        head = ws.cell(row=1, column=index)
        head.font = bold
        head.alignment = Alignment(wrap_text=False)
        number_format = sheet.formats.get(header)
        if number_format:
            for (cell,) in ws.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = number_format
        letter = get_column_letter(index)
        ws.column_dimensions[letter].width = _width(columns[index - 1], header, number_format)
    if sheet.name == ABOUT_SHEET:
        ws.column_dimensions["B"].width = 100
        for (cell,) in ws.iter_rows(min_row=2, min_col=2, max_col=2):
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            if isinstance(cell.value, datetime):
                cell.number_format = DATETIME_FORMAT
            elif isinstance(cell.value, date):
                cell.number_format = DATE_FORMAT
    # The header row, and the columns that name a row (local time; zone and week or product).
    ws.freeze_panes = {ABOUT_SHEET: "A2", WEEKLY_SHEET: "C2", PRODUCTS_SHEET: "C2"}.get(sheet.name, "B2")
    ws.auto_filter.ref = ws.dimensions if sheet.name in (WEEKLY_SHEET, PRODUCTS_SHEET) else None
