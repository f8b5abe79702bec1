"""The data-quality table on real curated rows of NO1 with hours removed on purpose."""

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.feeds.replay import ReplayFeed
from forecasting.ingest.land import REPORT_COLUMNS
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import append_series, scan_lake
from forecasting.publication import known_at
from forecasting.reports.data_quality import (
    QUALITY_COLUMNS,
    data_quality,
    due_hours,
    gap_hours,
)

AS_OF = pd.Timestamp("2023-03-20 12:00", tz="UTC")
SERIES = ["price_da", "load_da", "load_actual"]


@pytest.fixture(scope="module")
def recent() -> pd.DataFrame:
    """NO1's rows known at AS_OF, delivered in the 10 days before it (and day-ahead: after)."""
    full = ReplayFeed.from_settings(load_settings()).history
    rows = full[(full["zone"] == "NO1") & full["series"].isin(SERIES)]
    rows = rows[rows["delivery_hour"] >= AS_OF - pd.Timedelta(days=10)]
    return known_at(rows, AS_OF).reset_index(drop=True)


@pytest.fixture(scope="module")
def lake_newest(recent) -> pd.DataFrame:
    return (
        recent.groupby(["zone", "series"], as_index=False)["delivery_hour"]
        .max()
        .rename(columns={"delivery_hour": "newest_hour"})
    )


def _ingest_row(series: str, status: str = "ok", error: str = "", new_rows: int = 24) -> dict:
    row = dict(feed="replay", zone="NO1", series=series, status=status, attempts=1, rows=new_rows)
    return row | dict(newest_hour=None, new_rows=new_rows, error=error)


def _ingest_table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=REPORT_COLUMNS)


def _row(table: pd.DataFrame, series: str) -> pd.Series:
    return table.set_index("series").loc[series]


def _drop_hours(frame: pd.DataFrame, series: str, hours: list[pd.Timestamp]) -> pd.DataFrame:
    return frame[~((frame["series"] == series) & frame["delivery_hour"].isin(hours))]


def test_gap_hours_counts_missing_hours_in_the_last_days(recent):
    inside = [AS_OF - pd.Timedelta(hours=h) for h in (5, 6, 30)]
    before_window = [AS_OF - pd.Timedelta(days=8, hours=h) for h in (1, 2)]
    holed = _drop_hours(recent, "price_da", inside + before_window)

    gaps = gap_hours(holed, AS_OF, days=7)

    assert _row(gaps, "price_da")["gap_hours"] == 3
    assert _row(gaps, "load_da")["gap_hours"] == 0


def test_hours_after_the_newest_are_not_gaps(recent):
    # load_actual ends an hour or two before AS_OF (published after delivery): not a gap.
    gaps = gap_hours(recent, AS_OF, days=7)

    assert _row(gaps, "load_actual")["gap_hours"] == 0


def test_table_has_one_row_per_series_with_declared_columns(recent, lake_newest):
    ingest = _ingest_table(*(_ingest_row(s) for s in SERIES))

    table = data_quality(ingest, lake_newest, None, AS_OF, recent=recent)

    assert list(table.columns) == QUALITY_COLUMNS
    assert sorted(table["series"]) == sorted(SERIES)
    assert set(table["state"]) == {"ok"}


def test_gap_hours_reach_the_table(recent, lake_newest):
    holed = _drop_hours(recent, "load_da", [AS_OF - pd.Timedelta(hours=h) for h in (1, 2)])

    table = data_quality(None, lake_newest, None, AS_OF, recent=holed)

    assert _row(table, "load_da")["gap_hours"] == 2


def test_newest_hour_and_hours_ahead_of_as_of(recent, lake_newest):
    table = data_quality(None, lake_newest, None, AS_OF)

    price = _row(table, "price_da")
    # At 13:00 CET on 20 March, prices up to 21 March 23:00 local (22:00 UTC) are published.
    assert price["newest_hour"] == pd.Timestamp("2023-03-21 22:00", tz="UTC")
    assert price["hours_ahead"] == 34
    assert _row(table, "load_actual")["hours_ahead"] < 0


def test_unavailable_pull_marks_series_stale_with_its_error(lake_newest):
    ingest = _ingest_table(_ingest_row("price_da", "unavailable", "DataNotAvailable: not yet", 0))

    row = _row(data_quality(ingest, lake_newest, None, AS_OF), "price_da")

    assert (row["state"], row["ingest_status"], row["error"]) == (
        "stale",
        "unavailable",
        "DataNotAvailable: not yet",
    )


