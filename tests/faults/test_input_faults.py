"""Faults of what users give Spotcast: a bad configuration, bad command-line input, and
bring-your-own CSVs (the replay source) with repeated times, text in numbers, inf, a missing day and
a spike. Each case ends with one clear line, the documented exit code, and the lake unchanged."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fault_kit import BYO_AS_OF, Lake, byo_lake, deepforkit_csv, lake_config, rewrite_byo_csv, run_detached

from forecasting.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from forecasting.config import TOKEN_ENV
from forecasting.errors import DataError
from forecasting.jobs.ingest import backfill
from forecasting.lake.series_store import read_series
from forecasting.schema import DELIVERY_HOUR, VALUE

# --- a bad configuration: exit 2 when it is loaded, before anything runs -----------------------------

BAD_CONFIGURATIONS: dict[str, tuple[Callable[[Path, Lake], Path], str]] = {
    "missing file": (
        lambda folder, lake: folder / "nope.toml",
        r"configuration file not found: .*nope\.toml",
    ),
    "not TOML": (
        lambda folder, lake: _text(folder, 'lake_root = "x"\n[zones\n'),
        r"spotcast\.toml is not valid TOML",
    ),
    "unknown time zone": (
        lambda folder, lake: _text(folder, lake.config.read_text().replace("Europe/Oslo", "Mars/Olympus", 1)),
        r"zones\.0\.timezone = 'Mars/Olympus': unknown time zone",
    ),
    "replay feed without a source": (
        lambda folder, lake: _config(folder, lake, {"kind": "replay", "series": ["price_da"]}),
        r"feeds\.replay: a replay feed needs `source`",
    ),
    "replay source that does not exist": (
        lambda folder, lake: _config(
            folder, lake, {"kind": "replay", "source": "/no/such", "series": ["price_da"]}
        ),
        r"feeds\.replay\.source = '/no/such': no such file or folder",
    ),
    "replay source without the zones": (
        lambda folder, lake: _config(
            folder, lake, {"kind": "replay", "source": str(folder), "series": ["price_da"]}
        ),
        r"feeds\.replay\.source = .*: holds no \.csv or \.parquet file of the configured zones \['NO1', 'NO2'\]",
    ),
    "token in the file": (
        lambda folder, lake: _text(folder, 'entsoe_token = "abc"\n' + lake.config.read_text()),
        rf"entsoe_token must not be written in a file; set {TOKEN_ENV} instead",
    ),
    "unknown time zone of the only zone: one error, not a second about the empty zone list": (
        lambda folder, lake: lake_config(
            folder,
            str(lake.root),
            [{"name": "DE", "eic": "10Y1001A1001A63L", "timezone": "Europe/Berlinn"}],
            {"replay": {"kind": "replay", "source": lake.settings.feeds["replay"].source, "series": ["price_da"]}},
        ),
        r"^spotcast: invalid configuration \S+: zones\.0\.timezone = 'Europe/Berlinn': unknown time zone "
        r"'Europe/Berlinn'$",
    ),
    "a covariate no enabled feed supplies": (
        lambda folder, lake: lake_config(
            folder,
            str(lake.root),
            [z.model_dump() for z in lake.settings.zones],
            {"replay": {"kind": "replay", "source": lake.settings.feeds["replay"].source, "series": ["price_da"]}},
            model={"params": {"covariates": ["load_da", "wind_onshore_da"]}},
        ),
        r"model\.params\.covariates = \['load_da', 'wind_onshore_da'\]: no enabled feed supplies "
        r"\['load_da', 'wind_onshore_da'\]; add them to an enabled feed's series or drop them from covariates$",
    ),
}


def _text(folder: Path, text: str) -> Path:
    path = folder / "spotcast.toml"
    path.write_text(text)
    return path


def _config(folder: Path, lake: Lake, replay: dict) -> Path:
    zones = [z.model_dump() for z in lake.settings.zones]
    return lake_config(folder, str(lake.root), zones, {"replay": replay})


@pytest.mark.parametrize("case", list(BAD_CONFIGURATIONS))
def test_a_bad_configuration_exits_2_in_one_line_naming_key_and_value(
    case: str, lake: Lake, tmp_path: Path, spotcast
) -> None:
    make, expected = BAD_CONFIGURATIONS[case]
    folder = tmp_path / "bad"
    folder.mkdir()
    config = make(folder, lake)
    before = lake.hashes()

    done = spotcast("status", "--config", str(config))

    assert done.code == EXIT_USAGE
    assert re.search(expected, done.message), done.message
    assert lake.hashes() == before


# --- bad command-line input: exit 2 before anything is computed or written --------------------------

BAD_INPUT: dict[str, tuple[list[str], str]] = {
    "as-of before the history start": (
        ["backfill", "--config", "CONFIG", "--as-of", "2022-06-01"],
        "spotcast: nothing to backfill: the as-of instant 2022-06-01 00:00 UTC is before anything from the "
        "start 2023-01-01 on was published (history.start is 2023-01-01)",
    ),
    "end before start": (
        ["backfill", "--config", "CONFIG", "--start", "2023-03-01", "--end", "2023-02-01"],
        "spotcast: nothing to backfill: the end 2023-02-01 00:00 UTC is not after the start 2023-03-01 00:00 UTC",
    ),
    "unknown zone, status": (
        ["status", "--config", "CONFIG", "--zones", "NO9"],
        "spotcast: unknown zone(s) ['NO9']; configured: ['NO1', 'NO2']",
    ),
    "unknown zone, check": (
        ["check", "--config", "CONFIG", "--zones", "NO1", "NO9"],
        "spotcast: unknown zone(s) ['NO9']",
    ),
    "unknown zone, backfill": (
        ["backfill", "--config", "CONFIG", "--zones", "NO9"],
        "spotcast: unknown zone(s) ['NO9']",
    ),
    "unknown zone, daily": (
        ["daily", "--config", "CONFIG", "--zones", "NO9"],
        "spotcast: unknown zone(s) ['NO9']",
    ),
    "unknown zone, lineage": (
        ["lineage", "--config", "CONFIG", "2023-06-10", "NO9"],
        "spotcast: unknown zone(s) ['NO9']",
    ),
    "forecast to an old spreadsheet format": (
        ["forecast", "--config", "CONFIG", "--out", "x.xls"],
        "spotcast forecast: error: argument --out: must end in .csv, .parquet or .xlsx, got 'x.xls'",
    ),
    "forecast of some zones": (
        ["forecast", "--config", "CONFIG", "--zones", "NO1"],
        "spotcast forecast: error: --zones is not supported here",
    ),
    "training on some zones": (
        ["train", "--config", "CONFIG", "--zones", "NO1"],
        "spotcast train: error: --zones is not supported here",
    ),
    "backtest end before start": (
        ["backtest", "--config", "CONFIG", "--start", "2023-03-01", "--end", "2023-02-01"],
        "spotcast: --end 2023-02-01 is not after --start 2023-03-01: no origin to backtest",
    ),
    "retrain every 0": (
        [
            "backtest",
            "--config",
            "CONFIG",
            "--start",
            "2023-02-01",
            "--end",
            "2023-03-01",
            "--retrain-every",
            "0",
        ],
        "spotcast backtest: error: argument --retrain-every: not a positive whole number: '0'",
    ),
    "as-of that is no date": (
        ["daily", "--config", "CONFIG", "--as-of", "yesterday"],
        "spotcast daily: error: argument --as-of: not a date",
    ),
    "promote an unknown run": (
        ["models", "promote", "--config", "CONFIG", "nope"],
        "spotcast: no training run 'nope' in the registry",
    ),
    "not a condition": (
        ["models", "list", "--config", "CONFIG", "--where", "crps"],
        "spotcast: not a condition: 'crps'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_command_line_input_exits_2_in_one_line_before_anything_runs(
    case: str, lake: Lake, spotcast
) -> None:
    argv, expected = BAD_INPUT[case]
    before = lake.hashes()
    began = time.monotonic()

    done = spotcast(*(str(lake.config) if arg == "CONFIG" else arg for arg in argv))

    assert done.code == EXIT_USAGE
    assert done.message.startswith(expected), done.message
    assert time.monotonic() - began < 10  # refused up front: no Prefect server, no model, no forecast
    assert lake.hashes() == before


def test_a_forecast_lineage_that_does_not_exist_is_named(lake: Lake, spotcast) -> None:
    done = spotcast("lineage", "2023-06-10", "NO1", "--config", str(lake.config))
    assert done.code == EXIT_ERROR
    assert done.message == f"spotcast: no forecast issued on 2023-06-10 in {lake.root}"


# --- bring-your-own CSVs (the replay source) --------------------------------------------------------


def edit_csv(lake: Lake, change: Callable[[list[str]], list[str]]) -> Path:
    return rewrite_byo_csv(lake, lambda text: "\n".join(change(text.splitlines())) + "\n")


def _set(lines: list[str], line: int, column: int, text: str) -> list[str]:
    cells = lines[line - 1].split(",")
    cells[column] = text
    lines[line - 1] = ",".join(cells)
    return lines


BAD_CSVS: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "a repeated time": (
        lambda lines: [*lines, lines[101]],
        "1 repeated local time(s), first 1/5/2016 4:00 at line 242",
    ),
    "text in a number": (
        lambda lines: _set(lines, 30, 1, "twelve"),
        "column Price_DA, line 30: 'twelve' is not a finite number",
    ),
    "inf": (lambda lines: _set(lines, 40, 2, "inf"), "column Load_AC, line 40: inf is not a finite number"),
    "-inf": (
        lambda lines: _set(lines, 41, 1, "-inf"),
        "column Price_DA, line 41: -inf is not a finite number",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_a_bad_csv_is_refused_naming_file_column_and_line_and_lands_nothing(case: str, byo: Lake) -> None:
    change, expected = BAD_CSVS[case]
    path = edit_csv(byo, change)
    before = byo.hashes()

    with pytest.raises(DataError) as refused:
        backfill(byo.settings, as_of=pd.Timestamp(BYO_AS_OF, tz="UTC"), resume=False)

    assert str(refused.value) == f"{path}: {expected}"
    assert byo.hashes() == before


@pytest.mark.slow
@pytest.mark.parametrize("case", ["text in a number", "inf"])
def test_the_backfill_command_refuses_a_bad_csv_in_one_line_with_exit_1(
    case: str, byo: Lake, spotcast
) -> None:
    change, expected = BAD_CSVS[case]
    path = edit_csv(byo, change)
    before = byo.hashes()

    done = spotcast("backfill", "--config", str(byo.config), "--as-of", BYO_AS_OF, "--no-resume")

    assert done.code == EXIT_ERROR
    assert done.message == f"spotcast: {path}: {expected}"
    assert byo.hashes() == before


@pytest.mark.slow
def test_the_command_run_by_cron_prints_one_line_and_no_traceback(byo: Lake, tmp_path: Path) -> None:
    # Prefect logs every exception leaving a task or flow with its traceback; a handled one is one line.
    path = edit_csv(byo, BAD_CSVS["text in a number"][0])
    before = byo.hashes()

    done = run_detached(
        tmp_path, "backfill", "--config", str(byo.config), "--as-of", BYO_AS_OF, "--no-resume"
    )

    assert done.returncode == EXIT_ERROR
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("spotcast")]
    assert said == [f"spotcast: {path}: column Price_DA, line 30: 'twelve' is not a finite number"]
    assert byo.hashes() == before


def test_a_missing_day_lands_the_rest_is_logged_and_listed_as_a_hole(
    tmp_path: Path, zone_configs: list[dict], spotcast, caplog: pytest.LogCaptureFixture
) -> None:
    lake = byo_lake(tmp_path, zone_configs)
    csv = tmp_path / "byo" / "NO_1.csv"
    deepforkit_csv(csv)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(line for line in lines if not line.startswith("1/5/2016 ")) + "\n")

    report = backfill(lake.settings, as_of=pd.Timestamp(BYO_AS_OF, tz="UTC"))

    assert report.ok and report.new_rows == 2 * (9 * 24 - 1)  # the first local hour is 2015 in UTC
    assert f"{csv}: no rows for 1 local day(s), first 2016-01-05: they stay gaps in the lake" in caplog.text
    # as of when all that is recorded is out
    done = spotcast("check", "--config", str(lake.config), "--as-of", "2016-01-10T09:00")
    assert done.code == EXIT_OK
    for series in ("price_da", "load_actual"):
        assert f"{series} NO1: 24 hour(s) missing, [2016-01-04 23:00, 2016-01-05 23:00) UTC" in done.out


def test_a_spike_lands_as_it_is_and_the_raw_area_keeps_the_value_it_replaced(byo: Lake) -> None:
    # Prices do spike (the auction allows −500…4000 EUR/MWh): a spike is data, not an error.
    raw_before = {p: p.read_bytes() for p in (byo.root / "raw").rglob("*.parquet")}
    rows_before = read_series(byo.fs)
    edit_csv(byo, lambda lines: _set(lines, 50, 1, "3999.5"))

    report = backfill(byo.settings, as_of=pd.Timestamp(BYO_AS_OF, tz="UTC"), resume=False)

    assert report.ok and report.new_rows == 1  # one revised row
    after = read_series(byo.fs)
    changed = after.merge(rows_before, on=["zone", "series", DELIVERY_HOUR], suffixes=("", "_before"))
    changed = changed[changed[VALUE] != changed[f"{VALUE}_before"]]
    assert len(changed) == 1 and changed[VALUE].iloc[0] == 3999.5
    assert all(p.read_bytes() == content for p, content in raw_before.items())  # the old pull is kept
    assert len(after) == len(rows_before)
