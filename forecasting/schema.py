"""Names and shapes of the frames that cross stage boundaries (feeds → lake → features → model).

Every observation in Spotcast is one row of the *tidy series frame*:

    zone           str                bidding zone name, e.g. "NO1"
    series         str                one of SERIES, e.g. "price_da"
    delivery_hour  datetime64[ns, UTC] hour-beginning delivery interval
    value          float64            hourly mean (sub-hourly values are averaged)
    unit           str                "EUR/MWh", "MW" or "TWh"
    published_at   datetime64[ns, UTC] when the value became public (what was known when)
    retrieved_at   datetime64[ns, UTC] when this process fetched it
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.clock import WEEK_HOURS
from forecasting.errors import DataError

ZONE = "zone"
SERIES_COL = "series"
DELIVERY_HOUR = "delivery_hour"
VALUE = "value"
UNIT = "unit"
PUBLISHED_AT = "published_at"
RETRIEVED_AT = "retrieved_at"

SERIES_COLUMNS = [ZONE, SERIES_COL, DELIVERY_HOUR, VALUE, UNIT, PUBLISHED_AT, RETRIEVED_AT]
KEY_COLUMNS = [ZONE, SERIES_COL, DELIVERY_HOUR]

# The series Spotcast knows, with their unit. Names follow the trader's vocabulary.
PRICE = "price_da"  # day-ahead auction price (ENTSO-E A44)
SERIES_UNITS: dict[str, str] = {
    PRICE: "EUR/MWh",
    "load_da": "MW",  # day-ahead total load forecast (A65, A01)
    "load_actual": "MW",  # realised total load (A65, A16)
    "generation_da": "MW",  # day-ahead aggregated generation forecast (A71)
    "wind_onshore_da": "MW",  # day-ahead onshore wind forecast (A69, B19)
    "solar_da": "MW",  # day-ahead solar forecast (A69, B16)
    # The hydro balance (weekly; see WEEKLY_SERIES): stored energy in the zone's reservoirs at the
    # end of the ISO week (NVE Magasinstatistikk, ENTSO-E A72), and NVE's normal band for that ISO
    # week of the year (min / median / max of its reference years).
    "reservoir_filling": "TWh",
    "reservoir_normal_min": "TWh",
    "reservoir_normal_median": "TWh",
    "reservoir_normal_max": "TWh",
}
SERIES = tuple(SERIES_UNITS)
# A file's unit → the factor to the series' own unit (SERIES_UNITS).
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "MW": {"MW": 1.0, "GW": 1000.0, "kW": 0.001},
    "EUR/MWh": {"EUR/MWh": 1.0, "EUR/kWh": 1000.0, "ct/kWh": 10.0},
}


def unit_factors(series: str) -> dict[str, float]:
    """The units a file may give `series` in, each with its factor to the series' unit."""
    return UNIT_FACTORS[SERIES_UNITS[series]]


# Series with one value per ISO week, stored in the hourly lake at the week's start hour: Monday
# 00:00 on the zone's wall clock, in UTC (`forecasting.weekly`). Their rows are not hours of a
# continuous hourly series: gap counts and repairs expect one row per week.
RESERVOIR_FILLING = "reservoir_filling"
RESERVOIR_NORMAL = ("reservoir_normal_min", "reservoir_normal_median", "reservoir_normal_max")
WEEKLY_SERIES = frozenset({RESERVOIR_FILLING, *RESERVOIR_NORMAL})
# Model covariates computed from lake series, never stored (`forecasting.features.hydro`): each needs
# its sources supplied by an enabled feed.
RESERVOIR_DEVIATION = "reservoir_deviation"
DERIVED_COVARIATES: dict[str, tuple[str, ...]] = {RESERVOIR_DEVIATION: (RESERVOIR_FILLING, *RESERVOIR_NORMAL)}

_UTC_COLUMNS = (DELIVERY_HOUR, PUBLISHED_AT, RETRIEVED_AT)
NS_PER_HOUR = 3_600_000_000_000


