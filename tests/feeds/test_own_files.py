"""A user's own history file read as it is, described by the replay feed's `format` (docs/own_zone.md):
the EPF benchmark's German file lands through the configuration alone, real zero prices kept; the
bundled Nordic (deepforkit) format still treats 0 as missing; other clocks, layouts and units."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import DEFAULT_CONFIG, SourceFormat, load_settings
from forecasting.errors import DataError
from forecasting.feeds.bundled import read_history_file, read_history_source
from forecasting.jobs.ingest import backfill, say_history_before_start
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import read_series
from forecasting.schema import DELIVERY_HOUR, SERIES_COL, VALUE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EPF_DE = PROJECT_ROOT / "tests" / "fixtures" / "epf" / "DE.csv"  # real, unchanged: 2012-01-09 … 01-29
DEEPFORKIT = PROJECT_ROOT / "tests" / "fixtures" / "deepforkit"
BUNDLED = PROJECT_ROOT / "data" / "bundled"
OWN_ZONE = PROJECT_ROOT / "docs" / "own_zone.md"
# The real zero price of the file: 2012-01-22 02:00 Berlin (CET) = 01:00 UTC, between 12.23 and -0.05.
ZERO_HOUR = pd.Timestamp("2012-01-22 01:00", tz="UTC")
GERMAN_FORMAT = SourceFormat(
    columns={"Price": "price_da", "Ampirion Load Forecast": "load_da"}, time_format="%Y-%m-%d %H:%M:%S"
)


def german_format(**change: object) -> SourceFormat:
    """GERMAN_FORMAT with `change`, validated as the configuration would be."""
    return SourceFormat.model_validate({**GERMAN_FORMAT.model_dump(), **change})


def documented_example() -> str:
    """The German example of docs/own_zone.md, as written there."""
    blocks = re.findall(r"```toml\n(.*?)```", OWN_ZONE.read_text(), flags=re.DOTALL)
    return next(block for block in blocks if 'name = "DE"' in block)


def german_config(folder: Path, history_start: str | None = None) -> Path:
    """The documented configuration over the default one, its source a folder holding the EPF file
    unchanged, the lake in `folder`."""
    source = folder / "my_zones"
    source.mkdir(parents=True)
    shutil.copy(EPF_DE, source / "DE.csv")
    example = documented_example().replace('source = "data/my_zones"', f'source = "{source}"')
    if history_start:
        example = re.sub(r'(?m)^start = "[0-9-]+"', f'start = "{history_start}"', example)
    path = folder / "spotcast.toml"
    path.write_text(
        f'extends = "{DEFAULT_CONFIG}"\nlake_root = "{folder / "lake"}"\nmodels_root = "{folder / "models"}"\n\n'
        + example
    )
    return path


def test_the_epf_german_file_lands_through_the_configuration_alone_with_its_zero_prices(tmp_path):
    settings = load_settings(german_config(tmp_path))

    report = backfill(settings)

    assert report.ok, report.problems()
    landed = read_series(LakeFS.open(settings.lake_root), zones=["DE"])
    prices = landed[landed[SERIES_COL] == "price_da"].set_index(DELIVERY_HOUR)[VALUE]
    load = landed[landed[SERIES_COL] == "load_da"].set_index(DELIVERY_HOUR)[VALUE]
    # every hour of the file, from 2012-01-09 00:00 CET: three weeks of 24 hours, none a hole
    assert prices.index[0] == pd.Timestamp("2012-01-08 23:00", tz="UTC")
    assert len(prices) == len(load) == 3 * 7 * 24
    hours = prices.loc[ZERO_HOUR - pd.Timedelta(hours=1) : ZERO_HOUR + pd.Timedelta(hours=2)]
    assert hours.tolist() == [12.23, 0.0, -0.05, -3.53]
    # values as in the file, hour by hour
    csv = pd.read_csv(EPF_DE)
    stamps = pd.to_datetime(csv.iloc[:, 0]).dt.tz_localize("Europe/Berlin").dt.tz_convert("UTC")
    assert (prices.to_numpy() == csv.set_index(stamps)["Price"].reindex(prices.index).to_numpy()).all()
    assert (load.to_numpy() == csv.set_index(stamps)["Ampirion Load Forecast"].reindex(load.index).to_numpy()).all()


def test_rows_before_the_history_start_are_named_with_the_start_that_lands_them(tmp_path, caplog):
    settings = load_settings(german_config(tmp_path, history_start="2012-01-16"))

    with caplog.at_level(logging.INFO, logger="spotcast.ingest"):
        assert backfill(settings).ok

    said = [(r.levelname, r.getMessage()) for r in caplog.records if "history.start" in r.getMessage()]
    assert said == [  # a start the user chose: said, not warned about
        (
            "INFO",
            "feeds.replay: 338 row(s) of the recording before history.start 2012-01-16 are not landed (DE "
            'from 2012-01-08 23:00 UTC); set [history] start = "2012-01-08" to land them',
        )
    ]
    landed = read_series(LakeFS.open(settings.lake_root), zones=["DE"])
    assert landed[DELIVERY_HOUR].min() == pd.Timestamp("2012-01-16", tz="UTC")


def test_history_before_the_default_start_is_a_warning(tmp_path, caplog):
    """Under the shipped default start (2015-01-01) the whole 2012 file would be left out."""
    settings = load_settings(german_config(tmp_path, history_start="2015-01-01"))

    with caplog.at_level(logging.INFO, logger="spotcast.ingest"):
        say_history_before_start(settings)

    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [
        (
            "WARNING",
            "feeds.replay: 1,008 row(s) of the recording before history.start 2015-01-01 are not landed (DE "
            'from 2012-01-08 23:00 UTC); set [history] start = "2012-01-08" to land them',
        )
    ]


def test_the_bundled_history_starting_at_local_midnight_is_not_reported(caplog):
    """The bundled history starts 2015-01-01 00:00 Oslo, an hour before the default start (UTC)."""
    settings = load_settings().with_zones(["NO1"])

    with caplog.at_level(logging.WARNING, logger="spotcast.ingest"):
        say_history_before_start(settings)

    assert not [r for r in caplog.records if "history.start" in r.getMessage()]


def test_the_bundled_nordic_format_still_treats_zero_as_missing():
    rows = read_history_source(DEEPFORKIT, {"NO1": "Europe/Oslo"})  # no format: the bundled one
    assert not (rows[VALUE] == 0).any()
    assert "solar_da" not in set(rows[SERIES_COL])  # Sol_DA is 0 throughout
    kept = read_history_source(DEEPFORKIT, {"NO1": "Europe/Oslo"}, SourceFormat(zero_is_missing=False))
    assert (kept[kept[SERIES_COL] == "solar_da"][VALUE] == 0).all()
    assert len(kept) > len(rows)


def test_zero_is_missing_can_be_asked_for_in_a_users_file():
    rows = read_history_file(EPF_DE, "DE", "Europe/Berlin", german_format(zero_is_missing=True))
    prices = rows[rows[SERIES_COL] == "price_da"].set_index(DELIVERY_HOUR)[VALUE]
    assert ZERO_HOUR not in prices.index and len(prices) == 3 * 7 * 24 - 1


def _nordic_hours(start: str, end: str) -> pd.DataFrame:
    """Real NO1 prices and load (UTC) of the bundled history, [start, end) UTC."""
    history = pd.read_parquet(BUNDLED / "NO1.parquet")
    keep = history[SERIES_COL].isin(["price_da", "load_actual"]) & history[DELIVERY_HOUR].between(
        pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"), inclusive="left"
    )
    return history[keep].pivot(index=DELIVERY_HOUR, columns=SERIES_COL, values=VALUE)


def _same_hours(rows: pd.DataFrame, wide: pd.DataFrame, column: str = "price_da") -> None:
    read = rows[rows[SERIES_COL] == column].set_index(DELIVERY_HOUR)[VALUE]
    pd.testing.assert_series_equal(read, wide[column], check_names=False, check_freq=False)


@pytest.mark.parametrize("stamps", ["true local 25-hour day", "UTC offsets", "UTC"])
def test_stamps_on_other_clocks_land_on_the_same_utc_hours(tmp_path, stamps):
    """The autumn day 2016-10-30 of NO1: its 25 real hours written three ways, read back the same."""
    wide = _nordic_hours("2016-10-29 22:00", "2016-10-31 23:00")
    local = wide.index.tz_convert("Europe/Oslo")
    time, clock = {
        "true local 25-hour day": (local.strftime("%d.%m.%Y %H:%M"), None),  # 02:00 twice, summer time first
        "UTC offsets": (local.strftime("%Y-%m-%dT%H:%M:%S%z"), None),
        "UTC": (wide.index.strftime("%Y-%m-%d %H:%M"), "UTC"),
    }[stamps]
    path = tmp_path / "NO1.csv"
    pd.DataFrame({"Zeit": time, "Preis": wide["price_da"].to_numpy()}).to_csv(path, index=False)
    time_format = {"true local 25-hour day": "%d.%m.%Y %H:%M", "UTC offsets": "ISO8601", "UTC": "%Y-%m-%d %H:%M"}
    file_format = SourceFormat(columns={"Preis": "price_da"}, time_format=time_format[stamps], timezone=clock)

    rows = read_history_file(path, "NO1", "Europe/Oslo", file_format)

    _same_hours(rows, wide)
    assert len(rows) == len(wide) == 25 + 24  # local 2016-10-30 (25 hours) and 10-31


def test_a_semicolon_separated_comma_decimal_file_with_its_own_units_and_missing_marks(tmp_path):
    wide = _nordic_hours("2022-01-02 23:00", "2022-01-09 23:00")
    local = wide.index.tz_convert("Europe/Oslo").strftime("%d.%m.%Y %H:%M")
    price = [f"{v / 1000:.5f}".replace(".", ",") for v in wide["price_da"]]  # EUR/kWh
    load = [f"{v / 1000:.3f}".replace(".", ",") for v in wide["load_actual"]]  # GW
    load[5] = "n/a"
    text = "Zeitpunkt;Preis (EUR/kWh);Last (GW)\n" + "".join(
        f"{t};{p};{q}\n" for t, p, q in zip(local, price, load, strict=True)
    )
    path = tmp_path / "NO_1.csv"
    path.write_text(text)
    file_format = SourceFormat(
        columns={
            "Preis (EUR/kWh)": {"series": "price_da", "unit": "EUR/kWh"},
            "Last (GW)": {"series": "load_actual", "unit": "GW"},
        },
        time_format="%d.%m.%Y %H:%M",
        separator=";",
        decimal=",",
        missing=("n/a",),
    )

    rows = read_history_file(path, "NO1", "Europe/Oslo", file_format)

    read = rows.pivot(index=DELIVERY_HOUR, columns=SERIES_COL, values=VALUE)
    pd.testing.assert_series_equal(read["price_da"], wide["price_da"], check_names=False, check_freq=False, atol=0.006)
    assert pd.isna(read.loc[wide.index[5], "load_actual"])  # "n/a"
    assert read["load_actual"].dropna().sub(wide["load_actual"]).abs().max() <= 0.5
    assert rows[rows[SERIES_COL] == "load_actual"]["unit"].unique().tolist() == ["MW"]


def test_an_excel_workbook_is_read_like_its_csv(tmp_path):
    workbook = pd.read_csv(EPF_DE).rename(columns={"Unnamed: 0": "Date"})
    workbook["Date"] = pd.to_datetime(workbook["Date"])  # date cells, as Excel holds them
    workbook.to_excel(tmp_path / "DE.xlsx", sheet_name="prices", index=False)
    workbook_format = german_format(sheet="prices", time_column="Date")

    from_workbook = read_history_source(tmp_path, {"DE": "Europe/Berlin"}, workbook_format)

    from_csv = read_history_file(EPF_DE, "DE", "Europe/Berlin", GERMAN_FORMAT)
    pd.testing.assert_frame_equal(from_workbook, from_csv.astype({"zone": str, "series": str, "unit": str}))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"time_format": "%d.%m.%Y %H:%M"},
            "line 2: '2012-01-09 00:00:00' is not a time of the format '%d.%m.%Y %H:%M' (format.time_format)",
        ),
        ({"time_column": "Datum"}, "no time column 'Datum' (format.time_column); the file's columns are"),
        (
            {"columns": {"Preis": "price_da"}},
            "none of the columns ['Preis'] of format.columns found; beside its time column the file has "
            "['Price', 'Ampirion Load Forecast', 'PV+Wind Forecast']",
        ),
    ],
)
def test_a_file_that_does_not_match_its_format_is_named_with_what_differs(change, expected):
    with pytest.raises(DataError) as bad:
        read_history_file(EPF_DE, "DE", "Europe/Berlin", german_format(**change))
    assert expected in str(bad.value) and str(EPF_DE) in str(bad.value)
