"""Desk forwards files written for tests: CSV text as the desk writes it, and real .xlsx workbooks
(openpyxl), plus the settings of a desk that trades a custom winter period."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import openpyxl

from forecasting.config import Settings

WINTER = {"name": "Winter-24", "start": "2024-11-01", "end": "2025-03-31", "load": "peak"}
HEADER = "trade_date,area,product,load,price"
# The forwards frame's dtypes, as documented in forecasting/forwards.py.
FRAME_DTYPES = {
    "trade_date": "object",
    "zone": "object",
    "load": "object",
    "delivery_start": "object",
    "delivery_end": "object",
    "price": "float64",
    "quoted_as": "object",
    "published_at": "datetime64[ns, UTC]",
    "source": "object",
}


def write_csv(folder: Path, name: str, *lines: str) -> Path:
    """A file of these lines (the header included), each ended by a newline."""
    path = folder / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_xlsx(folder: Path, name: str, rows: Sequence[Sequence[object]]) -> Path:
    """A workbook whose first sheet holds these rows from row 1 on (an empty row stays empty)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(row, start=1):
            sheet.cell(row=number, column=column, value=value)
    path = folder / name
    workbook.save(path)
    return path


def desk_settings(make_settings: Callable[..., Settings], **overrides: object) -> Settings:
    """Settings of a desk (zones NO1, NO2) with a custom winter period, settling at 18:00 Oslo."""
    values: dict[str, object] = {
        "products": {"custom": [WINTER]},
        "forwards": {"settlement_time": "18:00"},
    }
    values.update(overrides)
    return make_settings(**values)


TYPED_HEADER = "trade_date,area,product,load,price,type"
PERIOD_HEADER = "trade_date,area,delivery_start,delivery_end,load,price"
GOOD_ROW = "2024-01-05,NO1,2024-03,base,50"


def _bad_row(row: str, reason: str) -> tuple[tuple[str, ...], str]:
    """A file of a good row and then `row` (line 3), refused for `reason`."""
    return (HEADER, GOOD_ROW, row), f"desk.csv:3: {reason}"


def _bad_period(row: str, reason: str) -> tuple[tuple[str, ...], str]:
    return (PERIOD_HEADER, row), f"desk.csv:2: {reason}"


# Every way a desk file is refused: the lines of `desk.csv` → what the refusal says (file:line: reason).
REFUSED_FILES: dict[str, tuple[tuple[str, ...], str]] = {
    "unknown area": _bad_row(
        "2024-01-05,NO9,2024-02,base,50", "unknown area 'NO9' (configured: NO1, NO2; or SYS)"
    ),
    "text price": _bad_row("2024-01-05,NO1,2024-02,base,fifty", "price 'fifty' is not a decimal number"),
    "decimal comma": _bad_row(
        '2024-01-05,NO1,2024-02,base,"50,5"', "price '50,5' is not a decimal number with a point"
    ),
    "empty price": _bad_row("2024-01-05,NO1,2024-02,base,", "empty price"),
    "infinite price": _bad_row("2024-01-05,NO1,2024-02,base,inf", "price 'inf' is not a finite number"),
    "NaN price": _bad_row("2024-01-05,NO1,2024-02,base,NaN", "price 'NaN' is not a finite number"),
    "bad trade date": _bad_row(
        "05.01.2024,NO1,2024-02,base,50", "bad trade_date '05.01.2024': a date YYYY-MM-DD"
    ),
    "no such trade date": _bad_row(
        "2024-02-30,NO1,2024-02,base,50", "bad trade_date '2024-02-30': no such day"
    ),
    "unknown product": _bad_row("2024-01-05,NO1,2024-M02,base,50", "unknown product code '2024-M02'"),
    "no such week": _bad_row(
        "2024-01-05,NO1,2023-W53,base,50", "product '2023-W53': 2023 has no ISO week 53"
    ),
    "no such month": _bad_row("2024-01-05,NO1,2024-13,base,50", "product '2024-13': no month 13"),
    "unknown load": _bad_row("2024-01-05,NO1,2024-02,offpeak,50", "load 'offpeak' is not one of base, peak"),
    "duplicate": _bad_row(
        "2024-01-05,no1,2024-03,BASE,50", "duplicate of line 2 (same trade_date, area, type"
    ),
    "end before start": _bad_period(
        "2024-01-05,NO1,2024-02-10,2024-02-01,base,50",
        "delivery_end 2024-02-01 is before delivery_start 2024-02-10",
    ),
    "period of no product": _bad_period(
        "2024-01-05,NO1,2024-01-02,2024-01-08,base,50",
        "delivery 2024-01-02…2024-01-08 is no product: not one whole day, ISO week",
    ),
    "bad delivery date": _bad_period(
        "2024-01-05,NO1,2024-02-01,2024/02/29,base,50", "bad delivery_end '2024/02/29'"
    ),
    "no period": _bad_period("2024-01-05,NO1,,,base,50", "no product and no delivery_start/delivery_end"),
    "product and period disagree": (
        (
            "trade_date,area,product,delivery_start,delivery_end,load,price",
            "2024-01-05,NO1,2024-03,2024-03-01,2024-03-30,base,50",
        ),
        "desk.csv:2: product '2024-03' delivers 2024-03-01…2024-03-31, not 2024-03-01…2024-03-30",
    ),
    "EPAD without a system forward": (
        (TYPED_HEADER, "2024-01-05,SYS,2024-02,peak,60,forward", "2024-01-05,NO1,2024-02,base,2,epad"),
        "desk.csv:3: EPAD without a system forward: no SYS base forward for delivery 2024-02-01…2024-02-29",
    ),
    "EPAD of the system price": (
        (TYPED_HEADER, "2024-01-05,SYS,2024-02,base,2,epad"),
        "desk.csv:2: an EPAD is the spread of an area over the system price",
    ),
    "forward quoted again as an EPAD": (
        (
            TYPED_HEADER,
            "2024-01-05,SYS,2024-02,base,60,",
            "2024-01-05,NO1,2024-02,base,62,",
            "2024-01-05,NO1,2024-02,base,2,epad",
        ),
        "desk.csv:4: the NO1 base forward of line 3 quoted again",
    ),
    "unknown type": (
        (TYPED_HEADER, "2024-01-05,NO1,2024-02,base,2,swap"),
        "desk.csv:2: type 'swap' is not one of forward, epad",
    ),
    "missing column": (
        ("trade_date,area,product,load", "2024-01-05,NO1,2024-02,base"),
        "desk.csv:1: missing column(s): price",
    ),
    "missing period columns": (
        ("trade_date,area,delivery_start,load,price", "2024-01-05,NO1,2024-02-01,base,50"),
        "desk.csv:1: missing column(s): product (or delivery_start and delivery_end)",
    ),
    "column twice": ((f"{HEADER},Price", f"{GOOD_ROW},50"), "desk.csv:1: column 'price' appears twice"),
    "empty file": ((), "desk.csv: empty file: no header row"),
    "blank lines only": (("", ","), "desk.csv: empty file: no header row"),
    "header only": ((HEADER,), "desk.csv:1: no rows below the header"),
    "too many fields": ((HEADER, f"{GOOD_ROW},extra"), "desk.csv: unreadable file: Error tokenizing data"),
}
