"""Calendar features on a zone's local wall clock, Norwegian public holidays included.

Holidays are computed in code (fixed dates plus the Easter-based movable feasts), so no holiday
package is needed and any year works. Features are plain floats, ready for scaling.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

HOUR_SIN = "hour_sin"
HOUR_COS = "hour_cos"
WEEKDAY_SIN = "weekday_sin"
WEEKDAY_COS = "weekday_cos"
YEAR_SIN = "year_sin"
YEAR_COS = "year_cos"
WEEKEND = "weekend"
HOLIDAY = "holiday"
CHRISTMAS_WEEK = "christmas_week"
CALENDAR_FEATURES: tuple[str, ...] = (
    HOUR_SIN, HOUR_COS, WEEKDAY_SIN, WEEKDAY_COS, YEAR_SIN, YEAR_COS, WEEKEND, HOLIDAY, CHRISTMAS_WEEK
)


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


# Days relative to Easter Sunday of the movable Norwegian public holidays.
_EASTER_OFFSETS: dict[str, int] = {
    "Skjærtorsdag": -3,
    "Langfredag": -2,
    "Første påskedag": 0,
    "Andre påskedag": 1,
    "Kristi himmelfartsdag": 39,
    "Første pinsedag": 49,
    "Andre pinsedag": 50,
}
_FIXED: dict[str, tuple[int, int]] = {
    "Første nyttårsdag": (1, 1),
    "Arbeidernes dag": (5, 1),
    "Grunnlovsdag": (5, 17),
    "Første juledag": (12, 25),
    "Andre juledag": (12, 26),
}


def norwegian_holidays(year: int) -> dict[date, str]:
    """The public holidays (offentlige høytidsdager) of Norway in `year`, date → name."""
    easter = easter_sunday(year)
    holidays = {easter + timedelta(days=offset): name for name, offset in _EASTER_OFFSETS.items()}
    holidays.update({date(year, month, day): name for name, (month, day) in _FIXED.items()})
    return holidays


def is_norwegian_holiday(days: pd.DatetimeIndex) -> np.ndarray:
    """True where the (local, any time of day) stamp falls on a Norwegian public holiday."""
    local_dates = pd.DatetimeIndex(days).date
    holidays: set[date] = set()
    for year in {d.year for d in local_dates}:
        holidays.update(norwegian_holidays(year))
    return np.fromiter((d in holidays for d in local_dates), dtype=bool, count=len(local_dates))


def calendar_features(hours: pd.DatetimeIndex, timezone: str) -> pd.DataFrame:
    """CALENDAR_FEATURES for UTC `hours`, read on the local clock of `timezone` (prices follow it)."""
    local = pd.DatetimeIndex(hours).tz_convert(timezone)
    hour = local.hour.to_numpy()
    weekday = local.weekday.to_numpy()
    day_of_year = local.dayofyear.to_numpy()
    two_pi = 2 * np.pi
    return pd.DataFrame(
        {
            HOUR_SIN: np.sin(two_pi * hour / 24),
            HOUR_COS: np.cos(two_pi * hour / 24),
            WEEKDAY_SIN: np.sin(two_pi * weekday / 7),
            WEEKDAY_COS: np.cos(two_pi * weekday / 7),
            YEAR_SIN: np.sin(two_pi * day_of_year / 365.25),
            YEAR_COS: np.cos(two_pi * day_of_year / 365.25),
            WEEKEND: (weekday >= 5).astype(float),
            HOLIDAY: is_norwegian_holiday(local).astype(float),
            # Demand (and prices) sag between Christmas and New Year beyond the two holidays.
            CHRISTMAS_WEEK: ((local.month == 12) & (local.day >= 24)).astype(float),
        },
        index=pd.DatetimeIndex(hours),
    )


def hour_of_week(hours: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    """Local hour of the week, 0 = Monday 00:00 … 167 = Sunday 23:00 (the key of weekly profiles)."""
    local = pd.DatetimeIndex(hours).tz_convert(timezone)
    return (local.weekday * 24 + local.hour).to_numpy()
