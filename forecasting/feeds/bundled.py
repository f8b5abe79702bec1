"""The bundled real history: reading deepforkit-format CSVs (local wall clock, 24 rows a day, 0 = missing)
into UTC tidy rows, and the compressed Parquet copy that ships in `data/bundled/`; and a user's own
CSV or Excel file as it is, described by the replay feed's `format` (config.SourceFormat: a column
map, the time stamps' format and clock, what marks a missing value; docs/own_zone.md). A source
folder's `hydro/` subfolder (the bundled one has it) adds NVE's weekly reservoir statistics.

The CSVs have 24 rows for every local day: on the spring-forward day the non-existent 02:00 row is a
forward-filled copy (dropped here, giving a 23-hour day), on the autumn day the 02:00 row is the mean
of the two real 02:00 hours (kept for both of them, giving a 25-hour day). A file with true 23- and
25-hour local days (the autumn 02:00 twice: summer time first) is read as well, and so are stamps
with a UTC offset or in UTC.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import HISTORY_SUFFIXES, SourceFormat, zone_from_filename
from forecasting.errors import DataError
from forecasting.feeds.nve_tables import HYDRO_FOLDER, has_bundled_hydro, read_bundled_hydro
from forecasting.schema import DELIVERY_HOUR, SERIES_COL, SERIES_UNITS, UNIT, VALUE, ZONE, unit_factors

log = logging.getLogger("spotcast.feeds")

DEEPFORKIT_TIME = "%m/%d/%Y %H:%M"
# deepforkit column → Spotcast series
CSV_COLUMNS: dict[str, str] = {
    "Price_DA": "price_da",
    "Load_DA": "load_da",
    "Load_AC": "load_actual",
    "Gen_SC": "generation_da",
    "Won_DA": "wind_onshore_da",
    "Sol_DA": "solar_da",
}
BUNDLED_COLUMNS = [ZONE, SERIES_COL, DELIVERY_HOUR, VALUE, UNIT]


def local_wall_clock_to_utc(local: pd.Series, timezone: str) -> tuple[pd.Series, pd.Series]:
    """Map naive local hour-beginning stamps to UTC.

    Returns (utc, repeat): `utc` is NaT for non-existent spring hours; `repeat` is True for the
    ambiguous autumn hour, whose value stands for two UTC hours (the second is `utc + 1h`).
    """
    first = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    as_dst = local.dt.tz_localize(timezone, ambiguous=np.ones(len(local), bool), nonexistent="NaT")
    repeat = first.isna() & as_dst.notna()
    return as_dst.dt.tz_convert("UTC"), repeat


def _line(row: int) -> int:
    return row + 2  # the header is line 1


# What a bring-your-own CSV must look like, said when one does not (see docs/own_zone.md).
EXPECTED_CSV = (
    "expected comma-separated values with a decimal point, a header like ',Price_DA,Load_AC' "
    "and 24 rows a day like '3/26/2016 0:00,23.5,4032'"
)
DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
# Said where a file is not in the bundled format and no `format` describes it.
OWN_FORMAT_HINT = "a file of another layout is described under the replay feed's `format` (docs/own_zone.md)"


def _first_lines(path: str | Path, count: int = 2) -> list[str]:
    """The first `count` non-blank lines of the file (a byte-order mark dropped)."""
    with open(path, "rb") as file:
        text = file.read(64 * 1024).decode("utf-8", errors="replace").removeprefix("\ufeff")
    return [line for line in text.splitlines() if line.strip()][:count]


def _expected(file_format: SourceFormat) -> str:
    """What the file should look like, said when it does not."""
    if not file_format.mapped:
        return EXPECTED_CSV
    return (
        f"expected values separated by {file_format.separator!r} with the decimal mark "
        f"{file_format.decimal!r} and the columns {list(file_format.columns)} (the feed's format)"
    )


def _read_table(path: str | Path, file_format: SourceFormat) -> pd.DataFrame:
    """The CSV or Excel file as read by pandas; DataError naming the file when it is empty, holds no
    rows, is not separated as configured (a semicolon-separated export of a comma-decimal locale) or
    is not text (or not a workbook)."""
    expected = _expected(file_format)
    missing = list(file_format.missing) or None
    if Path(path).suffix == ".xlsx":
        try:
            raw = pd.read_excel(path, sheet_name=file_format.sheet, na_values=missing)
        except (ValueError, KeyError, zipfile.BadZipFile, OSError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise DataError(f"{path}: not a readable Excel workbook ({reason})") from None
        if raw.empty:
            raise DataError(f"{path}: sheet {file_format.sheet!r} holds a header and no rows; {expected}")
        return raw
    lines = _first_lines(path)
    if not lines:
        raise DataError(f"{path}: the file is empty; {expected}")
    header, separator = lines[0], file_format.separator
    if separator == "," and (header.count(";") > header.count(",") or header.count("\t") > header.count(",")):
        found = "semicolon" if header.count(";") >= header.count("\t") else "tab"
        cells = lines[1].split(";" if found == "semicolon" else "\t") if len(lines) > 1 else []
        commas = " with decimal commas" if any(DECIMAL_COMMA.match(cell) for cell in cells) else ""
        raise DataError(f"{path}: the file looks {found}-separated{commas}; {expected}")
    try:
        raw = pd.read_csv(path, sep=separator, decimal=file_format.decimal, na_values=missing)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; {expected}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: not a readable CSV ({reason}); {expected}") from None
    if raw.empty:
        raise DataError(f"{path}: a header line and no rows; {expected}")
    return raw


def _parse_stamps(stamps: pd.Series, time_format: str) -> pd.Series:
    """Time stamps as datetimes (NaT where a cell is not one): naive, or UTC when they carry an
    offset (`2016-10-30T02:00+01:00`); Excel date cells as they are."""
    if pd.api.types.is_datetime64_any_dtype(stamps):
        return stamps
    text = stamps.where(stamps.isna(), stamps.astype(str).str.strip())
    given = text.dropna()
    first = pd.to_datetime(given.iloc[:1], format=time_format, errors="coerce")
    with_offset = first.dt.tz is not None
    return pd.to_datetime(text, format=time_format, errors="coerce", utc=with_offset)


def _utc_stamps(
    stamps: pd.Series, path: str | Path, file_format: SourceFormat, timezone: str
) -> tuple[pd.Series, pd.Series]:
    """The time column in UTC, and which rows stand for two hours (see `local_wall_clock_to_utc`);
    DataError names the line of a bad or repeated time."""
    time_format = file_format.time_format or ("ISO8601" if file_format.mapped else DEEPFORKIT_TIME)
    parsed = _parse_stamps(stamps, time_format)
    bad = parsed.isna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        like = (
            f"a time like 3/26/2016 0:00; {OWN_FORMAT_HINT}"
            if time_format == DEEPFORKIT_TIME and not file_format.time_format
            else f"a time of the format {time_format!r} (format.time_format)"
        )
        raise DataError(f"{path}: line {_line(row)}: {_shown(stamps.iloc[row])} is not {like}")
    clock = file_format.timezone or timezone
    if parsed.dt.tz is not None or clock == "UTC":
        utc = parsed.dt.tz_convert("UTC") if parsed.dt.tz is not None else parsed.dt.tz_localize("UTC")
        _refuse_repeats(utc.duplicated(), stamps, path, "time")
        _warn_missing_days(utc.dt.tz_convert(timezone).dt.tz_localize(None), path)
        return utc, pd.Series(False, index=stamps.index)
    utc, repeat = local_wall_clock_to_utc(parsed, clock)
    # the autumn hour twice (a true 25-hour day): summer time first, then winter time
    both = repeat & parsed.map(parsed.value_counts()).eq(2)
    _refuse_repeats(parsed.duplicated() & ~both, stamps, path, "local time")
    second = both & parsed.duplicated()
    utc = utc.where(~second, utc + pd.Timedelta(hours=1))
    _warn_missing_days(parsed, path)
    return utc, repeat & ~both


def _refuse_repeats(repeated: pd.Series, stamps: pd.Series, path: str | Path, what: str) -> None:
    if repeated.any():
        row = int(np.argmax(repeated.to_numpy()))
        raise DataError(
            f"{path}: {int(repeated.sum())} repeated {what}(s), first {stamps.iloc[row]} at line {_line(row)}"
        )


def _warn_missing_days(local: pd.Series, path: str | Path) -> None:
    days = local.dt.normalize().drop_duplicates()
    missing = pd.date_range(days.min(), days.max(), freq="D").difference(days)
    if len(missing):
        log.warning(
            "%s: no rows for %d local day(s), first %s: they stay gaps in the lake",
            path,
            len(missing),
            missing[0].date(),
        )


def _time_column(raw: pd.DataFrame, file_format: SourceFormat, path: str | Path) -> str:
    if file_format.time_column is None:
        return raw.columns[0]
    for column in raw.columns:
        if str(column).strip() == file_format.time_column.strip():
            return column
    raise DataError(
        f"{path}: no time column {file_format.time_column!r} (format.time_column); the file's columns "
        f"are {[str(c).strip() for c in raw.columns]}"
    )


def _value_columns(raw: pd.DataFrame, file_format: SourceFormat, path: str | Path) -> dict[str, tuple[str, float]]:
    """File column → (series, factor to the series' unit) of the columns the file has."""
    if not file_format.mapped:
        known = {c: (CSV_COLUMNS[c], 1.0) for c in raw.columns if c in CSV_COLUMNS}
        if not known:
            raise DataError(f"{path}: none of the expected columns {list(CSV_COLUMNS)} found; {OWN_FORMAT_HINT}")
        return known
    headers = {str(c).strip(): c for c in raw.columns}
    found, absent = {}, []
    for name, column in file_format.columns.items():
        if name.strip() not in headers:
            absent.append(name)
            continue
        factor = unit_factors(column.series)[column.unit] if column.unit else 1.0
        found[headers[name.strip()]] = (column.series, factor)
    if not found:
        raise DataError(
            f"{path}: none of the columns {list(file_format.columns)} of format.columns found; beside "
            f"its time column the file has {list(headers)}"
        )
    if absent:
        log.warning("%s: no column %s (format.columns): those series stay empty for this zone", path, absent)
    return found


def _numbers(columns: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The value columns as floats (empty cells are gaps); DataError names the column and line of
    text in a number or of a non-finite value."""
    numbers = columns.apply(pd.to_numeric, errors="coerce").astype("float64")
    for column in columns:
        bad = (numbers[column].isna() & columns[column].notna()) | np.isinf(numbers[column])
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            cell = columns[column].iloc[row]
            hint = " (a decimal comma? use a decimal point)" if DECIMAL_COMMA.match(str(cell)) else ""
            raise DataError(
                f"{path}: column {column}, line {_line(row)}: {_shown(cell)} is not a finite number{hint}"
            )
    return numbers


def _shown(cell: object) -> str:
    """A cell as the message shows it: text quoted, a number as it is ('twelve', inf, 0)."""
    return repr(cell) if isinstance(cell, str) else str(cell)


def read_deepforkit_csv(path: str | Path, zone: str, timezone: str = "Europe/Oslo") -> pd.DataFrame:
    """One zone's CSV → rows of (zone, series, delivery_hour UTC, value, unit); zeros are gaps."""
    return read_history_file(path, zone, timezone)


def read_history_file(
    path: str | Path, zone: str, timezone: str, file_format: SourceFormat | None = None
) -> pd.DataFrame:
    """One zone's CSV or Excel file → rows of (zone, series, delivery_hour UTC, value, unit), read as
    `file_format` says (default: the deepforkit format, where zeros are gaps); `timezone` is the
    zone's, the clock of stamps without an offset unless the format names another."""
    file_format = file_format or SourceFormat()
    raw = _read_table(path, file_format)
    stamp_col = _time_column(raw, file_format, path)
    utc, repeat = _utc_stamps(raw[stamp_col], path, file_format, timezone)
    columns = _value_columns(raw.drop(columns=stamp_col), file_format, path)
    wide = _numbers(raw[list(columns)], path)
    for column, (_, factor) in columns.items():
        if factor != 1.0:
            wide[column] = wide[column] * factor
    wide = wide.assign(**{DELIVERY_HOUR: utc})
    second_hour = wide[repeat].assign(**{DELIVERY_HOUR: utc[repeat] + pd.Timedelta(hours=1)})
    wide = pd.concat([wide[utc.notna()], second_hour]).sort_values(DELIVERY_HOUR)
    tidy = wide.melt(id_vars=DELIVERY_HOUR, var_name="column", value_name=VALUE)
    tidy = tidy[tidy[VALUE].notna()]
    if file_format.zeros_missing:
        tidy = tidy[tidy[VALUE].ne(0)]
    tidy[SERIES_COL] = tidy.pop("column").map({column: series for column, (series, _) in columns.items()})
    tidy[ZONE] = zone
    tidy[UNIT] = tidy[SERIES_COL].map(SERIES_UNITS)
    return tidy[BUNDLED_COLUMNS].sort_values([SERIES_COL, DELIVERY_HOUR]).reset_index(drop=True)


def read_history_source(
    source: str | Path, zone_timezones: dict[str, str], file_format: SourceFormat | None = None
) -> pd.DataFrame:
    """Read a replay source: a bundled Parquet file/dir, or CSV/Excel files (a file or a dir) read
    as `file_format` says (default: the deepforkit format); a folder's `hydro/` subfolder holds
    NVE's weekly reservoir statistics (`forecasting.feeds.nve_tables`)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"replay source {source} does not exist")
    if source.is_dir():
        files = [path for suffix in HISTORY_SUFFIXES for path in sorted(source.glob(f"*{suffix}"))]
        files = sorted(files, key=lambda path: path.suffix != ".parquet")  # Parquet first, as before
    else:
        files = [source]
    frames = []
    for path in files:
        zone = zone_from_filename(path)
        if zone not in zone_timezones:
            continue
        if path.suffix in (".csv", ".xlsx"):
            frames.append(read_history_file(path, zone, zone_timezones[zone], file_format))
        else:
            frames.append(pd.read_parquet(path, columns=BUNDLED_COLUMNS))
    if not frames:
        raise FileNotFoundError(
            f"replay source {source} holds no file for the configured zones {sorted(zone_timezones)}"
        )
    if source.is_dir() and has_bundled_hydro(source):  # NVE's weekly hydro balance beside the prices
        frames.append(read_bundled_hydro(source / HYDRO_FOLDER, zone_timezones))
    history = pd.concat(frames, ignore_index=True)
    history[DELIVERY_HOUR] = pd.to_datetime(history[DELIVERY_HOUR], utc=True)
    return history.astype({ZONE: str, SERIES_COL: str, UNIT: str})
