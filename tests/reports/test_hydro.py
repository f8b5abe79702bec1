"""The hydro-balance table and chart of the report, on NVE's real weeks (data/bundled/hydro)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.feeds.nve_tables import read_bundled_hydro
from forecasting.reports.hydro import HYDRO_COLUMNS, hydro_chart, hydro_chart_figure, hydro_table
from forecasting.schema import DELIVERY_HOUR, SERIES_COL, ZONE

HYDRO = Path(__file__).resolve().parents[2] / "data" / "bundled" / "hydro"
OSLO = {f"NO{n}": "Europe/Oslo" for n in range(1, 6)}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def weeks() -> pd.DataFrame:
    return read_bundled_hydro(HYDRO, OSLO)


def up_to(weeks: pd.DataFrame, zone: str, newest: str) -> pd.DataFrame:
    """A zone's weeks as a lake read as of a date would give them: up to the week starting `newest`."""
    return weeks[(weeks[ZONE] == zone) & (weeks[DELIVERY_HOUR] <= utc(newest))]


def test_the_table_shows_each_zones_newest_week_against_its_normal(weeks):
    rows = pd.concat([up_to(weeks, "NO2", "2023-03-19 23:00"), up_to(weeks, "NO4", "2026-01-11 23:00")])
    table = hydro_table(rows, OSLO).set_index(ZONE)

    assert list(table.reset_index().columns) == HYDRO_COLUMNS
    no2 = table.loc["NO2"]  # 2023-W12, ending Sunday 2023-03-26: NVE 13.692669 TWh
    assert (no2["iso_week"], no2["week_ending"]) == ("2023-W12", "2023-03-26")
    assert no2["filling_twh"] == 13.692669
    assert (no2["normal_min_twh"], no2["normal_median_twh"], no2["normal_max_twh"]) == (
        5.6913805,
        14.935738,
        19.891329,
    )
    assert no2["deviation_twh"] == pytest.approx(13.692669 - 14.935738)
    assert no2["change_twh"] == pytest.approx(13.692669 - 14.101226)  # 2023-W11: 14.101226
    assert no2["vs_normal"] == "inside"
    no4 = table.loc["NO4"]  # 2026-W03: 16.92066 TWh, above the band's max of 16.797482
    assert (no4["iso_week"], no4["vs_normal"]) == ("2026-W03", "above max")
    assert no4["deviation_twh"] == pytest.approx(16.92066 - 13.099162)
    assert no4["change_twh"] == pytest.approx(16.92066 - 17.351065)


def test_a_filling_under_the_bands_minimum_is_below_min(weeks):
    table = hydro_table(up_to(weeks, "NO3", "2005-06-05 22:00"), OSLO)  # 2005-W23 of NO3
    assert table[["iso_week", "filling_twh", "normal_min_twh", "vs_normal"]].to_numpy().tolist() == [
        ["2005-W23", 3.216722, 3.4074194, "below min"]
    ]


def test_without_the_week_before_the_change_is_left_empty(weeks):
    rows = up_to(weeks, "NO2", "2023-03-19 23:00")
    table = hydro_table(rows[rows[DELIVERY_HOUR] != utc("2023-03-12 23:00")], OSLO)
    assert table["filling_twh"].iloc[0] == 13.692669 and pd.isna(table["change_twh"].iloc[0])


def test_a_zone_without_a_normal_band_shows_its_filling_alone(weeks):
    """ENTSO-E's A72 gives the filling of other zones, without NVE's normal."""
    rows = up_to(weeks, "NO2", "2023-03-19 23:00")
    table = hydro_table(rows[rows[SERIES_COL] == "reservoir_filling"], OSLO)
    assert table["filling_twh"].iloc[0] == 13.692669
    assert table[["normal_median_twh", "deviation_twh"]].isna().all(axis=None)
    assert table["vs_normal"].iloc[0] == ""


def test_no_filling_gives_an_empty_table(weeks):
    assert hydro_table(weeks.iloc[0:0], OSLO).empty


def test_the_chart_has_a_panel_per_zone_and_is_written_as_png(weeks, tmp_path):
    rows = pd.concat([up_to(weeks, zone, "2023-03-19 23:00") for zone in ("NO1", "NO2", "NO5")])
    rows = rows[rows[DELIVERY_HOUR] > utc("2022-03-19 23:00")]
    figure = hydro_chart_figure(rows, OSLO)
    assert [ax.get_title() for ax in figure.axes] == [
        "NO1: 1.2 TWh, +0.1 vs median",  # NVE: 1.1928585 against a median of 1.1324742
        "NO2: 13.7 TWh, -1.2 vs median",
        "NO5: 5.3 TWh, +0.0 vs median",
    ]
    path = hydro_chart(rows, OSLO, tmp_path / "hydro.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
