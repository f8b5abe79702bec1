"""The desk's forward settlement files: one file (CSV or Excel .xlsx) read, validated row by row and
turned into the forwards frame, with product codes resolved to delivery periods and EPADs to area
forwards. Landing the frame in the lake is `forecasting.lake.forward_store`'s.

The forwards frame (one row per trade date × zone × load × delivery period):

    trade_date      object (datetime.date)   the trading day whose settlement price this is
    zone            object (str)             a configured bidding zone, or "SYS" (the system price)
    load            object (str)             "base" or "peak"
    delivery_start  object (datetime.date)   first local delivery day
    delivery_end    object (datetime.date)   last local delivery day (included)
    price           float64                  EUR/MWh, the zone's own price (an EPAD already added)
    quoted_as       object (str)             "forward", or "system+epad" (SYS forward + the EPAD)
    published_at    datetime64[ns, UTC]      trade_date at settings.forwards.settlement_time local
                                             time (schedule time zone): when the price became known
    source          object (str)             base name of the desk's file it came from

Dates are `datetime.date` objects (Parquet date32, DuckDB DATE), never timestamps: a delivery day is
a local calendar day, not an instant.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from forecasting.config import CustomPeriod, Settings
from forecasting.errors import DataError
from forecasting.schema import PUBLISHED_AT, ZONE

TRADE_DATE = "trade_date"
LOAD = "load"
DELIVERY_START = "delivery_start"
DELIVERY_END = "delivery_end"
PRICE = "price"
QUOTED_AS = "quoted_as"
SOURCE = "source"
FORWARD_COLUMNS = [
    TRADE_DATE,
    ZONE,
    LOAD,
    DELIVERY_START,
    DELIVERY_END,
    PRICE,
    QUOTED_AS,
    PUBLISHED_AT,
    SOURCE,
]
# One settlement price per key: a trade date settles each zone × load × period once.
FORWARD_KEY = [TRADE_DATE, ZONE, LOAD, DELIVERY_START, DELIVERY_END]

# The desk's own column names, where they differ from the frame's.
AREA = "area"
PRODUCT = "product"
TYPE = "type"
# Not a column name a header can give (names are stripped): marks a product cell holding a date.
_PRODUCT_DATE_CELL = " product is a date cell"
REQUIRED_COLUMNS = (TRADE_DATE, AREA, LOAD, PRICE)

SYSTEM = "SYS"
LOADS = ("base", "peak")
FORWARD = "forward"
EPAD = "epad"
SYSTEM_PLUS_EPAD = "system+epad"

SUFFIXES = (".csv", ".xlsx")
LISTED_PROBLEMS = 5  # problems a refusal lists in its one line; the rest are counted

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")
_DECIMAL = re.compile(r"^[+-]?\d+(\.\d+)?$")


class Problem(NamedTuple):
    """One reason a file is refused; `line` is the line a person counts (header = 1), None for the
    file as a whole."""

    line: int | None
    reason: str


class ForwardsFileError(DataError):
    """A forwards file refused as a whole: its first problems as `file:line: reason`, and a count of
    the rest."""

    def __init__(self, path: str | Path, problems: Sequence[Problem]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        listed = "; ".join(
            f"{self.path}:{p.line}: {p.reason}" if p.line else f"{self.path}: {p.reason}"
            for p in self.problems[:LISTED_PROBLEMS]
        )
        rest = len(self.problems) - LISTED_PROBLEMS
        more = f"; and {rest} more problem(s)" if rest > 0 else ""
        super().__init__(
            f"forwards file {self.path} refused ({len(self.problems)} problem(s)): {listed}{more}"
        )


# --- Products: a code ↔ its delivery period (local dates, both included) ------------------------


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def product_period(code: str, custom: Sequence[CustomPeriod] = ()) -> tuple[date, date]:
    """The delivery period of a product code: `2024-01-15` (day), `2024-W03` (ISO week, Monday to
    Sunday), `2024-03` (month), `2024-Q1`, `2024` (year), or a custom period's name (any case).
    ValueError says why a code is not one."""
    text = code.strip().upper()
    if _DAY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"product {code!r} is no calendar day") from None
        return day, day
    if match := _WEEK.match(text):
        try:
            monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
        except ValueError:
            raise ValueError(f"product {code!r}: {match[1]} has no ISO week {match[2]}") from None
        return monday, monday + timedelta(days=6)
    if match := _MONTH.match(text):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise ValueError(f"product {code!r}: no month {month}")
        return date(year, month, 1), _month_end(year, month)
    if match := _QUARTER.match(text):
        year, first = int(match[1]), 3 * int(match[2]) - 2
        return date(year, first, 1), _month_end(year, first + 2)
    if match := _YEAR.match(text):
        return date(int(match[1]), 1, 1), date(int(match[1]), 12, 31)
    for period in custom:
        if period.name.strip().upper() == text:
            return period.start, period.end
    names = ", ".join(p.name for p in custom) or "none configured"
    raise ValueError(
        f"unknown product code {code!r} (day 2024-01-15, week 2024-W03, month 2024-03, quarter "
        f"2024-Q1, year 2024, or a custom period: {names})"
    )


def product_of_period(start: date, end: date, custom: Sequence[CustomPeriod] = ()) -> str | None:
    """The code of the product delivering exactly `start`…`end` (both included); None when no
    product does. The calendar products come before custom periods of the same dates."""
    if start == end:
        return start.isoformat()
    year, week, weekday = start.isocalendar()
    if weekday == 1 and end == start + timedelta(days=6):
        return f"{year}-W{week:02d}"
    if start.day == 1 and end.year == start.year:
        if end == _month_end(start.year, start.month):
            return f"{start:%Y-%m}"
        if start.month % 3 == 1 and end == _month_end(start.year, start.month + 2):
            return f"{start.year}-Q{start.month // 3 + 1}"
        if start.month == 1 and end == date(start.year, 12, 31):
            return str(start.year)
    return next((p.name for p in custom if (p.start, p.end) == (start, end)), None)


def settlement_published_at(trade_date: date, settlement_time: clock_time, timezone: str) -> pd.Timestamp:
    """When a trade date's settlement prices became known: that day at `settlement_time` local time,
    in UTC. On a clock change the later instant: an as-of read never sees a price too early."""
    local = pd.Timestamp(datetime.combine(trade_date, settlement_time))
    return local.tz_localize(timezone, ambiguous=False, nonexistent="shift_forward").tz_convert("UTC")


# --- Reading the sheet -----------------------------------------------------------------------------


def _cell_text(value: object) -> str:
    """A cell as the text a CSV would hold: Excel date cells as ISO dates, numbers without exponent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == clock_time(0) else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return np.format_float_positional(float(value), trim="-")
    return str(value).strip()


