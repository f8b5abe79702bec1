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
    VIEW_COLUMNS,
    data_quality,
    due_hours,
    gap_hours,
    quality_view,
    read_quality,
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


def _stopped_at(lake_newest: pd.DataFrame, series: str, newest_hour: str) -> pd.DataFrame:
    """The lake's newest hours with `series` ending at `newest_hour` instead."""
    stopped = pd.DataFrame(
        {"zone": ["NO1"], "series": [series], "newest_hour": [pd.Timestamp(newest_hour, tz="UTC")]}
    )
    return pd.concat([lake_newest[lake_newest["series"] != series], stopped])


def _due() -> pd.DataFrame:
    settings = load_settings()
    return due_hours({s: settings.series[s] for s in SERIES}, {"NO1": "Europe/Oslo"}, AS_OF)


def test_a_series_dead_for_years_is_absent_since_its_last_hour_not_late_by_50000_hours(lake_newest):
    # wind stopped in 2016 (as NO5's did): the lake holds it, but years behind its rule
    newest = _stopped_at(lake_newest, "load_da", "2016-12-31 22:00")

    table = data_quality(None, newest, None, AS_OF, due=_due())

    load = _row(table, "load_da")
    assert load["state"] == "absent"
    assert load["due_hour"] == pd.Timestamp(
        "2023-03-21 22:00", tz="UTC"
    )  # published 10:00 CET the day before
    assert load["hours_ahead"] < -50_000  # data_quality.csv keeps the number, for a program
    assert set(table.loc[table["series"] != "load_da", "state"]) == {"ok"}
    shown = _row(quality_view(table), "load_da")
    assert shown["state"] == "absent since 2016-12-31"
    assert shown["ahead"] == ""  # not "-54,950 hours ahead"


def test_a_series_hours_behind_its_rule_is_late_by_that_many_hours(lake_newest):
    newest = _stopped_at(lake_newest, "load_da", "2023-03-21 17:00")  # due 22:00

    table = data_quality(None, newest, None, AS_OF, due=_due())

    assert _row(table, "load_da")["state"] == "late"
    shown = _row(quality_view(table), "load_da")
    assert (shown["state"], shown["ahead"]) == ("late by 5 h", "+29")


def test_the_page_view_is_narrow_and_the_csv_reads_back_to_it(tmp_path, recent, lake_newest):
    error = "SiteDown: 503 Service Unavailable from https://web-api.tp.entsoe.eu/api after 5 attempts"
    ingest = _ingest_table(
        _ingest_row("price_da"), _ingest_row("load_da", "unavailable", error, 0), _ingest_row("load_actual")
    )
    status = pd.DataFrame(
        {"zone": ["NO1"], "covariate": ["load_da"], "hours_extended": [671], "method": ["last_year_scaled"]}
    )
    newest = _stopped_at(lake_newest, "load_actual", "2016-12-31 22:00")
    table = data_quality(ingest, newest, status, AS_OF, recent=recent, due=_due())
    table.to_csv(tmp_path / "data_quality.csv", index=False, float_format="%.2f")

    view = quality_view(table)

    assert quality_view(read_quality(tmp_path / "data_quality.csv")).equals(view)
    assert len(QUALITY_COLUMNS) == 15 and list(view.columns) == [c for c in VIEW_COLUMNS if c != "feed"]
    widths = view.astype(str).apply(lambda c: max(c.str.len().max(), len(c.name)))
    # 9 short columns of the 15: 130 characters of text a row (the CSV's are 190 and more)
    assert widths.sum() <= 130 and widths.drop("error").sum() <= 100
    load = _row(view, "load_da")
    assert (load["state"], load["pull"], load["extended"]) == (
        "stale",
        "unavailable",
        "+671 h last_year_scaled",
    )
    assert load["error"].startswith("SiteDown: 503") and load["error"].endswith("…")
    assert len(load["error"]) == 32
    assert _row(view, "load_actual")["state"] == "absent since 2016-12-31"
    assert _row(view, "price_da")[["state", "ahead", "gaps", "pull"]].tolist() == [
        "ok",
        "+34",
        "0",
        "ok, +24",
    ]


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
