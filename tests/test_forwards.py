"""The desk's forwards file (forecasting/forwards.py): real CSV files and real .xlsx workbooks read
into the forwards frame, product codes and delivery periods, EPADs resolved to area forwards, and
every refusal naming the file, the line and the reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
import pytest
from forwards_testing import FRAME_DTYPES, HEADER, REFUSED_FILES, desk_settings, write_csv, write_xlsx

from forecasting.config import CustomPeriod, Settings
from forecasting.errors import DataError
from forecasting.forwards import (
    FORWARD_COLUMNS,
    ForwardsFileError,
    empty_forwards_frame,
    product_of_period,
    product_period,
    read_forwards_file,
    settlement_published_at,
)

WINTER = CustomPeriod(name="Winter-24", start=date(2024, 11, 1), end=date(2025, 3, 31))


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return desk_settings(make_settings)


def refusal(path: Path, settings: Settings) -> str:
    with pytest.raises(ForwardsFileError) as caught:
        read_forwards_file(path, settings)
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return message


# --- Good files -----------------------------------------------------------------------------------


def test_a_good_csv_is_the_forwards_frame(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path,
        "desk-2024-01-15.csv",
        HEADER,
        "2024-01-15,NO1,2024-02,base,61.25",
        "2024-01-15,SYS,2024-Q2,peak,-3.5",
    )
    frame = read_forwards_file(path, settings)
    assert list(frame.columns) == FORWARD_COLUMNS
    assert frame.dtypes.astype(str).to_dict() == FRAME_DTYPES
    assert list(frame.index) == [2, 3]  # each row's line in the file
    first = frame.loc[2]
    assert (first["trade_date"], first["zone"], first["load"]) == (date(2024, 1, 15), "NO1", "base")
    assert (first["delivery_start"], first["delivery_end"]) == (date(2024, 2, 1), date(2024, 2, 29))
    assert (first["price"], first["quoted_as"], first["source"]) == (61.25, "forward", "desk-2024-01-15.csv")
    assert first["published_at"] == pd.Timestamp("2024-01-15 17:00", tz="UTC")  # 18:00 in Oslo, winter
    assert frame.loc[3, "price"] == -3.5 and frame.loc[3, "zone"] == "SYS"


def test_column_names_ignore_case_and_surrounding_spaces(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path, "f.csv", " Trade_Date , AREA,Product ,LOAD, Price", "2024-01-15, no2 ,2024-w03, Peak ,40"
    )
    row = read_forwards_file(path, settings).iloc[0]
    assert (row["zone"], row["load"], row["delivery_start"]) == ("NO2", "peak", date(2024, 1, 15))


def test_a_good_xlsx_reads_like_the_same_csv(tmp_path: Path, settings: Settings) -> None:
    csv = write_csv(
        tmp_path, "f.csv", HEADER, "2024-01-15,NO1,2024-02,base,61.25", "2024-01-15,NO2,2024,peak,50"
    )
    xlsx = write_xlsx(
        tmp_path,
        "f.xlsx",
        [
            ["trade_date", "area", "product", "load", "price"],
            [datetime(2024, 1, 15), "NO1", "2024-02", "base", 61.25],  # a date cell and a number cell
            ["2024-01-15", "NO2", 2024, "peak", 50],
        ],
    )
    from_csv, from_xlsx = read_forwards_file(csv, settings), read_forwards_file(xlsx, settings)
    pd.testing.assert_frame_equal(from_xlsx.drop(columns="source"), from_csv.drop(columns="source"))
    assert set(from_xlsx["source"]) == {"f.xlsx"}


@pytest.mark.parametrize(
    ("code", "start", "end"),
    [
        ("2024-02-29", date(2024, 2, 29), date(2024, 2, 29)),
        ("2024-W03", date(2024, 1, 15), date(2024, 1, 21)),
        ("2025-W01", date(2024, 12, 30), date(2025, 1, 5)),  # ISO week 1 starts in the year before
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2024-Q4", date(2024, 10, 1), date(2024, 12, 31)),
        ("2024", date(2024, 1, 1), date(2024, 12, 31)),
        ("winter-24", date(2024, 11, 1), date(2025, 3, 31)),
    ],
)
def test_every_product_code_is_its_delivery_period(
    tmp_path: Path, settings: Settings, code: str, start: date, end: date
) -> None:
    assert product_period(code, [WINTER]) == (start, end)
    assert product_of_period(start, end, [WINTER]) == (code.upper() if code[0].isdigit() else "Winter-24")
    path = write_csv(tmp_path, "f.csv", HEADER, f"2024-01-05,NO1,{code},base,50.0")
    row = read_forwards_file(path, settings).iloc[0]
    assert (row["delivery_start"], row["delivery_end"]) == (start, end)


def test_a_custom_period_is_quoted_in_either_load(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path, "f.csv", HEADER, "2024-01-05,NO1,Winter-24,base,80", "2024-01-05,NO1,Winter-24,peak,95"
    )
    assert list(read_forwards_file(path, settings)["load"]) == ["base", "peak"]


def test_delivery_start_and_end_instead_of_a_code(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path,
        "f.csv",
        "trade_date,area,delivery_start,delivery_end,load,price",
        "2024-01-05,NO1,2024-01-15,2024-01-21,base,50",
        "2024-01-05,NO1,2024-11-01,2025-03-31,peak,90",
    )
    frame = read_forwards_file(path, settings)
    assert list(frame["delivery_start"]) == [date(2024, 1, 15), date(2024, 11, 1)]
    assert list(frame["delivery_end"]) == [date(2024, 1, 21), date(2025, 3, 31)]


def test_a_product_and_its_own_period_may_both_be_given(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path,
        "f.csv",
        "trade_date,area,product,delivery_start,delivery_end,load,price",
        "2024-01-05,NO1,2024-03,2024-03-01,2024-03-31,base,50",
        "2024-01-05,NO1,,2024-04-01,2024-06-30,base,51",
    )
    assert list(read_forwards_file(path, settings)["delivery_end"]) == [date(2024, 3, 31), date(2024, 6, 30)]


def test_an_epad_is_the_system_forward_plus_the_spread(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path,
        "f.csv",
        "trade_date,area,product,load,price,type",
        "2024-01-05,NO1,2024-02,base,4.5,epad",
        "2024-01-05,SYS,2024-02,base,60.25,",
        "2024-01-05,NO2,2024-02,base,-2.25,EPAD",
    )
    frame = read_forwards_file(path, settings)
    assert frame[["zone", "price", "quoted_as"]].values.tolist() == [
        ["NO1", 64.75, "system+epad"],
        ["SYS", 60.25, "forward"],
        ["NO2", 58.0, "system+epad"],
    ]


def test_an_epad_resolves_against_system_forwards_given(tmp_path: Path, settings: Settings) -> None:
    system = read_forwards_file(
        write_csv(tmp_path, "sys.csv", HEADER, "2024-01-05,SYS,2024-02,peak,70"), settings
    )
    path = write_csv(
        tmp_path, "epad.csv", "trade_date,area,product,load,price,type", "2024-01-05,NO1,2024-02,peak,5,epad"
    )
    row = read_forwards_file(path, settings, system_forwards=system).iloc[0]
    assert (row["zone"], row["price"], row["quoted_as"]) == ("NO1", 75.0, "system+epad")


def test_publication_is_the_settlement_time_in_the_schedule_time_zone(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = desk_settings(make_settings, forwards={"settlement_time": "16:30"})
    path = write_csv(tmp_path, "f.csv", HEADER, "2024-07-01,NO1,2024-08,base,50")
    assert read_forwards_file(path, settings).iloc[0]["published_at"] == pd.Timestamp(
        "2024-07-01 14:30", tz="UTC"
    )


def test_a_settlement_time_a_clock_change_makes_odd_counts_late() -> None:
    # 02:30 is skipped on 31 March (the first instant after the gap: 03:00 CEST) and occurs twice on
    # 27 October (the second: 02:30 CET): an as-of read never sees a price before it settled.
    assert settlement_published_at(date(2024, 3, 31), time(2, 30), "Europe/Oslo") == pd.Timestamp(
        "2024-03-31 01:00", tz="UTC"
    )
    assert settlement_published_at(date(2024, 10, 27), time(2, 30), "Europe/Oslo") == pd.Timestamp(
        "2024-10-27 01:30", tz="UTC"
    )


def test_blank_lines_are_skipped_and_still_counted(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(
        tmp_path,
        "f.csv",
        HEADER,
        "2024-01-05,NO1,2024-02,base,50",
        "",
        ",,,,",
        "2024-01-05,NO9,2024-02,base,50",
    )
    assert "f.csv:5: unknown area 'NO9'" in refusal(path, settings)


def test_the_empty_frame_has_the_frame_dtypes() -> None:
    frame = empty_forwards_frame()
    assert list(frame.columns) == FORWARD_COLUMNS and frame.dtypes.astype(str).to_dict() == FRAME_DTYPES


# --- Refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "says"), list(REFUSED_FILES.values()), ids=list(REFUSED_FILES))
def test_a_bad_file_is_refused_naming_file_line_and_reason(
    tmp_path: Path, settings: Settings, lines: tuple[str, ...], says: str
) -> None:
    message = refusal(write_csv(tmp_path, "desk.csv", *lines), settings)
    assert says in message
    assert "refused (1 problem(s))" in message  # the good rows are not listed


def test_a_file_that_is_no_workbook_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "desk.xlsx"
    path.write_bytes(b"trade_date,area\n")
    assert "desk.xlsx: unreadable file: File is not a zip file" in refusal(path, settings)


def test_a_csv_that_is_not_text_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "desk.csv"
    path.write_bytes(b"\xff\xfe\x00\x81trade_date")
    assert "desk.csv: unreadable file: 'utf-8' codec can't decode" in refusal(path, settings)


def test_a_missing_file_is_refused(tmp_path: Path, settings: Settings) -> None:
    assert "desk.csv: unreadable file: [Errno 2] No such file or directory" in refusal(
        tmp_path / "desk.csv", settings
    )


def test_a_file_of_another_kind_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(tmp_path, "desk.txt", HEADER, "2024-01-05,NO1,2024-02,base,50")
    assert "desk.txt: not a .csv or .xlsx file (.txt)" in refusal(path, settings)


def test_an_xlsx_refusal_names_the_sheet_row(tmp_path: Path, settings: Settings) -> None:
    rows = [
        ["trade_date", "area", "product", "load", "price"],
        ["2024-01-05", "NO1", "2024-02", "base", 50],
        [],
    ]
    rows.append(["2024-01-05", "NO1", "2024-03", "base", "50,5"])
    assert "desk.xlsx:4: price '50,5' is not a decimal number" in refusal(
        write_xlsx(tmp_path, "desk.xlsx", rows), settings
    )


def test_a_product_in_an_excel_date_cell_is_refused(tmp_path: Path, settings: Settings) -> None:
    """Excel turns a typed `2024-03` into the date 2024-03-01: read as a day, a month's price would
    land as a day's."""
    rows = [
        ["trade_date", "area", "product", "load", "price"],
        ["2024-01-05", "NO1", datetime(2024, 3, 1), "base", 50],
    ]
    assert "desk.xlsx:2: product 2024-03-01 is an Excel date cell" in refusal(
        write_xlsx(tmp_path, "desk.xlsx", rows), settings
    )


def test_a_refusal_lists_the_first_problems_and_counts_the_rest(tmp_path: Path, settings: Settings) -> None:
    bad = [f"2024-01-05,NO9,2024-{month:02d},base,50" for month in range(1, 9)]
    message = refusal(write_csv(tmp_path, "desk.csv", HEADER, *bad), settings)
    assert message.startswith("forwards file ") and "refused (8 problem(s))" in message
    assert "desk.csv:6: unknown area" in message and "desk.csv:7:" not in message
    assert message.endswith("and 3 more problem(s)")


def test_a_refusal_is_a_data_error() -> None:
    assert issubclass(ForwardsFileError, DataError)
