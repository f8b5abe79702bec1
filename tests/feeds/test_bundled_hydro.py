"""The bundled NVE history (data/bundled/hydro): read into weekly rows, served by the replay as of its
clock, landed by a backfill and a daily run in a real lake under tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import Settings
from forecasting.errors import DataError
from forecasting.feeds.base import SeriesRequest
from forecasting.feeds.bundled import read_history_source
from forecasting.feeds.nve_tables import read_bundled_hydro
from forecasting.feeds.replay import ReplayFeed
from forecasting.ingest.repair import find_holes
from forecasting.jobs.ingest import backfill, daily
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import read_series
from forecasting.schema import DELIVERY_HOUR, PUBLISHED_AT, SERIES_COL, VALUE, WEEKLY_SERIES, ZONE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HYDRO = PROJECT_ROOT / "data" / "bundled" / "hydro"
SHARED_NVE = PROJECT_ROOT.parent / "shared" / "data" / "nve"
OSLO = {f"NO{n}": "Europe/Oslo" for n in range(1, 6)}
HYDRO_SERIES = sorted(WEEKLY_SERIES)
WEEK_11 = pd.Timestamp("2023-03-12 23:00", tz="UTC")  # Monday 2023-03-13 00:00 CET
WEEK_12 = pd.Timestamp("2023-03-19 23:00", tz="UTC")  # its figure: Wednesday 2023-03-29 13:00 CEST


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return read_bundled_hydro(HYDRO, OSLO)


def test_the_bundled_copy_holds_every_week_of_every_zone_1995_to_2026(bundled):
    counts = bundled.groupby([ZONE, SERIES_COL]).size()
    assert set(counts) == {1624} and len(counts) == 5 * 4
    hours = bundled[DELIVERY_HOUR]
    assert hours.min() == utc("1995-01-01 23:00")  # Monday of 1995-W01, 00:00 CET
    assert hours.max() == utc("2026-02-08 23:00")  # 2026-W06, ending Sunday 2026-02-15


def test_weeks_hold_nves_filling_and_the_normal_of_their_iso_week(bundled):
    no2 = bundled[bundled[ZONE] == "NO2"].pivot(index=DELIVERY_HOUR, columns=SERIES_COL, values=VALUE)
    week = no2.loc[WEEK_12]  # 2023-W12: NO2 row of dato_Id 2023-03-26; normal of ISO week 12
    assert week["reservoir_filling"] == 13.692669
    assert (week["reservoir_normal_min"], week["reservoir_normal_median"], week["reservoir_normal_max"]) == (
        5.6913805,
        14.935738,
        19.891329,
    )


@pytest.mark.skipif(not SHARED_NVE.is_dir(), reason="the shared data folder is not beside this checkout")
def test_the_bundled_copy_equals_nves_data_in_the_shared_folder(bundled):
    shared = pd.read_csv(SHARED_NVE / "zones_weekly.csv")
    copied = pd.read_csv(HYDRO / "zones_weekly.csv")
    assert copied.equals(shared[copied.columns])
    filling = bundled[bundled[SERIES_COL] == "reservoir_filling"].sort_values([ZONE, DELIVERY_HOUR])
    expected = shared.sort_values(["omrnr", "dato_Id"])["fylling_TWh"].to_numpy()
    assert (filling[VALUE].to_numpy() == expected).all()


def test_a_broken_bundled_record_names_the_file(tmp_path):
    folder = tmp_path / "hydro"
    shutil.copytree(HYDRO, folder)
    weekly = folder / "zones_weekly.csv"
    weekly.write_text(weekly.read_text().replace("2023-03-26,2,2023,12,", "2023-03-27,2,2023,12,"))

    with pytest.raises(
        DataError, match=r"zones_weekly.csv: .*2023-03-27 is not the Sunday ending ISO week 2023-W12"
    ):
        read_bundled_hydro(folder, OSLO)


# --- the replay and the lake ---------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path, replay_source: Path) -> Path:
    """The small replay source of the conftest (NO1/NO2 prices and actual load) with the NVE copy."""
    folder = tmp_path / "source"
    shutil.copytree(replay_source, folder)
    shutil.copytree(HYDRO, folder / "hydro")
    return folder


@pytest.fixture
def hydro_settings(make_settings: Callable[..., Settings], source: Path) -> Settings:
    series = ["price_da", *HYDRO_SERIES]
    return make_settings(feeds={"replay": {"kind": "replay", "source": str(source), "series": series}})


def test_the_replay_serves_only_the_weeks_published_by_its_clock(hydro_settings):
    zone = hydro_settings.zone("NO2")
    request = SeriesRequest(zone, "reservoir_filling", utc("2023-03-01"), utc("2023-04-10"))

    def newest(clock: str) -> pd.Timestamp:
        feed = ReplayFeed.from_settings(hydro_settings, clock=lambda: utc(clock))
        return feed.fetch(request)[DELIVERY_HOUR].max()

    assert newest("2023-03-29 10:59") == WEEK_11  # Wednesday 12:59 in Oslo
    assert newest("2023-03-29 11:00") == WEEK_12  # 13:00: week 12 is out
    frame = ReplayFeed.from_settings(hydro_settings, clock=lambda: utc("2023-03-29 11:00")).fetch(request)
    assert frame.set_index(DELIVERY_HOUR)[PUBLISHED_AT][WEEK_12] == utc("2023-03-29 11:00")


def test_the_prices_of_a_source_with_the_nve_copy_are_read_as_before(source, replay_source):
    with_hydro = read_history_source(source, {"NO1": "Europe/Oslo", "NO2": "Europe/Oslo"})
    without = read_history_source(replay_source, {"NO1": "Europe/Oslo", "NO2": "Europe/Oslo"})
    hourly = with_hydro[~with_hydro[SERIES_COL].isin(WEEKLY_SERIES)].reset_index(drop=True)
    pd.testing.assert_frame_equal(hourly, without)
    assert set(with_hydro.loc[with_hydro[SERIES_COL].isin(WEEKLY_SERIES), ZONE]) == {"NO1", "NO2"}


def test_a_backfill_and_a_daily_run_land_the_weeks_in_a_real_lake(hydro_settings, as_of):
    report = backfill(hydro_settings, as_of=as_of)  # 2023-06-10 12:00 UTC, a Saturday
    assert report.ok, report.problems()
    lake = LakeFS.of(hydro_settings)
    weekly = read_series(lake, series=HYDRO_SERIES)
    # history.start 2023-01-01: ISO weeks 2023-W01 (from 2023-01-01 23:00 UTC) to W22, out on 2023-06-07
    per_pair = weekly.groupby([ZONE, SERIES_COL])[DELIVERY_HOUR].agg(["size", "min", "max"])
    assert len(per_pair) == 2 * 4
    assert set(per_pair["size"]) == {22}
    assert set(per_pair["min"]) == {utc("2023-01-01 23:00")} and set(per_pair["max"]) == {
        utc("2023-05-28 22:00")
    }
    holes, _ = find_holes(hydro_settings, lake, as_of)
    assert [hole for hole in holes if hole.series in WEEKLY_SERIES] == []  # one row a week is complete

    wednesday = utc("2023-06-14 12:00")  # 14:00 in Oslo: week 23 came out at 13:00
    (run,) = daily(hydro_settings, as_of=wednesday)
    assert run.ok, run.problems()
    newest = read_series(lake, series=HYDRO_SERIES).groupby(SERIES_COL)[DELIVERY_HOUR].max()
    assert set(newest) == {utc("2023-06-04 22:00")}  # Monday 2023-06-05, 2023-W23
