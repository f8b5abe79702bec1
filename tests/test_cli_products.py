"""`spotcast products` and `spotcast forwards` as the desk uses them, on the lake of a real tiny run
(backfill, train, issue): the product table per zone, the forward view once the desk's file is
landed, P(settle > X) from the stored samples, exports, and the one-line refusals."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest
from forwards_testing import HEADER, write_csv
from spotcast_testing import issue_tiny_forecast, tiny_config

from forecasting.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from forecasting.config import load_settings
from forecasting.jobs.forecast import IssuedForecast
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import read_product_forecast
from forecasting.products import VIEW_COLUMNS, probability_above

ZONES = ["NO1", "NO2"]
HISTORY_START = "2018-09-01"
AS_OF = pd.Timestamp("2019-03-05 13:30", tz="UTC")  # 14:30 Oslo, Tuesday: Wednesday's prices are out
# Settled Monday 2019-03-04 at 18:00 Oslo, before the issue: the NO1 week 11 and March base forwards.
FORWARD_ROWS = ("2019-03-04,NO1,2019-W11,base,45.5", "2019-03-04,NO1,2019-03,base,47.25")


@pytest.fixture(scope="module")
def issued_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IssuedForecast]:
    """The folder of a tiny run's lake and models, and the forecast it issued."""
    folder = tmp_path_factory.mktemp("issued")
    return folder, issue_tiny_forecast(tiny_config(folder, ZONES, HISTORY_START), AS_OF)


@pytest.fixture
def config(issued_run: tuple[Path, IssuedForecast], tmp_path: Path) -> str:
    """A configuration of a copy of the issued lake: each test lands its own forwards."""
    shutil.copytree(issued_run[0] / "lake", tmp_path / "lake")
    return str(tiny_config(tmp_path, ZONES, HISTORY_START))


def _lake(config: str) -> LakeFS:
    return LakeFS.open(load_settings(config).lake_root)


def _forwards_file(folder: Path, *rows: str) -> Path:
    return write_csv(folder, "settlement.csv", HEADER, *rows)


def test_products_print_each_zone_and_say_that_no_forward_was_given(config, capsys):
    assert main(["products", "--config", config]) == EXIT_OK
    out = capsys.readouterr().out
    assert "products of the issue of 2019-03-05 (issued 2019-03-05 13:30 UTC)" in out
    assert "\nNO1\n" in out and "\nNO2\n" in out
    for column in ("product", "settled", "mean", "p10", "p50", "p90"):
        assert column in out
    assert "2019-W11 base" in out and "2019-W11 peak" in out and "BOM 2019-03 base" in out
    assert "no forward given" in out and "spotcast forwards land FILE" in out
    assert "P(>fwd)" not in out