def test_series_not_in_the_lake_is_missing(lake_newest):
    ingest = _ingest_table(_ingest_row("wind_onshore_da", "failed", "FeedError: malformed", 0))

    row = _row(data_quality(ingest, lake_newest, None, AS_OF), "wind_onshore_da")

    assert row["state"] == "missing"
    assert pd.isna(row["newest_hour"])


def test_failed_chunk_outweighs_landed_chunks_of_the_same_series(lake_newest):
    ingest = _ingest_table(
        _ingest_row("load_da"),
        _ingest_row("load_da", "unavailable", "SiteDown: 503", 0),
        _ingest_row("load_da"),
    )

    row = _row(data_quality(ingest, lake_newest, None, AS_OF), "load_da")

    assert (row["ingest_status"], row["attempts"], row["new_rows"]) == ("unavailable", 3, 48)


def test_covariate_extension_is_reported_from_input_status(lake_newest):
    status = pd.DataFrame(
        {
            "zone": ["NO1"],
            "covariate": ["load_da"],  # the model's input_status names the series `covariate`
            "newest_published_hour": [pd.Timestamp("2023-03-21 22:00", tz="UTC")],
            "hours_extended": [671],
            "method": ["last_year_scaled"],
        }
    )

    row = _row(data_quality(None, lake_newest, status, AS_OF), "load_da")

    assert (row["hours_extended"], row["extension_method"]) == (671, "last_year_scaled")
    assert row["newest_published_hour"] == pd.Timestamp("2023-03-21 22:00", tz="UTC")


def test_input_status_with_missing_columns_leaves_them_empty(lake_newest):
    status = pd.DataFrame({"zone": ["NO1"], "series": ["load_da"], "hours_extended": [600]})

    row = _row(data_quality(None, lake_newest, status, AS_OF), "load_da")

    assert row["hours_extended"] == 600
    assert pd.isna(row["extension_method"]) and pd.isna(row["newest_published_hour"])


def test_without_ingest_table_ingest_columns_are_empty(lake_newest):
    table = data_quality(None, lake_newest, None, AS_OF)

    assert table[["feed", "ingest_status", "attempts", "error"]].isna().all().all()
    assert set(table["state"]) == {"ok"}


def test_a_series_whose_newest_hour_is_long_past_its_rule_is_late_not_ok(lake_newest):
    settings = load_settings()
    due = due_hours({s: settings.series[s] for s in SERIES}, {"NO1": "Europe/Oslo"}, AS_OF)
    # wind stopped in 2016 (as NO5's did): the lake holds it, but years behind its rule
    stopped = pd.DataFrame(
        {"zone": ["NO1"], "series": ["load_da"], "newest_hour": [pd.Timestamp("2016-12-31 22:00", tz="UTC")]}
    )
    newest = pd.concat([lake_newest[lake_newest["series"] != "load_da"], stopped])

    table = data_quality(None, newest, None, AS_OF, due=due)

    load = _row(table, "load_da")
    assert load["state"] == "late"
    assert load["due_hour"] == pd.Timestamp(
        "2023-03-21 22:00", tz="UTC"
    )  # published 10:00 CET the day before
    assert load["hours_ahead"] < -50_000
    assert set(table.loc[table["series"] != "load_da", "state"]) == {"ok"}


def test_due_hour_allows_the_series_staleness_tolerance():
    settings = load_settings()
    due = due_hours({"load_actual": settings.series["load_actual"]}, {"NO1": "Europe/Oslo"}, AS_OF)
    # each hour published 1 h after it ends: by 12:00 the 10:00 hour is out; 2 h tolerance → 08:00
    assert due[["zone", "series", "due_hour"]].values.tolist() == [
        ["NO1", "load_actual", pd.Timestamp("2023-03-20 08:00", tz="UTC")]
    ]


def test_the_lake_as_of_an_instant_holds_only_what_was_published_by_then(tmp_path, recent):
    lake = LakeFS.open(str(tmp_path / "lake"))
    append_series(lake, recent.assign(retrieved_at=AS_OF), "replay")
    earlier = AS_OF - pd.Timedelta(days=3)

    then = scan_lake(lake, as_of=earlier).table.set_index("series")

    assert then.loc["price_da", "newest_hour"] == pd.Timestamp("2023-03-18 22:00", tz="UTC")
    assert then.loc["price_da", "rows"] == len(known_at(recent[recent["series"] == "price_da"], earlier))
    assert scan_lake(LakeFS.open(str(tmp_path / "empty")), as_of=earlier).table.empty
