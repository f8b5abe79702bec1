"""The workbook's sheets on a forecast frame built as every forecaster builds it (make_forecast_frame),
across the October DST change, where a wall clock shows 02:00 twice. The workbook of a real trained
model's issue is tested in tests/jobs/test_train_forecast.py and tests/test_cli_products.py."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np
import openpyxl
import pandas as pd
import pytest

from forecasting.forecast_frame import forecast_hours, make_forecast_frame
from forecasting.reports.export import check_destination
from forecasting.reports.workbook import write_workbook
from forecasting.schema import QUANTILE_COLUMNS

ISSUED_AT = pd.Timestamp("2023-10-24 12:00", tz="UTC")


@pytest.fixture
def forecast() -> pd.DataFrame:
    """NO1 and DE-LU, from Wednesday 25 October 2023 00:00 Oslo/Berlin: the clocks go back on the 29th."""
    hours = forecast_hours(pd.Timestamp("2023-10-24 22:00", tz="UTC"))
    rng = np.random.default_rng(0)
    frames = []
    for zone, timezone in (("NO1", "Europe/Oslo"), ("DE-LU", "Europe/Berlin")):
        quantiles = 50 + rng.normal(0, 10, size=(len(hours), 9))
        mean = quantiles.mean(axis=1)
        frames.append(make_forecast_frame(zone, timezone, ISSUED_AT, hours, mean, quantiles, "m-1"))
    return pd.concat(frames, ignore_index=True)


def test_zone_sheets_show_the_wall_clock_with_both_0200_hours_of_october(forecast, tmp_path):
    out = write_workbook(
        tmp_path / "f.xlsx", forecast, None, {"NO1": "Europe/Oslo", "DE-LU": "Europe/Berlin"}
    )
    book = openpyxl.load_workbook(out)

    assert book.sheetnames == ["NO1", "DE-LU", "Weekly", "About"]
    sheet = book["DE-LU"]
    assert [c.value for c in sheet[1]][:4] == [
        "local time (Europe/Berlin)",
        "UTC offset",
        "delivery hour (UTC)",
        "horizon hour",
    ]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    twice = [r for r in rows if r[0] == datetime(2023, 10, 29, 2, 0)]
    assert [(r[1], r[2]) for r in twice] == [
        ("+02:00", datetime(2023, 10, 29, 0, 0)),
        ("+01:00", datetime(2023, 10, 29, 1, 0)),
    ]
    utc = [r[2] for r in rows]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(utc))
    frame = forecast[forecast["zone"] == "DE-LU"]
    # Equal to the last of the 15–16 significant digits an Excel cell holds.
    np.testing.assert_allclose(
        np.array([r[4:] for r in rows]), frame[["mean", *QUANTILE_COLUMNS]].to_numpy(), rtol=1e-15
    )


def test_an_unknown_time_zone_still_says_whose_clock_it_is(forecast, tmp_path):
    book = openpyxl.load_workbook(write_workbook(tmp_path / "f.xlsx", forecast, None, {}))
    assert book["NO1"]["A1"].value == "local time (the zone's wall clock)"


def test_a_workbook_is_replaced_whole_and_leaves_no_partial_file(forecast, tmp_path):
    out = tmp_path / "f.xlsx"
    out.write_bytes(b"an older workbook")
    write_workbook(out, forecast, None, {"NO1": "Europe/Oslo"})

    assert openpyxl.load_workbook(out).sheetnames[0] == "NO1"
    assert [p.name for p in tmp_path.iterdir()] == ["f.xlsx"]


def test_xlsx_is_an_accepted_destination(tmp_path):
    check_destination(tmp_path / "desk" / "forecast.xlsx")  # no UsageError
