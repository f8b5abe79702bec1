"""Calendar features on a zone's local wall clock, the public holidays of the zone's country included.

Holidays come from the maintained `holidays` library (national holidays only, no regional ones), so
any configured country and any year work. Features are plain floats, ready for scaling.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import holidays
import numpy as np
import pandas as pd

from forecasting.config import country_of_timezone

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


def holiday_dates(country: str, years: Iterable[int]) -> set[date]:
    """The national public holidays of `country` (ISO 3166 code) in `years`, from `holidays`."""
    return set(holidays.country_holidays(country, years=sorted(set(years))))


def is_holiday(days: pd.DatetimeIndex, country: str) -> np.ndarray:
    """True where the (local, any time of day) stamp falls on a public holiday of `country`."""
    local_dates = pd.DatetimeIndex(days).date
    dates = holiday_dates(country, (d.year for d in local_dates))
    return np.fromiter((d in dates for d in local_dates), dtype=bool, count=len(local_dates))


def calendar_features(hours: pd.DatetimeIndex, timezone: str, country: str | None = None) -> pd.DataFrame:
    """CALENDAR_FEATURES for UTC `hours`, read on the local clock of `timezone` (prices follow it),
    with the public holidays of `country` (default: the country of `timezone`, as the zone's config)."""
    country = country or country_of_timezone(timezone)
    if country is None:
        raise ValueError(f"no country for time zone {timezone!r}: pass the zone's country")
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
            HOLIDAY: is_holiday(local, country).astype(float),
            # Demand (and prices) sag between Christmas and New Year beyond the two holidays.
            CHRISTMAS_WEEK: ((local.month == 12) & (local.day >= 24)).astype(float),
        },
        index=pd.DatetimeIndex(hours),
    )


def hour_of_week(hours: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    """Local hour of the week, 0 = Monday 00:00 … 167 = Sunday 23:00 (the key of weekly profiles)."""
    local = pd.DatetimeIndex(hours).tz_convert(timezone)
    return (local.weekday * 24 + local.hour).to_numpy()
