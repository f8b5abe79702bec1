"""Calendar features on the zone's local clock, with the public holidays of the zone's country."""

from datetime import date, timedelta

import pandas as pd
import pytest

from forecasting.config import ConfigError, Settings, load_settings
from forecasting.features.calendar import HOLIDAY, calendar_features, holiday_dates, hour_of_week

# The hand-written Norwegian list the calendar used before the `holidays` library: fixed days plus
# the Easter-based feasts, from the Easter Sundays of 2015–2024.
EASTER_SUNDAYS = {
    2015: date(2015, 4, 5),
    2016: date(2016, 3, 27),
    2017: date(2017, 4, 16),
    2018: date(2018, 4, 1),
    2019: date(2019, 4, 21),
    2020: date(2020, 4, 12),
    2021: date(2021, 4, 4),
    2022: date(2022, 4, 17),
    2023: date(2023, 4, 9),
    2024: date(2024, 3, 31),
}
EASTER_OFFSETS = (-3, -2, 0, 1, 39, 49, 50)  # Skjærtorsdag … Andre pinsedag
FIXED_DAYS = ((1, 1), (5, 1), (5, 17), (12, 25), (12, 26))  # nyttårsdag … andre juledag


def _old_norwegian_list(year: int) -> set[date]:
    easter = EASTER_SUNDAYS[year]
    return {easter + timedelta(days=d) for d in EASTER_OFFSETS} | {date(year, m, d) for m, d in FIXED_DAYS}


@pytest.mark.parametrize("year", sorted(EASTER_SUNDAYS))
def test_norwegian_holidays_are_the_days_of_the_old_hand_written_list(year):
    assert holiday_dates("NO", [year]) == _old_norwegian_list(year)


def test_norwegian_holiday_feature_is_unchanged_hour_by_hour_2015_to_2024():
    hours = pd.date_range("2014-12-31 23:00", "2024-12-31 22:00", freq="h", tz="UTC")
    local_days = hours.tz_convert("Europe/Oslo").date
    old = {day for year in EASTER_SUNDAYS for day in _old_norwegian_list(year)}
    expected = [float(day in old) for day in local_days]
    assert calendar_features(hours, "Europe/Oslo", "NO")[HOLIDAY].tolist() == expected


def test_ordinary_working_day_is_not_a_holiday():
    assert date(2019, 5, 16) not in holiday_dates("NO", [2019])


def test_holiday_flag_follows_the_local_day_not_the_utc_day():
    # 17 May 2019 local runs 2019-05-16 22:00 .. 2019-05-17 21:00 UTC (CEST = UTC+2)
    hours = pd.date_range("2019-05-16 21:00", "2019-05-17 22:00", freq="h", tz="UTC")
    flags = calendar_features(hours, "Europe/Oslo", "NO")[HOLIDAY]
    assert flags.iloc[0] == 0 and flags.iloc[-1] == 0
    assert (flags.iloc[1:-1] == 1).all()


def _holiday_days(timezone: str, country: str | None, start: str, end: str) -> list[date]:
    hours = pd.date_range(start, end, freq="h", tz="UTC", inclusive="left")
    flags = calendar_features(hours, timezone, country)[HOLIDAY]
    return sorted({h.date() for h in hours.tz_convert(timezone)[flags.to_numpy() == 1]})


def test_german_zone_gets_german_holidays_not_norwegian_ones():
    days = _holiday_days("Europe/Berlin", "DE", "2024-04-30 22:00", "2024-10-31 23:00")
    # Labour Day, Ascension, Whit Monday, German Unity Day; no 17 May (Norway's Constitution Day)
    assert days == [date(2024, 5, 1), date(2024, 5, 9), date(2024, 5, 20), date(2024, 10, 3)]


def test_danish_zone_follows_the_abolition_of_great_prayer_day_in_2024():
    may_2023 = _holiday_days("Europe/Copenhagen", "DK", "2023-04-30 22:00", "2023-05-31 22:00")
    may_2024 = _holiday_days("Europe/Copenhagen", "DK", "2024-04-30 22:00", "2024-05-31 22:00")
    assert date(2023, 5, 5) in may_2023  # Store bededag, a holiday until 2023
    assert may_2024 == [date(2024, 5, 9), date(2024, 5, 19), date(2024, 5, 20)]  # Ascension, Whitsun


def test_without_a_country_the_time_zone_s_country_is_used():
    assert _holiday_days("Europe/Berlin", None, "2024-10-02 22:00", "2024-10-03 22:00") == [date(2024, 10, 3)]


def _zone(**fields: str) -> dict[str, str]:
    return {"name": "DE-LU", "eic": "10Y1001A1001A82H", "timezone": "Europe/Berlin", **fields}


# The live feed: the bundled replay recording holds no German zone, which the configuration refuses.
LIVE_FEED = {"entsoe": {"kind": "entsoe", "base_url": "https://web-api.tp.entsoe.eu/api", "series": ["price_da"]}}


def settings_with(zone: dict[str, str]) -> Settings:
    return load_settings(zones=[zone], feeds=LIVE_FEED)


def test_zone_country_defaults_to_its_time_zone_s_country():
    assert settings_with(_zone()).zones[0].country == "DE"
    assert settings_with(_zone(name="DK1", timezone="Europe/Copenhagen")).zones[0].country == "DK"


def test_zone_in_a_time_zone_of_no_one_country_must_name_its_country():
    with pytest.raises(ConfigError, match=r"zones\.0\.country.*'UTC' is no one country's: set country"):
        settings_with(_zone(timezone="UTC"))
    assert settings_with(_zone(timezone="UTC", country="DE")).zones[0].country == "DE"


def test_zone_country_without_a_holiday_calendar_is_refused():
    with pytest.raises(ConfigError, match=r"zones\.0\.country = 'XX'.*no public holiday calendar"):
        settings_with(_zone(country="XX"))


def test_hour_of_week_counts_from_local_monday_midnight():
    monday_local_midnight = pd.DatetimeIndex([pd.Timestamp("2019-01-06 23:00", tz="UTC")])  # CET
    assert hour_of_week(monday_local_midnight, "Europe/Oslo").tolist() == [0]
