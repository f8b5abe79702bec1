"""Publication rules: what is public when (replay clock, staleness, honest cuts)."""

import pandas as pd

from forecasting.config import load_settings
from forecasting.publication import newest_published_hour, published_at

RULES = {name: rule.publication for name, rule in load_settings().series.items()}
OSLO = "Europe/Oslo"


def test_day_ahead_price_for_tomorrow_is_out_only_after_13_local():
    before = newest_published_hour(pd.Timestamp("2019-06-10 10:59", tz="UTC"), RULES["price_da"], OSLO)
    after = newest_published_hour(pd.Timestamp("2019-06-10 11:00", tz="UTC"), RULES["price_da"], OSLO)
    assert before == pd.Timestamp("2019-06-10 21:00", tz="UTC")  # end of today (CEST)
    assert after == pd.Timestamp("2019-06-11 21:00", tz="UTC")  # end of tomorrow


def test_newest_hour_before_a_spring_forward_day_ends_at_its_23rd_hour():
    newest = newest_published_hour(pd.Timestamp("2019-03-30 13:00", tz="UTC"), RULES["price_da"], OSLO)
    assert newest == pd.Timestamp("2019-03-31 21:00", tz="UTC")  # 23:00 CEST on the 23-hour day


def test_every_hour_of_an_autumn_day_is_published_at_13_local_the_day_before():
    hours = pd.date_range("2019-10-26 22:00", "2019-10-27 23:00", freq="h", tz="UTC", inclusive="left")
    stamps = published_at(hours, RULES["price_da"], OSLO)
    assert len(hours) == 25
    assert set(stamps) == {pd.Timestamp("2019-10-26 11:00", tz="UTC")}


def test_actual_load_is_public_one_hour_after_its_hour_ends():
    hour = pd.DatetimeIndex([pd.Timestamp("2019-06-10 08:00", tz="UTC")])
    assert published_at(hour, RULES["load_actual"], OSLO)[0] == pd.Timestamp("2019-06-10 10:00", tz="UTC")


def test_load_forecast_comes_out_before_the_price():
    as_of = pd.Timestamp("2019-06-10 09:00", tz="UTC")  # 11:00 CEST: load forecast out, price not
    assert newest_published_hour(as_of, RULES["load_da"], OSLO) > newest_published_hour(
        as_of, RULES["price_da"], OSLO
    )
