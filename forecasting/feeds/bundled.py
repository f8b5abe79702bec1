"""The bundled real history: reading deepforkit-format CSVs (local wall clock, 24 rows a day, 0 = missing)
into UTC tidy rows, and the compressed Parquet copy that ships in `data/bundled/`.

The CSVs have 24 rows for every local day: on the spring-forward day the non-existent 02:00 row is a
forward-filled copy (dropped here, giving a 23-hour day), on the autumn day the 02:00 row is the mean
of the two real 02:00 hours (kept for both of them, giving a 25-hour day).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.errors import DataError
from forecasting.schema import DELIVERY_HOUR, SERIES_COL, SERIES_UNITS, UNIT, VALUE, ZONE

log = logging.getLogger("spotcast.feeds")

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


def _first_lines(path: str | Path, count: int = 2) -> list[str]:
    """The first `count` non-blank lines of the file (a byte-order mark dropped)."""
    with open(path, "rb") as file:
        text = file.read(64 * 1024).decode("utf-8", errors="replace").removeprefix("\ufeff")
    return [line for line in text.splitlines() if line.strip()][:count]


def _read_csv(path: str | Path) -> pd.DataFrame:
    """The CSV as read by pandas; DataError naming the file when it is empty, holds no rows, is not
    comma-separated (a semicolon-separated export of a comma-decimal locale) or is not text."""
    lines = _first_lines(path)
    if not lines:
        raise DataError(f"{path}: the file is empty; {EXPECTED_CSV}")
    header = lines[0]
    if header.count(";") > header.count(",") or header.count("\t") > header.count(","):
        separator = "semicolon" if header.count(";") >= header.count("\t") else "tab"
        cells = lines[1].split(";" if separator == "semicolon" else "\t") if len(lines) > 1 else []
        commas = " with decimal commas" if any(DECIMAL_COMMA.match(cell) for cell in cells) else ""
        raise DataError(f"{path}: the file looks {separator}-separated{commas}; {EXPECTED_CSV}")
    try:
        raw = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; {EXPECTED_CSV}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: not a readable CSV ({reason}); {EXPECTED_CSV}") from None
    if raw.empty:
        raise DataError(f"{path}: a header line and no rows; {EXPECTED_CSV}")
    return raw


def _local_stamps(stamps: pd.Series, path: str | Path) -> pd.Series:
    """The first column as naive local times; DataError names the line of a bad or repeated one."""
    local = pd.to_datetime(stamps, format="%m/%d/%Y %H:%M", errors="coerce")
    bad = local.isna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{path}: line {_line(row)}: {_shown(stamps.iloc[row])} is not a time like 3/26/2016 0:00"
        )
    repeated = local.duplicated()
    if repeated.any():
        row = int(np.argmax(repeated.to_numpy()))
        raise DataError(
            f"{path}: {int(repeated.sum())} repeated local time(s), first {stamps.iloc[row]} at line {_line(row)}"
        )
    days = local.dt.normalize().drop_duplicates()
    missing = pd.date_range(days.min(), days.max(), freq="D").difference(days)
    if len(missing):
        log.warning(
            "%s: no rows for %d local day(s), first %s: they stay gaps in the lake",
            path,
            len(missing),
            missing[0].date(),
        )
    return local


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
    raw = _read_csv(path)
    stamp_col = raw.columns[0]
    local = _local_stamps(raw[stamp_col], path)
    utc, repeat = local_wall_clock_to_utc(local, timezone)
    known = [c for c in raw.columns if c in CSV_COLUMNS]
    if not known:
        raise DataError(f"{path}: none of the expected columns {list(CSV_COLUMNS)} found")
    wide = _numbers(raw[known], path).assign(**{DELIVERY_HOUR: utc})
    second_hour = wide[repeat].assign(**{DELIVERY_HOUR: utc[repeat] + pd.Timedelta(hours=1)})
    wide = pd.concat([wide[utc.notna()], second_hour]).sort_values(DELIVERY_HOUR)
    tidy = wide.melt(id_vars=DELIVERY_HOUR, var_name="column", value_name=VALUE)
    tidy = tidy[tidy[VALUE].ne(0) & tidy[VALUE].notna()]
    tidy[SERIES_COL] = tidy.pop("column").map(CSV_COLUMNS)
    tidy[ZONE] = zone
    tidy[UNIT] = tidy[SERIES_COL].map(SERIES_UNITS)
    return tidy[BUNDLED_COLUMNS].sort_values([SERIES_COL, DELIVERY_HOUR]).reset_index(drop=True)


def zone_from_filename(path: Path) -> str:
    """`NO_1.csv` or `NO1.parquet` → `NO1`."""
    return path.stem.replace("_", "").upper()


def write_bundled(frame: pd.DataFrame, path: str | Path) -> None:
    frame = frame.astype({ZONE: "string", SERIES_COL: "string", UNIT: "string"})
    frame.to_parquet(path, index=False, compression="zstd", compression_level=19)


def read_history_source(source: str | Path, zone_timezones: dict[str, str]) -> pd.DataFrame:
    """Read a replay source: a bundled Parquet file/dir, or deepforkit-format CSV file/dir."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"replay source {source} does not exist")
    files = sorted(source.glob("*.parquet")) + sorted(source.glob("*.csv")) if source.is_dir() else [source]
    frames = []
    for path in files:
        zone = zone_from_filename(path)
        if zone not in zone_timezones:
            continue
        if path.suffix == ".csv":
            frames.append(read_deepforkit_csv(path, zone, zone_timezones[zone]))
        else:
            frames.append(pd.read_parquet(path, columns=BUNDLED_COLUMNS))
    if not frames:
        raise FileNotFoundError(
            f"replay source {source} holds no file for the configured zones {sorted(zone_timezones)}"
        )
    history = pd.concat(frames, ignore_index=True)
    history[DELIVERY_HOUR] = pd.to_datetime(history[DELIVERY_HOUR], utc=True)
    return history.astype({ZONE: str, SERIES_COL: str, UNIT: str})