def _read_sheet(path: Path) -> pd.DataFrame:
    """Every row of the file, the header too (row i is line i + 1): text cells from a CSV, the cells'
    values (text, numbers, dates) from a workbook's first sheet. ForwardsFileError when the file
    cannot be read."""
    if path.suffix.lower() not in SUFFIXES:
        raise ForwardsFileError(
            path, [Problem(None, f"not a .csv or .xlsx file ({path.suffix or 'no suffix'})")]
        )
    try:
        if path.suffix.lower() == ".xlsx":
            return pd.read_excel(path, sheet_name=0, header=None, dtype=object, engine="openpyxl")
        # header=None: a line with more fields than the header is an error, not an index column;
        # blank lines kept so that row numbers stay line numbers (a quoted field spanning lines,
        # which no desk file has, would shift the count after it).
        return pd.read_csv(
            path, dtype=str, header=None, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError:
        raise ForwardsFileError(path, [Problem(None, "empty file: no header row")]) from None
    except Exception as exc:  # pandas and openpyxl raise many types for a file that is no table
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ForwardsFileError(path, [Problem(None, f"unreadable file: {reason}")]) from exc


def _table(path: Path, cells: pd.DataFrame) -> pd.DataFrame:
    """The data rows as text under normalised column names (lower case, no surrounding spaces),
    indexed by their line in the file; blank rows dropped. ForwardsFileError for a missing header,
    missing columns or no rows."""
    text = cells.map(_cell_text)
    filled = text.ne("").any(axis=1).to_numpy()
    if not filled.any():
        raise ForwardsFileError(path, [Problem(None, "empty file: no header row")])
    header_at = int(np.argmax(filled))
    names = [name.lower() for name in text.iloc[header_at]]
    _check_header(path, names, header_at + 1)
    below = filled.copy()
    below[: header_at + 1] = False
    if not below.any():
        raise ForwardsFileError(path, [Problem(header_at + 1, "no rows below the header")])
    rows = text[below].set_axis(names, axis=1).set_axis(np.flatnonzero(below) + 1, axis=0)
    rows = rows.loc[:, [name for name in names if name]]
    if PRODUCT in names:  # the column's date cells, which Excel may have made of a month's code
        product_cells = cells[below].iloc[:, names.index(PRODUCT)]
        rows[_PRODUCT_DATE_CELL] = product_cells.map(lambda cell: isinstance(cell, date)).to_numpy()
    return rows


def _check_header(path: Path, names: list[str], line: int) -> None:
    problems = [Problem(line, f"column {name!r} appears twice") for name in _repeated(names) if name]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if PRODUCT not in names and not {DELIVERY_START, DELIVERY_END} <= set(names):
        missing.append(f"{PRODUCT} (or {DELIVERY_START} and {DELIVERY_END})")
    if missing:
        problems.append(Problem(line, f"missing column(s): {', '.join(missing)}"))
    if problems:
        raise ForwardsFileError(path, problems)


def _repeated(names: list[str]) -> list[str]:
    return sorted({name for name in names if names.count(name) > 1})


# --- One row --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    """What a row is checked against: the configured areas and custom periods."""

    areas: frozenset[str]
    custom: tuple[CustomPeriod, ...]

    @classmethod
    def of(cls, settings: Settings) -> _Rules:
        return cls(frozenset([*settings.zone_names, SYSTEM]), settings.products.custom)


class _Quote(NamedTuple):
    trade_date: date
    zone: str
    kind: str  # FORWARD or EPAD
    load: str
    delivery_start: date
    delivery_end: date
    price: float


def _day(value: str, column: str) -> date:
    if not _DAY.match(value):
        raise ValueError(f"bad {column} {value!r}: a date YYYY-MM-DD" if value else f"empty {column}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"bad {column} {value!r}: no such day") from None


def _price(value: str) -> float:
    if not value:
        raise ValueError("empty price")
    if not _DECIMAL.match(value):
        try:
            number = float(value)
        except ValueError:
            number = 0.0
        if not math.isfinite(number):
            raise ValueError(f"price {value!r} is not a finite number")
        raise ValueError(f"price {value!r} is not a decimal number with a point (e.g. -3.25 or 41.5)")
    return float(value)


def _period(row: pd.Series, rules: _Rules) -> tuple[date, date]:
    code = row.get(PRODUCT, "")
    start_text, end_text = row.get(DELIVERY_START, ""), row.get(DELIVERY_END, "")
    if not code and not (start_text or end_text):
        raise ValueError(f"no {PRODUCT} and no {DELIVERY_START}/{DELIVERY_END}")
    if code and row.get(_PRODUCT_DATE_CELL, False):
        raise ValueError(
            f"product {code} is an Excel date cell: Excel turns codes such as 2024-03 into dates; "
            "format the product column as text"
        )
    if code:
        start, end = product_period(code, rules.custom)
        if (start_text or end_text) and (start_text, end_text) != (start.isoformat(), end.isoformat()):
            raise ValueError(f"product {code!r} delivers {start}…{end}, not {start_text}…{end_text}")
        return start, end
    start, end = _day(start_text, DELIVERY_START), _day(end_text, DELIVERY_END)
    if end < start:
        raise ValueError(f"{DELIVERY_END} {end} is before {DELIVERY_START} {start}")
    if product_of_period(start, end, rules.custom) is None:
        raise ValueError(
            f"delivery {start}…{end} is no product: not one whole day, ISO week, calendar month, "
            "quarter, year or configured custom period"
        )
    return start, end


def _zone(value: str, rules: _Rules) -> str:
    zone = value.upper()
    if zone not in rules.areas:
        known = ", ".join(sorted(rules.areas - {SYSTEM}))
        raise ValueError(f"unknown area {value!r} (configured: {known}; or {SYSTEM})")
    return zone


def _choice(value: str, column: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise ValueError(f"{column} {value!r} is not one of {', '.join(choices)}")
    return value.lower()


def _quote(row: pd.Series, rules: _Rules) -> _Quote | list[str]:
    """The row's quote, or every reason it is refused."""
    reasons: list[str] = []

    def checked(parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except ValueError as exc:
            reasons.append(str(exc))
            return None

    trade_date = checked(lambda: _day(row[TRADE_DATE], TRADE_DATE))
    zone = checked(lambda: _zone(row[AREA], rules))
    kind = checked(lambda: _choice(row.get(TYPE, "") or FORWARD, TYPE, (FORWARD, EPAD)))
    load = checked(lambda: _choice(row[LOAD], LOAD, LOADS))
    period = checked(lambda: _period(row, rules))
    price = checked(lambda: _price(row[PRICE]))
    if kind == EPAD and zone == SYSTEM:
        reasons.append(f"an EPAD is the spread of an area over the system price: not for {SYSTEM}")
    if reasons:
        return reasons
    return _Quote(trade_date, zone, kind, load, *period, price)


def _quotes(path: Path, table: pd.DataFrame, rules: _Rules) -> dict[int, _Quote]:
    """Every row's quote by line; ForwardsFileError lists every bad row and repeated key."""
    quotes: dict[int, _Quote] = {}
    problems: list[Problem] = []
    first_line: dict[tuple, int] = {}
    for line, row in table.iterrows():
        quote = _quote(row, rules)
        if isinstance(quote, list):
            problems += [Problem(int(line), reason) for reason in quote]
            continue
        key = (quote.trade_date, quote.zone, quote.load, quote.delivery_start, quote.delivery_end)
        if key in first_line:
            problems.append(
                Problem(int(line), _repeat_reason(quote, quotes[first_line[key]], first_line[key]))
            )
            continue
        first_line[key] = int(line)
        quotes[int(line)] = quote
    if problems:
        raise ForwardsFileError(path, problems)
    return quotes


def _repeat_reason(quote: _Quote, first: _Quote, first_line: int) -> str:
    if quote.kind == first.kind:
        return f"duplicate of line {first_line} (same trade_date, area, type, load and delivery period)"
    return (
        f"the {quote.zone} {quote.load} forward of line {first_line} quoted again, as {quote.kind} here "
        f"and as {first.kind} there: give it once"
    )


# --- The file -------------------------------------------------------------------------------------


def empty_forwards_frame() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype="object") for column in FORWARD_COLUMNS})
    frame[PRICE] = frame[PRICE].astype("float64")
    frame[PUBLISHED_AT] = pd.to_datetime(frame[PUBLISHED_AT], utc=True).astype("datetime64[ns, UTC]")
    return frame


@dataclass(frozen=True)
class ForwardsFile:
    """One validated desk file before its EPADs are resolved. `quotes` holds every row as quoted:
    the forwards frame's columns with `quoted_as` "forward" or "epad" (the spread, not yet the
    area's price), indexed by the row's line in the file."""

    path: Path
    quotes: pd.DataFrame

    @property
    def trade_dates(self) -> list[date]:
        return sorted(set(self.quotes[TRADE_DATE]))

    def system_forwards(self) -> pd.DataFrame:
        """The file's own SYS forwards (a forwards frame, indexed by line)."""
        return self.quotes[self.quotes[ZONE] == SYSTEM]

    def forwards(self, system_forwards: pd.DataFrame | None = None) -> pd.DataFrame:
        """The forwards frame (indexed by line): each EPAD added to the SYS forward of its trade
        date, load and period, taken from this file or else from `system_forwards` (a forwards
        frame, e.g. what the lake holds). ForwardsFileError lists each EPAD without one."""
        frame = self.quotes.copy()
        epads = frame[QUOTED_AS] == EPAD
        if not epads.any():
            return frame
        period = [TRADE_DATE, LOAD, DELIVERY_START, DELIVERY_END]
        known = [self.system_forwards()]
        if system_forwards is not None:
            known.append(system_forwards[system_forwards[ZONE] == SYSTEM])
        system = pd.concat(known).drop_duplicates(period, keep="first").set_index(period)[PRICE]
        keys = pd.MultiIndex.from_frame(frame.loc[epads, period])
        system_price = system.reindex(keys).to_numpy()
        absent = np.isnan(system_price)
        if absent.any():
            lines = frame.index[epads][absent]
            raise ForwardsFileError(
                self.path, [Problem(int(line), _no_system_reason(frame.loc[line])) for line in lines]
            )
        frame.loc[epads, PRICE] = frame.loc[epads, PRICE].to_numpy() + system_price
        frame.loc[epads, QUOTED_AS] = SYSTEM_PLUS_EPAD
        return frame


def _no_system_reason(row: pd.Series) -> str:
    return (
        f"EPAD without a system forward: no {SYSTEM} {row[LOAD]} forward for delivery "
        f"{row[DELIVERY_START]}…{row[DELIVERY_END]} of trade date {row[TRADE_DATE]} in the file or the lake"
    )


def validate_forwards_file(path: str | Path, settings: Settings) -> ForwardsFile:
    """Read and check every row of a desk file (CSV or .xlsx, first sheet); ForwardsFileError
    refuses the whole file, listing its problems as `file:line: reason`."""
    path = Path(path)
    table = _table(path, _read_sheet(path))
    quotes = _quotes(path, table, _Rules.of(settings))
    published = {
        day: settlement_published_at(day, settings.forwards.settlement_time, settings.schedule.timezone)
        for day in {q.trade_date for q in quotes.values()}
    }
    frame = pd.DataFrame(
        {
            TRADE_DATE: [q.trade_date for q in quotes.values()],
            ZONE: [q.zone for q in quotes.values()],
            LOAD: [q.load for q in quotes.values()],
            DELIVERY_START: [q.delivery_start for q in quotes.values()],
            DELIVERY_END: [q.delivery_end for q in quotes.values()],
            PRICE: np.array([q.price for q in quotes.values()], dtype="float64"),
            QUOTED_AS: [q.kind for q in quotes.values()],
            PUBLISHED_AT: pd.DatetimeIndex([published[q.trade_date] for q in quotes.values()]).as_unit("ns"),
            SOURCE: path.name,
        },
        index=pd.Index(list(quotes), name="line"),
    )
    return ForwardsFile(path, frame[FORWARD_COLUMNS])


def read_forwards_file(
    path: str | Path, settings: Settings, system_forwards: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The forwards frame of one desk file (indexed by each row's line in the file), its EPADs
    resolved against the file's SYS rows or `system_forwards`; ForwardsFileError if any row is bad."""
    return validate_forwards_file(path, settings).forwards(system_forwards)
