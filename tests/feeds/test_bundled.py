"""Converting the deepforkit CSVs (local wall clock, 24 rows a day, 0 = missing) to UTC rows."""

from pathlib import Path

import pandas as pd
import pytest

from forecasting.feeds.bundled import read_deepforkit_csv, read_history_source
from forecasting.schema import DELIVERY_HOUR, SERIES_COL, VALUE

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "deepforkit" / "NO_1.csv"
BUNDLED = Path(__file__).resolve().parents[2] / "data" / "bundled"


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return read_deepforkit_csv(FIXTURE, "NO1", "Europe/Oslo")


def _prices_of_local_day(rows: pd.DataFrame, day: str) -> pd.Series:
    prices = rows[rows[SERIES_COL] == "price_da"].set_index(DELIVERY_HOUR)[VALUE]
    local = prices.index.tz_convert("Europe/Oslo")
    return prices[local.strftime("%Y-%m-%d") == day]


def test_spring_forward_day_has_23_utc_hours(rows):
    assert len(_prices_of_local_day(rows, "2016-03-27")) == 23


def test_autumn_day_has_25_utc_hours(rows):
    assert len(_prices_of_local_day(rows, "2016-10-30")) == 25


def test_spring_copy_row_is_dropped_and_hours_stay_contiguous(rows):
    day = _prices_of_local_day(rows, "2016-03-27")
    assert day.index[0] == pd.Timestamp("2016-03-26 23:00", tz="UTC")  # 00:00 CET
    assert day.index[1] == pd.Timestamp("2016-03-27 00:00", tz="UTC")  # 01:00 CET: 15.50
    assert day.index[2] == pd.Timestamp("2016-03-27 01:00", tz="UTC")  # 03:00 CEST: 16.02
    assert day.iloc[1:3].tolist() == [15.5, 16.02]
    assert (day.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()


def test_averaged_autumn_hour_stands_for_both_utc_hours(rows):
    day = _prices_of_local_day(rows, "2016-10-30")
    both = day[[pd.Timestamp("2016-10-30 00:00", tz="UTC"), pd.Timestamp("2016-10-30 01:00", tz="UTC")]]
    assert both.tolist() == [32.025, 32.025]
    assert day[pd.Timestamp("2016-10-30 02:00", tz="UTC")] == 32.14  # 03:00 CET


def test_zeros_are_gaps_not_values(rows):
    assert not (rows[VALUE] == 0).any()
    assert "solar_da" not in set(rows[SERIES_COL])  # Sol_DA is 0 throughout


def test_bundled_parquet_agrees_with_the_csv_on_dst_days(rows):
    bundled = read_history_source(BUNDLED / "NO1.parquet", {"NO1": "Europe/Oslo"})
    merged = rows.merge(bundled, on=["zone", "series", DELIVERY_HOUR], suffixes=("_csv", "_bundled"))
    assert len(merged) == len(rows)
    assert (merged["value_csv"] == merged["value_bundled"]).all()


def test_replay_source_without_files_for_the_zones_fails_clearly(tmp_path):
    (tmp_path / "SE3.parquet").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no file for the configured zones"):
        read_history_source(tmp_path, {"NO1": "Europe/Oslo"})
