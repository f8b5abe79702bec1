"""The one clock: instants as a user or a file gives them, read in UTC; the wall clock in UTC."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from forecasting.clock import HOUR, WEEK, WEEK_HOURS, as_utc, utc_now


def test_a_naive_instant_or_a_date_is_read_as_utc() -> None:
    assert as_utc("2024-03-31 02:30") == pd.Timestamp("2024-03-31 02:30", tz="UTC")
    assert as_utc(date(2024, 3, 31)) == pd.Timestamp("2024-03-31 00:00", tz="UTC")
    assert str(as_utc(datetime(2024, 3, 31, 2, 30)).tz) == "UTC"


def test_an_instant_with_an_offset_is_the_same_instant_in_utc() -> None:
    stamp = as_utc("2024-03-31T04:30+02:00")
    assert stamp == pd.Timestamp("2024-03-31 02:30", tz="UTC") and str(stamp.tz) == "UTC"
    assert as_utc(pd.Timestamp("2024-03-31 04:30", tz="Europe/Oslo")) == stamp


def test_none_stays_none_and_text_that_is_no_instant_is_a_value_error() -> None:
    assert as_utc(None) is None
    with pytest.raises(ValueError):
        as_utc("yesterday-ish")


def test_now_is_in_utc_and_a_week_is_168_hours() -> None:
    assert str(utc_now().tz) == "UTC"
    assert WEEK == WEEK_HOURS * HOUR == pd.Timedelta(days=7)
