"""The forwards area of the lake (forecasting/lake/forward_store.py) on real files and real Parquet:
landing is all or nothing and idempotent, a landed settlement never changes, EPADs resolve against
the lake, as-of reads see a settlement only from its settlement time, and DuckDB reads the layout."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from forwards_testing import (
    FRAME_DTYPES,
    HEADER,
    REFUSED_FILES,
    TYPED_HEADER,
    desk_settings,
    write_csv,
    write_xlsx,
)

from forecasting.config import PROJECT_ROOT, Settings
from forecasting.forwards import FORWARD_COLUMNS, ForwardsFileError
from forecasting.lake.files import CorruptFile, LakeBusy, LakeFS, write_lock
from forecasting.lake.forward_store import (
    LandedForwards,
    forward_files,
    land_forwards,
    read_forwards,
    trade_date_file,
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return desk_settings(make_settings, lake_lock_wait_s=0)


@pytest.fixture
def lake(settings: Settings) -> LakeFS:
    return LakeFS.of(settings)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def lake_files(settings: Settings) -> dict[str, bytes]:
    """Every file under the lake root (the lock and temporaries too) with its bytes."""
    root = Path(settings.lake_root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def landed(tmp_path: Path, settings: Settings, name: str, *lines: str) -> LandedForwards:
    return land_forwards(settings, [write_csv(tmp_path, name, *lines)])


def prices(frame: pd.DataFrame) -> dict[tuple[str, str, date], float]:
    return {(r.zone, r.load, r.delivery_start): r.price for r in frame.itertuples()}


# --- Landing --------------------------------------------------------------------------------------


def test_landing_writes_one_file_per_trade_date(tmp_path: Path, settings: Settings, lake: LakeFS) -> None:
    result = landed(
        tmp_path,
        settings,
        "desk.csv",
        HEADER,
        "2024-01-15,NO1,2024-02,base,61.25",
        "2024-01-15,SYS,2024-Q2,peak,-3.5",
        "2024-01-16,NO1,2024-02,base,62",
    )
    day_files = (trade_date_file(lake, date(2024, 1, 15)), trade_date_file(lake, date(2024, 1, 16)))
    assert result == LandedForwards(3, 0, (date(2024, 1, 15), date(2024, 1, 16)), day_files)
    assert sorted(lake_files(settings)) == [
        "forwards/trade_date=2024-01-15/data.parquet",
        "forwards/trade_date=2024-01-16/data.parquet",
    ]


def test_the_lake_gives_back_the_forwards_frame(tmp_path: Path, settings: Settings, lake: LakeFS) -> None:
    path = write_csv(
        tmp_path, "desk.csv", HEADER, "2024-01-15,NO1,2024-02,base,61.25", "2024-01-15,SYS,2024,peak,55"
    )
    land_forwards(settings, [path])
    from_lake = read_forwards(lake)
    assert list(from_lake.columns) == FORWARD_COLUMNS
    assert from_lake.dtypes.astype(str).to_dict() == FRAME_DTYPES
    assert list(from_lake["price"]) == [61.25, 55.0]
    first = from_lake.iloc[0]
    assert (first["trade_date"], first["zone"], first["delivery_end"]) == (
        date(2024, 1, 15),
        "NO1",
        date(2024, 2, 29),
    )
    assert (first["published_at"], first["source"]) == (utc("2024-01-15 17:00"), "desk.csv")


def test_an_xlsx_file_lands(tmp_path: Path, settings: Settings, lake: LakeFS) -> None:
    rows = [
        ["Trade_Date", "Area", "Product", "Load", "Price"],
        [datetime(2024, 1, 15), "NO2", "2024-W05", "Peak", 48.5],
    ]
    result = land_forwards(settings, [write_xlsx(tmp_path, "desk.xlsx", rows)])
    assert result.rows_new == 1
    row = read_forwards(lake).iloc[0]
    assert (row["zone"], row["load"], row["delivery_start"], row["price"]) == (
        "NO2",
        "peak",
        date(2024, 1, 29),
        48.5,
    )
    assert row["source"] == "desk.xlsx"


def test_landing_the_same_file_again_changes_nothing(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path, "desk.csv", HEADER, "2024-01-15,NO1,2024-02,base,61.25", "2024-01-15,NO2,2024-02,base,60"
    )
    land_forwards(settings, [path])
    before = lake_files(settings)
    assert land_forwards(settings, [path]) == LandedForwards(0, 2, (date(2024, 1, 15),), ())
    assert lake_files(settings) == before


def test_a_second_file_of_a_trade_date_adds_to_its_file(
    tmp_path: Path, settings: Settings, lake: LakeFS
) -> None:
    landed(tmp_path, settings, "morning.csv", HEADER, "2024-01-15,NO1,2024-02,base,61.25")
    result = landed(
        tmp_path,
        settings,
        "evening.csv",
        HEADER,
        "2024-01-15,NO1,2024-02,base,61.25",
        "2024-01-15,NO1,2024-03,base,58",
    )
    assert (result.rows_new, result.rows_unchanged) == (1, 1)
    frame = read_forwards(lake)
    assert list(frame["source"]) == ["morning.csv", "evening.csv"]  # a landed row keeps its source


def test_the_same_row_in_two_files_of_one_landing_lands_once(tmp_path: Path, settings: Settings) -> None:
    first = write_csv(tmp_path, "a.csv", HEADER, "2024-01-15,NO1,2024-02,base,61.25")
    second = write_csv(tmp_path, "b.csv", HEADER, "2024-01-15,NO1,2024-02,base,61.25")
    result = land_forwards(settings, [first, second])
    assert (result.rows_new, result.rows_unchanged) == (1, 1)


def test_landing_no_file_changes_nothing(settings: Settings) -> None:
    assert land_forwards(settings, []) == LandedForwards(0, 0, (), ())
    assert not Path(settings.lake_root).exists()


# --- EPADs ----------------------------------------------------------------------------------------


def test_an_epad_resolves_against_a_system_forward_already_landed(
    tmp_path: Path, settings: Settings, lake: LakeFS
) -> None:
    landed(tmp_path, settings, "system.csv", HEADER, "2024-01-15,SYS,2024-Q2,base,50.5")
    landed(tmp_path, settings, "epads.csv", TYPED_HEADER, "2024-01-15,NO1,2024-Q2,base,-1.25,epad")
    frame = read_forwards(lake, zones=["NO1"])
    assert frame[["zone", "price", "quoted_as", "source"]].values.tolist() == [
        ["NO1", 49.25, "system+epad", "epads.csv"]
    ]


def test_an_epad_resolves_against_a_system_forward_of_another_file_landed_with_it(
    tmp_path: Path, settings: Settings, lake: LakeFS
) -> None:
    epads = write_csv(tmp_path, "epads.csv", TYPED_HEADER, "2024-01-15,NO2,2024-W05,peak,3,epad")
    system = write_csv(tmp_path, "system.csv", HEADER, "2024-01-15,SYS,2024-W05,peak,70")
    land_forwards(settings, [epads, system])
    assert prices(read_forwards(lake)) == {
        ("NO2", "peak", date(2024, 1, 29)): 73.0,
        ("SYS", "peak", date(2024, 1, 29)): 70.0,
    }


def test_a_system_forward_of_another_trade_date_does_not_resolve_an_epad(
    tmp_path: Path, settings: Settings
) -> None:
    landed(tmp_path, settings, "system.csv", HEADER, "2024-01-12,SYS,2024-Q2,base,50.5")
    before = lake_files(settings)
    with pytest.raises(ForwardsFileError, match=r"epads\.csv:2: EPAD without a system forward"):
        landed(tmp_path, settings, "epads.csv", TYPED_HEADER, "2024-01-15,NO1,2024-Q2,base,-1.25,epad")
    assert lake_files(settings) == before


# --- Refusals: nothing lands ----------------------------------------------------------------------


@pytest.fixture
def lake_with_a_day(tmp_path: Path, settings: Settings) -> dict[str, bytes]:
    """A lake that holds one landed trade date; its files and bytes."""
    landed(
        tmp_path,
        settings,
        "earlier.csv",
        HEADER,
        "2024-01-04,SYS,2024-02,base,60",
        "2024-01-04,NO1,2024-02,base,61",
    )
    return lake_files(settings)


@pytest.mark.parametrize(("lines", "says"), list(REFUSED_FILES.values()), ids=list(REFUSED_FILES))
def test_a_bad_file_lands_nothing_of_any_file(
    tmp_path: Path, settings: Settings, lake_with_a_day: dict[str, bytes], lines: tuple[str, ...], says: str
) -> None:
    good = write_csv(tmp_path, "good.csv", HEADER, "2024-01-05,NO2,2024-02,base,59")
    bad = write_csv(tmp_path, "desk.csv", *lines)
    with pytest.raises(ForwardsFileError) as caught:
        land_forwards(settings, [good, bad])
    assert says in str(caught.value)
    assert lake_files(settings) == lake_with_a_day


def test_an_unreadable_workbook_lands_nothing(
    tmp_path: Path, settings: Settings, lake_with_a_day: dict[str, bytes]
) -> None:
    bad = tmp_path / "desk.xlsx"
    bad.write_bytes(b"\x00not a workbook")
    with pytest.raises(ForwardsFileError, match=r"desk\.xlsx: unreadable file"):
        land_forwards(settings, [bad])
    assert lake_files(settings) == lake_with_a_day


def test_a_landed_settlement_does_not_change(
    tmp_path: Path, settings: Settings, lake_with_a_day: dict[str, bytes]
) -> None:
    corrected = write_csv(
        tmp_path,
        "corrected.csv",
        HEADER,
        "2024-01-05,NO1,2024-02,base,59",
        "2024-01-04,NO1,2024-02,base,61.5",
    )
    with pytest.raises(ForwardsFileError) as caught:
        land_forwards(settings, [corrected])
    message = str(caught.value)
    assert (
        "corrected.csv:3: price 61.5 differs from 61 landed from earlier.csv for the NO1 base 2024-02"
        in message
    )
    assert "the settlement of a trade date does not change" in message
    assert lake_files(settings) == lake_with_a_day


def test_two_files_of_one_landing_that_disagree_land_nothing(
    tmp_path: Path, settings: Settings, lake_with_a_day: dict[str, bytes]
) -> None:
    first = write_csv(tmp_path, "a.csv", HEADER, "2024-01-05,NO1,2024-02,base,59")
    second = write_csv(
        tmp_path, "b.csv", HEADER, "2024-01-05,NO2,2024-02,base,58", "2024-01-05,NO1,2024-02,base,59.5"
    )
    with pytest.raises(ForwardsFileError, match=r"b\.csv:3: price 59.5 differs from 59 in .*a\.csv:2"):
        land_forwards(settings, [first, second])
    assert lake_files(settings) == lake_with_a_day


def test_a_corrupt_lake_file_is_named_and_nothing_lands(
    tmp_path: Path, settings: Settings, lake: LakeFS, lake_with_a_day: dict[str, bytes]
) -> None:
    broken = Path(trade_date_file(lake, date(2024, 1, 4)))
    broken.write_bytes(b"PAR1 truncated")
    before = lake_files(settings)
    with pytest.raises(CorruptFile, match=str(broken)):
        read_forwards(lake)
    with pytest.raises(CorruptFile, match=str(broken)):
        landed(tmp_path, settings, "desk.csv", HEADER, "2024-01-04,NO2,2024-02,base,59")
    assert lake_files(settings) == before


def test_a_landing_waits_for_no_one_when_the_lake_is_locked(
    tmp_path: Path, settings: Settings, lake: LakeFS, lake_with_a_day: dict[str, bytes]
) -> None:
    with write_lock(lake, "another run"), pytest.raises(LakeBusy):
        landed(tmp_path, settings, "desk.csv", HEADER, "2024-01-05,NO2,2024-02,base,59")
    assert lake_files(settings) == lake_with_a_day


# --- As-of reads ----------------------------------------------------------------------------------


def test_a_settlement_is_invisible_before_its_settlement_time(
    tmp_path: Path, settings: Settings, lake: LakeFS
) -> None:
    landed(tmp_path, settings, "desk.csv", HEADER, "2024-01-15,NO1,2024-02,base,61.25")
    assert read_forwards(lake, as_of=utc("2024-01-15 16:59:59")).empty  # 17:59:59 in Oslo
    assert len(read_forwards(lake, as_of=utc("2024-01-15 17:00"))) == 1
    assert len(read_forwards(lake, as_of=pd.Timestamp("2024-01-15 18:00", tz="Europe/Oslo"))) == 1


def test_the_newest_trade_date_known_at_as_of_wins(tmp_path: Path, settings: Settings, lake: LakeFS) -> None:
    landed(
        tmp_path,
        settings,
        "monday.csv",
        HEADER,
        "2024-01-15,NO1,2024-02,base,61.25",
        "2024-01-15,NO1,2024-03,base,55",
    )
    landed(tmp_path, settings, "tuesday.csv", HEADER, "2024-01-16,NO1,2024-02,base,63")
    february, march = ("NO1", "base", date(2024, 2, 1)), ("NO1", "base", date(2024, 3, 1))
    assert prices(read_forwards(lake, as_of=utc("2024-01-16 12:00"))) == {february: 61.25, march: 55.0}
    assert prices(read_forwards(lake, as_of=utc("2024-01-16 17:00"))) == {february: 63.0, march: 55.0}
    assert prices(read_forwards(lake)) == {february: 63.0, march: 55.0}


def test_a_read_keeps_only_the_zones_asked_for(tmp_path: Path, settings: Settings, lake: LakeFS) -> None:
    landed(
        tmp_path,
        settings,
        "desk.csv",
        HEADER,
        "2024-01-15,NO1,2024-02,base,61",
        "2024-01-15,SYS,2024-02,base,60",
    )
    assert list(read_forwards(lake, zones=["SYS"])["zone"]) == ["SYS"]


def test_an_empty_forwards_area_reads_as_an_empty_frame(lake: LakeFS) -> None:
    frame = read_forwards(lake, as_of=utc("2024-01-15 17:00"))
    assert frame.empty and list(frame.columns) == FORWARD_COLUMNS
    assert frame.dtypes.astype(str).to_dict() == FRAME_DTYPES


def test_duckdb_reads_the_forwards_area_with_hive_partitioning(
    tmp_path: Path, settings: Settings, lake: LakeFS
) -> None:
    landed(
        tmp_path,
        settings,
        "desk.csv",
        HEADER,
        "2024-01-15,NO1,2024-02,base,61.25",
        "2024-01-16,NO1,2024-02,base,63",
    )
    rows = duckdb.sql(
        f"SELECT trade_date, zone, delivery_start, price FROM read_parquet('{lake.path('forwards')}/*/*.parquet', "
        "hive_partitioning = true) ORDER BY trade_date"
    ).fetchall()
    assert rows == [
        (date(2024, 1, 15), "NO1", date(2024, 2, 1), 61.25),
        (date(2024, 1, 16), "NO1", date(2024, 2, 1), 63.0),
    ]


# --- Configured files -----------------------------------------------------------------------------


def test_configured_patterns_expand_to_the_files_there(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    desk = (tmp_path / "desk").resolve()
    desk.mkdir()
    for name in ("2024-01-15.csv", "2024-01-16.xlsx", "~$2024-01-16.xlsx", "notes.txt"):
        (desk / name).write_text("")
    relative = os.path.relpath(desk, PROJECT_ROOT)  # relative patterns are relative to the project root
    settings = make_settings(
        forwards={
            "files": [f"{relative}/*.csv", str(desk / "*.xlsx"), str(desk / "2024-01-15.csv"), "none/*.csv"]
        }
    )
    assert forward_files(settings) == [desk / "2024-01-15.csv", desk / "2024-01-16.xlsx"]


def test_no_configured_file_is_no_file(make_settings: Callable[..., Settings]) -> None:
    assert forward_files(make_settings()) == []
