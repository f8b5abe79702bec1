"""The bundled real history: reading deepforkit-format CSVs (local wall clock, 24 rows a day, 0 = missing)
into UTC tidy rows, and the compressed Parquet copy that ships in `data/bundled/`.

The CSVs have 24 rows for every local day: on the spring-forward day the non-existent 02:00 row is a
forward-filled copy (dropped here, giving a 23-hour day), on the autumn day the 02:00 row is the mean
of the two real 02:00 hours (kept for both of them, giving a 25-hour day).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.schema import DELIVERY_HOUR, SERIES_COL, SERIES_UNITS, UNIT, VALUE, ZONE

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


def read_deepforkit_csv(path: str | Path, zone: str, timezone: str = "Europe/Oslo") -> pd.DataFrame:
    """One zone's CSV → rows of (zone, series, delivery_hour UTC, value, unit); zeros are gaps."""
    raw = pd.read_csv(path)
    stamp_col = raw.columns[0]
    local = pd.to_datetime(raw[stamp_col], format="%m/%d/%Y %H:%M")
    if local.duplicated().any():
        raise ValueError(f"{path}: duplicate local timestamps, not a deepforkit-format file")
    utc, repeat = local_wall_clock_to_utc(local, timezone)
    known = [c for c in raw.columns if c in CSV_COLUMNS]
    if not known:
        raise ValueError(f"{path}: none of the expected columns {list(CSV_COLUMNS)} found")
    wide = raw[known].astype("float64").assign(**{DELIVERY_HOUR: utc})
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