class SchemaError(DataError):
    """A frame does not have the declared shape of the stage it enters."""


def empty_series_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in SERIES_COLUMNS})
    frame[VALUE] = frame[VALUE].astype("float64")
    for col in _UTC_COLUMNS:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def validate_series_frame(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check columns, dtypes, hour alignment and key uniqueness; return the frame in column order.

    `where` names the stage for the error message (e.g. "entsoe price_da NO1").
    """
    missing = [c for c in SERIES_COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(f"{where}: missing columns {missing}")
    if list(frame.columns) != SERIES_COLUMNS:  # selecting copies every column: only when needed
        frame = frame[SERIES_COLUMNS]
    for col in _UTC_COLUMNS:
        dtype = frame[col].dtype
        if not (isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"):
            raise SchemaError(f"{where}: column {col!r} must be UTC timestamps, got {dtype}")
    if not pd.api.types.is_float_dtype(frame[VALUE].dtype):
        raise SchemaError(f"{where}: column 'value' must be float, got {frame[VALUE].dtype}")
    not_finite = ~np.isfinite(frame[VALUE].to_numpy())
    if not_finite.any():
        row = frame.loc[not_finite].iloc[0]
        raise SchemaError(
            f"{where}: {int(not_finite.sum())} non-finite value(s) in column 'value', first "
            f"{row[VALUE]} at {row[ZONE]} {row[SERIES_COL]} {row[DELIVERY_HOUR]:%Y-%m-%d %H:%M} UTC"
        )
    hours = frame[DELIVERY_HOUR].array.as_unit("ns").asi8  # since the epoch; NaT is not a whole hour
    if (hours % NS_PER_HOUR).any():
        raise SchemaError(f"{where}: delivery_hour values must be whole UTC hours")
    unknown = set(frame[SERIES_COL].unique()) - set(SERIES)
    if unknown:
        raise SchemaError(f"{where}: unknown series {sorted(unknown)}")
    dupes = _repeated_keys(frame, hours // NS_PER_HOUR)
    if dupes.any():
        first = frame.loc[dupes, KEY_COLUMNS].iloc[0].to_dict()
        raise SchemaError(f"{where}: {int(dupes.sum())} duplicate zone/series/hour rows, e.g. {first}")
    return frame


def _repeated_keys(frame: pd.DataFrame, hours: np.ndarray) -> np.ndarray:
    """Rows whose zone/series/hour an earlier row has. Each key is one integer (zone × series code,
    hour): hashing a number per row, not three values (categories give their codes for free)."""
    if not len(frame):
        return np.zeros(0, dtype=bool)
    pair = np.zeros(len(frame), dtype="int64")
    for col in (ZONE, SERIES_COL):
        codes, names = pd.factorize(frame[col])
        pair = pair * len(names) + codes
    first = hours.min()
    return pd.Series(pair * (hours.max() - first + 1) + (hours - first)).duplicated().to_numpy()


# --- The forecast frame: one row per zone × delivery hour of one issue -------------------------
#   zone, issued_at (UTC), delivery_hour (UTC), local_time (zone wall clock, ISO with offset),
#   horizon_hour (1..672), mean, p10 … p90 (non-crossing deciles), model_id
ISSUED_AT = "issued_at"
LOCAL_TIME = "local_time"
HORIZON_HOUR = "horizon_hour"
MEAN = "mean"
MODEL_ID = "model_id"
QUANTILE_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
QUANTILE_COLUMNS: tuple[str, ...] = tuple(f"p{round(q * 100)}" for q in QUANTILE_LEVELS)
FORECAST_COLUMNS = [
    ZONE,
    ISSUED_AT,
    DELIVERY_HOUR,
    LOCAL_TIME,
    HORIZON_HOUR,
    MEAN,
    *QUANTILE_COLUMNS,
    MODEL_ID,
]
HORIZON_HOURS = 4 * WEEK_HOURS  # four weeks
