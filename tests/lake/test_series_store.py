"""The series store on real Parquet files: idempotent upserts, the raw area, hive layout, pruned and
as-of reads. Frames come from the replay of the real bundled history or are built by hand where a
test needs a value to change."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from forecasting.config import Settings
from forecasting.feeds.base import SeriesRequest
from forecasting.feeds.replay import ReplayFeed
from forecasting.jobs.ingest import backfill, daily
from forecasting.lake.files import CorruptFile, LakeFS, temporary_name, write_lock
from forecasting.lake.series_store import (
    append_series,
    curated_file,
    newest_hours,
    read_series,
)
from forecasting.schema import (
    DELIVERY_HOUR,
    KEY_COLUMNS,
    PUBLISHED_AT,
    RETRIEVED_AT,
    SERIES_COL,
    SERIES_COLUMNS,
    UNIT,
    VALUE,
    ZONE,
    SchemaError,
)

UTC = "UTC"
OSLO = "Europe/Oslo"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def fetch(
    replay: ReplayFeed, settings: Settings, zone: str, series: str, start: str, end: str
) -> pd.DataFrame:
    return replay.fetch(SeriesRequest(settings.zone(zone), series, utc(start), utc(end)))


def hand_frame(
    hours: pd.DatetimeIndex,
    values: list[float] | np.ndarray,
    published: pd.Timestamp | pd.DatetimeIndex,
    retrieved: pd.Timestamp,
    zone: str = "NO1",
    series: str = "price_da",
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ZONE: zone,
            SERIES_COL: series,
            DELIVERY_HOUR: hours,
            VALUE: np.asarray(values, dtype="float64"),
            UNIT: "EUR/MWh",
            PUBLISHED_AT: published,
            RETRIEVED_AT: retrieved,
        }
    )


def files_with_mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def lake(settings: Settings) -> LakeFS:
    return LakeFS.open(settings.lake_root)


@pytest.fixture
def spring(replay: ReplayFeed, settings: Settings) -> pd.DataFrame:
    """NO1 prices of March 2023 (real values)."""
    return fetch(replay, settings, "NO1", "price_da", "2023-03-01", "2023-04-01")


# --- append and read -----------------------------------------------------------------------------


def test_append_then_read_returns_the_same_rows(lake: LakeFS, spring: pd.DataFrame) -> None:
    result = append_series(lake, spring, "replay")
    back = read_series(lake)
    assert result.new_rows == len(spring) == 31 * 24
    assert list(back.columns) == SERIES_COLUMNS
    expected = spring.sort_values(KEY_COLUMNS).reset_index(drop=True)
    expected = expected.astype(
        {c: "datetime64[ns, UTC]" for c in (DELIVERY_HOUR, PUBLISHED_AT, RETRIEVED_AT)}
    )
    pd.testing.assert_frame_equal(back, expected)


def several_pairs(replay: ReplayFeed, settings: Settings) -> pd.DataFrame:
    """Two zones × two series over a new year (real values): the same hours in every pair, and
    rows of two delivery years in each, shuffled as a bulk frame may come."""
    frames = [
        fetch(replay, settings, zone, series, "2022-12-30", "2023-01-03")
        for zone in ("NO1", "NO2")
        for series in ("price_da", "load_actual")
    ]
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize("as_categories", [False, True])
def test_bulk_frame_of_several_pairs_lands_every_row_in_sorted_year_files(
    lake: LakeFS, replay: ReplayFeed, settings: Settings, as_categories: bool
) -> None:
    frame = several_pairs(replay, settings)
    if as_categories:
        frame = frame.astype({ZONE: "category", SERIES_COL: "category", UNIT: "category"})

    result = append_series(lake, frame, "replay")

    assert result.new_rows == len(frame) == 4 * 4 * 24
    assert len(result.files_written) == 4 * 2  # each pair: one file of 2022, one of 2023
    for path in result.files_written:
        hours = pq.read_table(path).column(DELIVERY_HOUR).to_pandas()
        assert hours.is_monotonic_increasing and hours.is_unique
        assert (hours.dt.year == int(path.split("year=")[1].split("/")[0])).all()
    back = read_series(lake)
    expected = frame.astype({ZONE: str, SERIES_COL: str, UNIT: str, RETRIEVED_AT: "datetime64[ns, UTC]"})
    pd.testing.assert_frame_equal(back, expected.sort_values(KEY_COLUMNS).reset_index(drop=True))


@pytest.mark.parametrize("as_categories", [False, True])
def test_a_repeated_zone_series_hour_is_refused_and_nothing_is_written(
    lake: LakeFS, replay: ReplayFeed, settings: Settings, as_categories: bool
) -> None:
    frame = several_pairs(replay, settings)
    repeated = frame[(frame[ZONE] == "NO2") & (frame[SERIES_COL] == "load_actual")].iloc[[5]]
    frame = pd.concat([frame, repeated.assign(**{VALUE: 1.0})], ignore_index=True)
    if as_categories:
        frame = frame.astype({ZONE: "category", SERIES_COL: "category", UNIT: "category"})

    with pytest.raises(
        SchemaError,
        match=r"1 duplicate zone/series/hour rows, e\.g\. \{'zone': 'NO2', 'series': 'load_actual'",
    ):
        append_series(lake, frame, "replay")

    assert not any(p.is_file() for p in Path(settings.lake_root).rglob("*"))


def test_a_delivery_hour_that_is_not_whole_is_refused(lake: LakeFS, spring: pd.DataFrame) -> None:
    shifted = spring.assign(**{DELIVERY_HOUR: spring[DELIVERY_HOUR] + pd.Timedelta(minutes=15)})

    with pytest.raises(SchemaError, match="delivery_hour values must be whole UTC hours"):
        append_series(lake, shifted, "replay")


def test_delivery_hours_in_seconds_are_whole_hours(lake: LakeFS, spring: pd.DataFrame) -> None:
    in_seconds = spring.assign(**{DELIVERY_HOUR: spring[DELIVERY_HOUR].dt.as_unit("s")})

    assert append_series(lake, in_seconds, "replay").new_rows == len(spring)


def test_reappending_identical_data_adds_nothing_and_writes_no_file(
    lake: LakeFS, settings: Settings, spring: pd.DataFrame
) -> None:
    append_series(lake, spring, "replay")
    before_files = files_with_mtimes(Path(settings.lake_root))
    before_rows = len(read_series(lake))

    again = append_series(lake, spring.copy(), "replay")

    assert (again.new_rows, again.revised_rows, again.unchanged_rows) == (0, 0, len(spring))
    assert again.files_written == [] and again.raw_file is None
    assert files_with_mtimes(Path(settings.lake_root)) == before_files
    assert len(read_series(lake)) == before_rows


def test_identical_pull_on_a_later_day_writes_no_new_raw_file(
    lake: LakeFS, settings: Settings, spring: pd.DataFrame
) -> None:
    append_series(lake, spring, "replay")
    before = files_with_mtimes(Path(settings.lake_root))

    later = append_series(lake, spring.assign(**{RETRIEVED_AT: utc("2031-01-01")}), "replay")

    assert later.raw_file is None and later.files_written == []
    assert files_with_mtimes(Path(settings.lake_root)) == before


def test_revised_value_replaces_the_curated_row_and_raw_keeps_both_pulls(
    lake: LakeFS, settings: Settings
) -> None:
    hours = pd.date_range(utc("2023-05-01 22:00"), periods=24, freq="h")
    published = utc("2023-05-01 11:00")
    first = hand_frame(hours, np.arange(24.0), published, utc("2023-05-01 12:00"))
    revised = first.assign(**{RETRIEVED_AT: utc("2023-05-02 12:00")})
    revised.loc[5, VALUE] = 999.5

    append_series(lake, first, "replay")
    result = append_series(lake, revised, "replay")

    assert (result.new_rows, result.revised_rows, result.unchanged_rows) == (0, 1, 23)
    back = read_series(lake)
    assert len(back) == 24
    assert back.set_index(DELIVERY_HOUR).loc[hours[5], VALUE] == 999.5
    assert back.set_index(DELIVERY_HOUR).loc[hours[5], RETRIEVED_AT] == utc("2023-05-02 12:00")
    raw = sorted(Path(settings.lake_root, "raw").rglob("*.parquet"))
    assert len(raw) == 2
    kept = sorted(pq.read_table(p).to_pandas().loc[5, VALUE] for p in raw)
    assert kept == [5.0, 999.5]


def test_as_of_read_returns_only_rows_published_by_then(
    lake: LakeFS, replay: ReplayFeed, settings: Settings
) -> None:
    frame = fetch(replay, settings, "NO1", "price_da", "2023-06-01", "2023-06-08")
    append_series(lake, frame, "replay")
    as_of = utc("2023-06-04 12:00")  # 14:00 in Oslo: the prices for June 5 are out, June 6 not

    seen = read_series(lake, as_of=as_of)

    assert (seen[PUBLISHED_AT] <= as_of).all()
    assert len(seen) == (frame[PUBLISHED_AT] <= as_of).sum()
    assert seen[DELIVERY_HOUR].max() == utc("2023-06-05 21:00")  # end of local June 5
    assert len(seen) < len(frame)


def test_read_of_one_zone_and_month_touches_only_its_partitions(
    lake: LakeFS, replay: ReplayFeed, settings: Settings
) -> None:
    for zone in ("NO1", "NO2"):
        append_series(lake, fetch(replay, settings, zone, "price_da", "2022-12-01", "2023-04-01"), "replay")
    # Garbage in the partitions the read must not open: another zone, and another year of NO1.
    for zone, year in (("NO2", 2023), ("NO1", 2022)):
        folder = Path(curated_file(lake, "price_da", zone, year)).parent
        (folder / "corrupt.parquet").write_bytes(b"this is not a parquet file")

    month = read_series(
        lake, series=["price_da"], zones=["NO1"], start=utc("2023-03-01"), end=utc("2023-04-01")
    )

    assert len(month) == 31 * 24 and set(month[ZONE]) == {"NO1"}
    with pytest.raises(CorruptFile, match=r"year=2022/corrupt\.parquet"):
        read_series(lake)  # a full read does open them, and names the bad one


def test_layout_is_readable_by_plain_pyarrow_dataset(
    lake: LakeFS, replay: ReplayFeed, settings: Settings
) -> None:
    for zone in ("NO1", "NO2"):
        for series in ("price_da", "load_actual"):
            append_series(lake, fetch(replay, settings, zone, series, "2022-12-20", "2023-01-10"), "replay")
    ours = read_series(lake)

    table = ds.dataset(Path(settings.lake_root, "curated"), format="parquet", partitioning="hive").to_table()
    plain = table.to_pandas()

    assert len(plain) == len(ours)
    assert set(table.schema.names) >= {SERIES_COL, ZONE, "year", DELIVERY_HOUR, VALUE, PUBLISHED_AT}
    counts = plain.groupby([ZONE, SERIES_COL, "year"]).size()
    expected = ours.groupby([ZONE, SERIES_COL, ours[DELIVERY_HOUR].dt.year.rename("year")]).size()
    assert counts.to_dict() == expected.to_dict()
    assert plain[VALUE].sum() == pytest.approx(ours[VALUE].sum())


def test_layout_is_readable_by_duckdb_with_hive_partitioning(
    lake: LakeFS, replay: ReplayFeed, settings: Settings
) -> None:
    for zone in ("NO1", "NO2"):
        append_series(lake, fetch(replay, settings, zone, "price_da", "2022-12-20", "2023-01-10"), "replay")
    ours = read_series(lake)
    pattern = f"{settings.lake_root}/curated/**/*.parquet"

    rows = duckdb.sql(
        f"SELECT zone, series, year, count(*), sum(value), max(delivery_hour) "
        f"FROM read_parquet('{pattern}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
    ).fetchall()

    expected = ours.groupby([ZONE, SERIES_COL, ours[DELIVERY_HOUR].dt.year])
    assert [(z, s, y, n) for z, s, y, n, _, _ in rows] == [(z, s, y, len(g)) for (z, s, y), g in expected]
    assert sum(r[4] for r in rows) == pytest.approx(ours[VALUE].sum())
    newest = max(r[5] for r in rows)
    assert pd.Timestamp(newest).tz_convert(UTC) == ours[DELIVERY_HOUR].max()


def test_raw_area_is_readable_by_plain_pyarrow_dataset(settings: Settings, as_of: pd.Timestamp) -> None:
    daily(settings, as_of=as_of)  # backfill chunks and a daily pull per zone × series
    raw = Path(settings.lake_root, "raw")

    table = ds.dataset(raw, format="parquet", partitioning="hive").to_table()

    assert table.num_rows == sum(pq.read_metadata(p).num_rows for p in raw.rglob("*.parquet"))
    assert set(table.column("feed").to_pylist()) == {"replay"}
    assert set(table.column("pulled").to_pylist()) == {as_of.strftime("%Y-%m-%d")}


def test_raw_area_is_readable_by_pandas(settings: Settings, as_of: pd.Timestamp) -> None:
    daily(settings, as_of=as_of)
    raw = Path(settings.lake_root, "raw")

    frame = pd.read_parquet(raw)

    assert len(frame) == sum(pq.read_metadata(p).num_rows for p in raw.rglob("*.parquet"))


def test_curated_area_is_readable_by_pandas(settings: Settings, as_of: pd.Timestamp) -> None:
    backfill(settings, as_of=as_of)

    frame = pd.read_parquet(Path(settings.lake_root, "curated"))

    assert len(frame) == len(read_series(LakeFS.open(settings.lake_root)))
    assert set(frame[ZONE].astype(str)) == {"NO1", "NO2"}


def test_negative_prices_are_kept(lake: LakeFS, replay: ReplayFeed, settings: Settings) -> None:
    frame = fetch(replay, settings, "NO1", "price_da", "2023-05-27 22:00", "2023-05-28 22:00")
    assert (frame[VALUE] < 0).sum() == 7  # local May 28, 2023 in the bundled history

    append_series(lake, frame, "replay")
    back = read_series(lake, zones=["NO1"], start=utc("2023-05-27 22:00"), end=utc("2023-05-28 22:00"))

    assert (back[VALUE] < 0).sum() == 7
    pd.testing.assert_series_equal(back[VALUE], frame[VALUE].reset_index(drop=True))


@pytest.mark.parametrize(("day", "hours"), [("2023-03-26", 23), ("2022-10-30", 25)])
def test_dst_days_land_as_23_and_25_utc_hours(
    lake: LakeFS, replay: ReplayFeed, settings: Settings, day: str, hours: int
) -> None:
    start = pd.Timestamp(day, tz=OSLO).tz_convert(UTC)
    end = (pd.Timestamp(day, tz=OSLO) + pd.DateOffset(days=1)).tz_convert(UTC)
    append_series(lake, fetch(replay, settings, "NO1", "price_da", "2022-10-01", "2023-04-30"), "replay")

    back = read_series(lake, zones=["NO1"], start=start, end=end)

    assert len(back) == hours
    assert back[DELIVERY_HOUR].is_unique
    assert (back[DELIVERY_HOUR].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert back[DELIVERY_HOUR].iloc[-1] == end - pd.Timedelta(hours=1)


def test_read_from_a_local_new_year_includes_the_last_utc_hour_of_the_old_year(
    lake: LakeFS, replay: ReplayFeed, settings: Settings
) -> None:
    append_series(lake, fetch(replay, settings, "NO1", "price_da", "2022-12-01", "2023-02-01"), "replay")
    start = pd.Timestamp("2023-01-01", tz=OSLO)  # 2022-12-31 23:00 UTC
    end = pd.Timestamp("2023-02-01", tz=OSLO)

    january = read_series(lake, zones=["NO1"], start=start, end=end)

    assert january[DELIVERY_HOUR].min() == utc("2022-12-31 23:00")
    assert len(january) == 31 * 24


def test_memory_url_works_end_to_end(make_settings, as_of: pd.Timestamp) -> None:
    url = f"memory://spotcast-test-{uuid.uuid4().hex}/lake"
    settings = make_settings(lake_root=url)
    lake = LakeFS.open(url)
    try:
        report = backfill(settings, as_of=as_of)
        back = read_series(lake)
        newest = newest_hours(lake)
        files = lake.fs.find(lake.root)
    finally:
        fsspec.filesystem("memory").rm(lake.root, recursive=True)

    assert not lake.is_local
    assert report.ok and report.new_rows == len(back) > 0
    assert not back.duplicated(KEY_COLUMNS).any()
    assert len(newest) == 4 and set(newest[ZONE]) == {"NO1", "NO2"}
    assert any("/curated/series=price_da/zone=NO1/year=2023/data.parquet" in f for f in files)
    assert not any(f.rsplit("/", 1)[-1].startswith((".tmp-", "_lock")) for f in files)


def test_memory_url_append_and_read_without_a_run(spring: pd.DataFrame) -> None:
    lake = LakeFS.open(f"memory://spotcast-test-{uuid.uuid4().hex}")
    try:
        with write_lock(lake, "test"):
            first = append_series(lake, spring, "replay")
            second = append_series(lake, spring, "replay")
        back = read_series(lake, zones=["NO1"], start=utc("2023-03-10"), end=utc("2023-03-11"))
    finally:
        fsspec.filesystem("memory").rm(lake.root, recursive=True)
    assert (first.new_rows, second.new_rows, second.files_written) == (31 * 24, 0, [])
    assert len(back) == 24


# --- leftovers of interrupted writes -------------------------------------------------------------


def _leave_a_half_written_file(lake: LakeFS) -> Path:
    folder = Path(curated_file(lake, "price_da", "NO1", 2023)).parent
    whole = (folder / "data.parquet").read_bytes()
    leftover = Path(temporary_name(str(folder)).replace(f"-{os.getpid()}-", "-999999999-"))  # a dead writer's
    leftover.write_bytes(whole[: len(whole) // 2])  # what kill -9 during a write leaves
    return leftover


def test_leftover_tmp_files_are_ignored_by_readers(
    lake: LakeFS, settings: Settings, spring: pd.DataFrame
) -> None:
    append_series(lake, spring, "replay")
    _leave_a_half_written_file(lake)

    back = read_series(lake)
    plain = ds.dataset(Path(settings.lake_root, "curated"), format="parquet", partitioning="hive").to_table()

    assert len(back) == len(spring)
    assert plain.num_rows == len(spring)


def test_leftover_tmp_files_are_removed_by_the_next_landing(
    settings: Settings, spring: pd.DataFrame, as_of: pd.Timestamp
) -> None:
    lake = LakeFS.open(settings.lake_root)
    append_series(lake, spring, "replay")
    leftover = _leave_a_half_written_file(lake)

    backfill(settings, as_of=as_of)

    assert not leftover.exists()
    assert not [p for p in Path(settings.lake_root).rglob(".tmp-*")]


def test_leftover_tmp_files_are_ignored_by_duckdb_glob(
    lake: LakeFS, settings: Settings, spring: pd.DataFrame
) -> None:
    append_series(lake, spring, "replay")
    _leave_a_half_written_file(lake)
    pattern = f"{settings.lake_root}/curated/**/*.parquet"

    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}', hive_partitioning=true)").fetchall()[
        0
    ]

    assert count == (len(spring),)


def test_newest_hours_reports_rows_and_range_per_zone_and_series(
    lake: LakeFS, replay: ReplayFeed, settings: Settings
) -> None:
    append_series(lake, fetch(replay, settings, "NO1", "price_da", "2023-01-01", "2023-01-03"), "replay")
    append_series(lake, fetch(replay, settings, "NO2", "load_actual", "2023-01-01", "2023-01-02"), "replay")

    newest = newest_hours(lake).set_index([ZONE, SERIES_COL])

    assert newest.loc[("NO1", "price_da"), "rows"] == 48
    assert newest.loc[("NO1", "price_da"), "newest_hour"] == utc("2023-01-02 23:00")
    assert newest.loc[("NO2", "load_actual"), "first_hour"] == utc("2023-01-01 00:00")
    assert len(newest) == 2
    assert os.path.exists(curated_file(lake, "load_actual", "NO2", 2023))
