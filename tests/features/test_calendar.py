"""Norwegian public holidays and calendar features on the zone's local clock."""

from datetime import date

import pandas as pd
import pytest

from forecasting.features.calendar import (
    HOLIDAY,
    calendar_features,
    easter_sunday,
    hour_of_week,
    norwegian_holidays,
)


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2019, date(2019, 4, 21)),
        (2022, date(2022, 4, 17)),
        (2024, date(2024, 3, 31)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter_sunday_matches_known_dates(year, expected):
    assert easter_sunday(year) == expected


@pytest.mark.parametrize(
    "day",
    [
        date(2019, 5, 17),  # Grunnlovsdag
        date(2019, 4, 22),  # Andre påskedag (Easter Monday)
        date(2019, 4, 18),  # Skjærtorsdag
        date(2019, 4, 19),  # Langfredag
        date(2019, 5, 30),  # Kristi himmelfartsdag (Ascension)
        date(2019, 6, 10),  # Andre pinsedag (Whit Monday)
        date(2019, 5, 1),
        date(2019, 12, 26),
    ],
)
def test_norwegian_public_holidays_are_listed(day):
    assert day in norwegian_holidays(day.year)


def test_ordinary_working_day_is_not_a_holiday():
    assert date(2019, 5, 16) not in norwegian_holidays(2019)


def test_holiday_flag_follows_the_local_day_not_the_utc_day():
    # 17 May 2019 local runs 2019-05-16 22:00 .. 2019-05-17 21:00 UTC (CEST = UTC+2)
    hours = pd.date_range("2019-05-16 21:00", "2019-05-17 22:00", freq="h", tz="UTC")
    flags = calendar_features(hours, "Europe/Oslo")[HOLIDAY]
    assert flags.iloc[0] == 0 and flags.iloc[-1] == 0
    assert (flags.iloc[1:-1] == 1).all()


def test_hour_of_week_counts_from_local_monday_midnight():
    monday_local_midnight = pd.DatetimeIndex([pd.Timestamp("2019-01-06 23:00", tz="UTC")])  # CET
    assert hour_of_week(monday_local_midnight, "Europe/Oslo").tolist() == [0]
