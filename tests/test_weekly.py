"""Weekly series in the hourly lake: week start hours on the zone's clock, the weekly publication
rule (NVE: the Wednesday after the week, 13:00 Europe/Oslo), and the configuration that enforces it."""

from __future__ import annotations

from datetime import time

import pandas as pd
import pytest

from forecasting.config import ConfigError, Publication, load_settings
from forecasting.publication import newest_published_hour, published_at
from forecasting.weekly import expected_stamps, iso_week_starts, week_starts_between, week_starts_of

OSLO = "Europe/Oslo"
WEEKLY = Publication(kind="weekly", weekday=2, local_time=time(13, 0))


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_a_week_starts_at_local_monday_midnight_in_utc_on_both_sides_of_a_clock_change():
    starts = iso_week_starts([2023, 2023, 2023, 1998], [12, 13, 44, 53], OSLO)
    assert list(starts) == [
        utc("2023-03-19 23:00"),  # Monday 2023-03-20 00:00 CET
        utc("2023-03-26 22:00"),  # Monday 2023-03-27 00:00 CEST (the clocks changed on Sunday)
        utc("2023-10-29 23:00"),  # Monday 2023-10-30 00:00 CET again
        utc("1998-12-27 23:00"),  # 1998-W53: Monday 1998-12-28
    ]
    with pytest.raises(ValueError):
        iso_week_starts([2023], [53], OSLO)  # 2023 has 52 ISO weeks


def test_every_instant_belongs_to_the_week_of_its_local_day():
    stamps = pd.DatetimeIndex([utc("2023-03-26 21:59"), utc("2023-03-26 22:00"), utc("2023-03-19 23:00")])
    assert list(week_starts_of(stamps, OSLO)) == [
        utc("2023-03-19 23:00"),  # Sunday 23:59 CEST: still week 12
        utc("2023-03-26 22:00"),
        utc("2023-03-19 23:00"),
    ]


def test_a_weekly_series_expects_one_stamp_a_week_an_hourly_one_every_hour():
    first, stop = utc("2023-03-01"), utc("2023-04-05")
    weeks = expected_stamps("reservoir_filling", first, stop, OSLO)
    assert list(weeks) == list(week_starts_between(first, stop, OSLO))
    assert list(weeks) == [
        utc(t)
        for t in (
            "2023-03-05 23:00",
            "2023-03-12 23:00",
            "2023-03-19 23:00",
            "2023-03-26 22:00",
            "2023-04-02 22:00",
        )
    ]
    assert len(expected_stamps("price_da", first, stop, OSLO)) == 35 * 24


def test_a_week_is_published_on_the_wednesday_after_it_at_13_local():
    weeks = pd.DatetimeIndex([utc("2023-03-19 23:00"), utc("2023-10-23 22:00"), utc("2023-12-24 23:00")])
    assert list(published_at(weeks, WEEKLY, OSLO)) == [
        utc("2023-03-29 11:00"),  # week 12 → Wednesday 29 March, 13:00 CEST
        utc("2023-11-01 12:00"),  # week 43 (the clocks go back on its Sunday) → 13:00 CET
        utc("2024-01-03 12:00"),  # week 52 → the Wednesday of 2024-W01 (a holiday week in reality)
    ]


@pytest.mark.parametrize(
    ("as_of", "newest"),
    [
        ("2023-03-29 10:59", "2023-03-12 23:00"),  # Wednesday 12:59: week 11 is the newest
        ("2023-03-29 11:00", "2023-03-19 23:00"),  # 13:00: week 12 is out
        ("2023-04-03 08:00", "2023-03-19 23:00"),  # Monday: still week 12
        ("2023-04-05 11:00", "2023-03-26 22:00"),  # next Wednesday 13:00 CEST: week 13
    ],
)
def test_the_newest_published_week_follows_the_wednesday_release(as_of, newest):
    assert newest_published_hour(utc(as_of), WEEKLY, OSLO) == utc(newest)


def test_a_weekly_series_needs_a_weekly_rule_and_only_it_has_one():
    daily = {"publication": {"kind": "day_ahead", "local_time": "13:00"}}
    with pytest.raises(
        ConfigError, match="reservoir_filling: publication kind 'day_ahead'; it must be 'weekly'"
    ):
        load_settings(series={**load_settings().model_dump()["series"], "reservoir_filling": daily})
    weekly = {"publication": {"kind": "weekly"}}
    with pytest.raises(ConfigError, match="price_da: publication kind 'weekly'"):
        load_settings(series={"price_da": weekly})