def test_products_of_some_zones_and_kinds(config, capsys):
    assert main(["products", "--config", config, "--zones", "NO2", "--kinds", "week"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "\nNO2\n" in out and "\nNO1\n" not in out
    assert "2019-W11 base" in out and "2019-03-07 base" not in out


def test_landed_forwards_show_and_stand_against_our_distribution(config, tmp_path, capsys):
    path = _forwards_file(tmp_path, *FORWARD_ROWS)

    assert main(["forwards", "land", str(path), "--config", config]) == EXIT_OK
    assert "2 row(s) new, 0 unchanged; trade date(s) 2019-03-04" in capsys.readouterr().out
    assert main(["forwards", "land", str(path), "--config", config]) == EXIT_OK
    assert "0 row(s) new, 2 unchanged" in capsys.readouterr().out

    assert main(["forwards", "show", "--config", config, "--as-of", "2019-03-05T12:00"]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "2 forward(s) published by 2019-03-05 12:00 UTC" in shown
    assert "2019-W11" in shown and "45.50" in shown and "settlement.csv" in shown

    assert main(["products", "--config", config, "--zones", "NO1"]) == EXIT_OK
    out = capsys.readouterr().out
    week = next(line for line in out.splitlines() if line.strip().startswith("2019-W11 base"))
    assert "45.50" in week and "2019-03-04" in week and "%" in week
    for column in ("forward", "fwd pctl", "P(>fwd)", "premium", "EUR/MW"):
        assert column in out
    assert "no forward given" not in out


def test_a_forward_settled_after_the_issue_is_not_set_against_it(config, tmp_path, capsys):
    path = _forwards_file(tmp_path, "2019-03-05,NO1,2019-W11,base,45.5")  # settles at 18:00, after 14:30

    assert main(["forwards", "land", str(path), "--config", config]) == EXIT_OK
    assert main(["products", "--config", config]) == EXIT_OK
    assert "no forward given" in capsys.readouterr().out


def test_a_refused_forwards_file_is_one_line_naming_file_and_line(config, tmp_path, capsys):
    path = _forwards_file(tmp_path, FORWARD_ROWS[0], "2019-03-04,NO9,2019-W11,base,45.5")

    assert main(["forwards", "land", str(path), "--config", config]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{path}:3: unknown area 'NO9'" in err
    assert main(["forwards", "show", "--config", config]) == EXIT_OK
    assert "no forwards landed" in capsys.readouterr().out  # nothing of a refused file lands


def test_above_is_the_share_of_the_stored_samples_above_the_level(config, capsys):
    products = read_product_forecast(_lake(config))
    level = float(np.median(products.table["mean"]))

    assert main(["products", "--config", config, "--above", f"{level}", "--kinds", "month"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"P(>{level:g})" in out
    month = products.table["product"] == "2019-03 base"
    expected = probability_above(products, level)[month.to_numpy()][0]
    line = next(line for line in out.splitlines() if line.strip().startswith("2019-03 base"))
    assert line.split()[-1] == f"{expected:.0%}"


def test_out_writes_the_product_view_with_the_probability_column(config, tmp_path, capsys):
    out = tmp_path / "products.parquet"

    assert main(["products", "--config", config, "--above", "40", "--out", str(out)]) == EXIT_OK
    assert f"written to {out}" in capsys.readouterr().out
    table = pd.read_parquet(out)
    assert list(table.columns) == [*VIEW_COLUMNS, "p_settle_above_40"]
    assert set(table["zone"]) == set(ZONES) and table["p_settle_above_40"].between(0, 1).all()


def test_out_xlsx_writes_the_issue_as_a_workbook_with_the_probability_column(config, tmp_path, capsys):
    """`products --out x.xlsx`: the stored issue's hourly sheet per asked zone, Weekly, and the shown
    products with P(settle > X) from the stored samples, as a trader opens it."""
    out = tmp_path / "products.xlsx"
    args = ["products", "--config", config, "--zones", "NO1", "--kinds", "week", "month", "--above", "40"]

    assert main([*args, "--out", str(out)]) == EXIT_OK
    assert f"written to {out}" in capsys.readouterr().out
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["NO1", "Weekly", "Products", "About"]
    products = read_product_forecast(_lake(config), zones=["NO1"])
    shown = products.table["kind"].isin(["week", "month"]).to_numpy()
    rows = list(book["Products"].iter_rows(values_only=True))
    column = {header: i for i, header in enumerate(rows[0])}
    assert [r[column["product"]] for r in rows[1:]] == list(products.table["product"][shown])
    assert {r[column["kind"]] for r in rows[1:]} == {"week", "month"}
    np.testing.assert_allclose(
        [r[column["P(settle > 40 EUR/MWh)"]] for r in rows[1:]],
        probability_above(products, 40.0)[shown],
        rtol=1e-15,
    )
    assert book["Products"].cell(2, column["P(settle > 40 EUR/MWh)"] + 1).number_format == "0%"
    hourly = list(book["NO1"].iter_rows(min_row=2, values_only=True))
    assert len(hourly) == 672 and hourly[0][0] == datetime(2019, 3, 7, 0, 0)
    assert {r[0] for r in book["Weekly"].iter_rows(min_row=2, values_only=True)} == {"NO1"}


def test_a_bad_out_is_refused_in_one_line_before_anything_is_read(config, tmp_path, capsys):
    folder = tmp_path / "products.csv"
    folder.mkdir()

    assert main(["products", "--config", config, "--out", str(folder)]) == EXIT_USAGE
    assert "is a folder" in capsys.readouterr().err
    assert main(["forecast", "--config", config, "--out", str(folder)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"spotcast: --out {folder} is a folder" in err
    with pytest.raises(SystemExit) as usage:
        main(["products", "--config", config, "--out", str(tmp_path / "products.txt")])
    assert usage.value.code == EXIT_USAGE


def test_an_instant_without_a_stored_issue_says_how_to_issue_one(config, capsys):
    assert main(["products", "--config", config, "--as-of", "2019-03-01T12:00"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "no forecast issued on 2019-03-01" in err and "spotcast forecast --as-of 2019-03-01T12:00" in err


def test_an_issue_of_a_model_without_covariates_shows_its_products(config, capsys):
    # Such a model has no input status rows: the issue instant is its forecast rows'.
    inputs = Path(load_settings(config).lake_root, "forecast_inputs", "issue_date=2019-03-05", "data.parquet")
    pq.write_table(pq.read_table(inputs).slice(0, 0), inputs)

    assert main(["products", "--config", config]) == EXIT_OK
    assert "products of the issue of 2019-03-05 (issued 2019-03-05 13:30 UTC)" in capsys.readouterr().out


def test_an_issue_stored_without_its_products_says_how_to_reissue_it(config, capsys):
    shutil.rmtree(Path(load_settings(config).lake_root) / "products")

    assert main(["products", "--config", config]) == EXIT_ERROR
    assert (
        "spotcast: the issue of 2019-03-05 was stored without its products: re-issue it with "
        "`spotcast forecast --as-of 2019-03-05T13:30`"
    ) in capsys.readouterr().err


def test_products_are_hive_partitioned_parquet_that_duckdb_reads(config):
    root = load_settings(config).lake_root
    rows = duckdb.sql(
        f"""SELECT issue_date, zone, count(*) AS products, min(len(product_samples)) AS paths
        FROM read_parquet('{root}/products/**/*.parquet', hive_partitioning = true)
        WHERE kind = 'week' GROUP BY ALL ORDER BY zone"""
    ).df()
    assert rows["zone"].tolist() == ZONES
    assert (rows["issue_date"].astype(str) == "2019-03-05").all()
    assert (rows["products"] >= 8).all() and (rows["paths"] == 20).all()  # TINY_PARAMS: 20 samples
