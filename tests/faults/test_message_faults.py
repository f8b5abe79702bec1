"""What Spotcast says when it refuses or ends degraded: bring-your-own CSVs that are empty, only a
header or semicolon-separated with decimal commas; a backfill range wholly before the history; a
feed none of whose pulls land; a corrupt promotion history; and no run log for a refused command.
Each case ends with one clear line, the documented exit code, and the lake unchanged."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest
from fault_kit import AS_OF, BYO_AS_OF, Lake, byo_lake, lake_config, rewrite_byo_csv

from forecasting.cli import EXIT_DEGRADED, EXIT_ERROR, EXIT_OK, EXIT_USAGE
from forecasting.config import TOKEN_ENV
from forecasting.console import LOGS
from forecasting.errors import DataError
from forecasting.jobs.ingest import backfill
from forecasting.model import registry

EXPECTED_CSV = (
    "expected comma-separated values with a decimal point, a header like ',Price_DA,Load_AC' "
    "and 24 rows a day like '3/26/2016 0:00,23.5,4032'"
)

# --- bring-your-own CSVs that are not what the replay reads -----------------------------------------


def _semicolons_and_decimal_commas(good: str) -> str:
    """The file as a spreadsheet in a comma-decimal locale (de, no, fr) exports it."""
    lines = []
    for line in good.splitlines():
        cells = line.split(",")
        lines.append(";".join(cell.replace(".", ",") for cell in cells))
    return "\n".join(lines) + "\n"


ODD_CSVS = {
    "only a header": (lambda good: good.splitlines()[0] + "\n", f"a header line and no rows; {EXPECTED_CSV}"),
    "empty": (lambda good: "", f"the file is empty; {EXPECTED_CSV}"),
    "semicolons and decimal commas": (
        _semicolons_and_decimal_commas,
        f"the file looks semicolon-separated with decimal commas; {EXPECTED_CSV}",
    ),
    "semicolons and decimal points": (
        lambda good: good.replace(",", ";"),
        f"the file looks semicolon-separated; {EXPECTED_CSV}",
    ),
}


def replace_csv(lake: Lake, case: str) -> Path:
    change, _ = ODD_CSVS[case]
    return rewrite_byo_csv(lake, change)


@pytest.mark.parametrize("case", list(ODD_CSVS))
def test_an_odd_csv_is_refused_in_one_line_naming_the_file_and_the_format_expected(
    case: str, byo: Lake
) -> None:
    path = replace_csv(byo, case)
    before = byo.hashes()

    with pytest.raises(DataError) as refused:
        backfill(byo.settings, as_of=pd.Timestamp(BYO_AS_OF, tz="UTC"), resume=False)

    assert str(refused.value) == f"{path}: {ODD_CSVS[case][1]}"
    assert "\n" not in str(refused.value)
    assert byo.hashes() == before


def test_an_odd_csv_in_a_new_lake_lands_nothing(tmp_path: Path, zone_configs: list[dict]) -> None:
    lake = byo_lake(tmp_path, zone_configs)
    (tmp_path / "byo").mkdir()
    (tmp_path / "byo" / "NO_1.csv").write_text(",Price_DA,Load_AC\n")

    with pytest.raises(DataError, match=r"NO_1\.csv: a header line and no rows"):
        backfill(lake.settings, as_of=pd.Timestamp(BYO_AS_OF, tz="UTC"))

    assert lake.hashes() == {}


@pytest.mark.slow
def test_the_backfill_command_refuses_a_semicolon_csv_in_one_line_with_exit_1(byo: Lake, spotcast) -> None:
    path = replace_csv(byo, "semicolons and decimal commas")
    before = byo.hashes()

    done = spotcast("backfill", "--config", str(byo.config), "--as-of", BYO_AS_OF, "--no-resume")

    assert done.code == EXIT_ERROR
    assert done.message == f"spotcast: {path}: {ODD_CSVS['semicolons and decimal commas'][1]}"
    assert byo.hashes() == before


# --- a backfill range wholly before the history: refused like an end before it ----------------------

BEFORE_THE_HISTORY = {
    "start and end before it": (
        ["--start", "2022-01-01", "--end", "2022-06-01"],
        "spotcast: nothing to backfill: the range [2022-01-01 00:00, 2022-06-01 00:00) UTC lies before the "
        "history, which starts on 2023-01-01 (history.start); give an end after that",
    ),
    "end before it": (
        ["--end", "2022-06-01"],
        "spotcast: nothing to backfill: the range up to 2022-06-01 00:00 UTC lies before the history, which "
        "starts on 2023-01-01 (history.start); give an end after that",
    ),
    "end at its start": (
        ["--end", "2023-01-01"],
        "spotcast: nothing to backfill: the range up to 2023-01-01 00:00 UTC lies before the history, which "
        "starts on 2023-01-01 (history.start); give an end after that",
    ),
    "start before it, as-of before it": (
        ["--start", "2022-01-01", "--as-of", "2022-06-01"],
        "spotcast: nothing to backfill: the as-of instant 2022-06-01 00:00 UTC is before anything from the "
        "start 2023-01-01 on was published (history.start is 2023-01-01)",
    ),
}


@pytest.mark.parametrize("case", list(BEFORE_THE_HISTORY))
def test_a_backfill_range_before_the_history_is_refused_naming_its_start(
    case: str, lake: Lake, spotcast
) -> None:
    argv, expected = BEFORE_THE_HISTORY[case]
    before = lake.hashes()

    done = spotcast("backfill", "--config", str(lake.config), *argv)

    assert done.code == EXIT_USAGE
    assert done.message == expected
    assert lake.hashes() == before


def test_a_range_reaching_into_the_history_is_still_pulled(lake: Lake) -> None:
    report = backfill(
        lake.settings,
        as_of=AS_OF,
        start=pd.Timestamp("2022-12-01").date(),
        end=pd.Timestamp("2023-01-02", tz="UTC"),
        resume=False,
    )
    assert report.ok and len(report.outcomes) > 0


# --- no run log for a command refused before it starts ---------------------------------------------

REFUSED = {
    "backfill range before the history": ["backfill", "--start", "2022-01-01", "--end", "2022-06-01"],
    "backfill as-of before the history": ["backfill", "--as-of", "2022-06-01"],
    "backfill end before start": ["backfill", "--start", "2023-03-01", "--end", "2023-02-01"],
    "backfill of an unknown zone": ["backfill", "--zones", "NO9"],
    "daily of an unknown zone": ["daily", "--zones", "NO9"],
    "backtest end before start": ["backtest", "--start", "2023-03-01", "--end", "2023-02-01"],
    "forecast to an old spreadsheet format": ["forecast", "--out", "x.xls"],
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_command_refused_before_it_starts_writes_no_run_log(case: str, lake: Lake, spotcast) -> None:
    done = spotcast(*REFUSED[case], "--config", str(lake.config))

    assert done.code == EXIT_USAGE
    assert done.message.startswith("spotcast")
    assert "full log in" not in done.err
    assert not (lake.root / LOGS).exists()


# --- none of the pulls landed: said so, with the reasons counted, in one short line ------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable(tmp_path: Path, zone_configs: list[dict], monkeypatch: pytest.MonkeyPatch) -> Lake:
    """A lake whose only feed is ENTSO-E on a port nobody listens on (the replay off)."""
    monkeypatch.setenv(TOKEN_ENV, "not-a-real-token")
    feeds = {
        "entsoe": {
            "kind": "entsoe",
            "base_url": f"http://127.0.0.1:{_closed_port()}/api",
            "series": ["price_da", "load_actual"],
            "timeout_s": 1,
        },
    }
    config = lake_config(
        tmp_path, str(tmp_path / "lake"), zone_configs, feeds, history={"start": "2015-01-01"}
    )
    return Lake(tmp_path / "lake", config)


def test_when_no_pull_lands_the_line_says_none_and_counts_the_reasons(unreachable: Lake) -> None:
    report = backfill(unreachable.settings, as_of=AS_OF)

    total = len(report.outcomes)
    assert total > 20 and not report.ok
    line = report.not_landed()
    assert line == (
        f"none of the {total} pulls landed: {total} × SiteDown: connection failed (ConnectionError) "
        "(first: entsoe price_da NO1 [2015-01-01 00:00, 2016-01-01 00:00) UTC)"
    )
    assert unreachable.hashes() == {}


def test_when_some_pulls_land_the_line_says_how_many_did_not(
    lake: Lake, zone_configs: list[dict], replay_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "not-a-real-token")
    feeds = {
        "replay": {"kind": "replay", "source": str(replay_source), "series": ["price_da"]},
        "entsoe": {
            "kind": "entsoe",
            "base_url": f"http://127.0.0.1:{_closed_port()}/api",
            "series": ["load_actual"],
            "timeout_s": 1,
        },
    }
    config = lake_config(lake.config.parent, str(lake.root), zone_configs, feeds)
    report = backfill(Lake(lake.root, config).settings, as_of=AS_OF)

    failed = len(report.problems())
    assert 0 < failed < len(report.outcomes)
    assert report.not_landed() == (
        f"{failed} of the {len(report.outcomes)} pulls did not land: {failed} × SiteDown: connection failed "
        "(ConnectionError) (first: entsoe load_actual NO1 [2023-05-11 11:00, 2023-06-10 11:00) UTC)"
    )


@pytest.mark.slow
def test_the_backfill_command_says_none_landed_in_one_short_line_with_exit_3(
    unreachable: Lake, spotcast
) -> None:
    done = spotcast("backfill", "--config", str(unreachable.config), "--as-of", "2023-06-10T12:00")

    assert done.code == EXIT_DEGRADED
    assert done.message.startswith("spotcast: finished degraded: none of the ")
    assert " pulls landed: " in done.message and "× SiteDown: connection failed" in done.message
    assert len(done.message) < 300  # was one line of 19 KB
    assert unreachable.hashes() == {}


# --- a corrupt promotion history: the remedy that mends it --------------------------------------------


class TrainedModel:
    """What the registry records of a fitted pipeline (the attributes `record_run` reads)."""

    def __init__(self, model_id: str, as_of: pd.Timestamp) -> None:
        self.model_id_ = model_id
        self.zones_ = {"NO1": "Europe/Oslo", "NO2": "Europe/Oslo"}
        self.training_range_ = (pd.Timestamp("2023-01-01", tz="UTC"), as_of)
        self.training_data_hash_ = f"hash-{model_id}"

    def get_params(self) -> dict[str, object]:
        return {"max_epochs": 1}


def test_a_corrupt_promotion_history_names_the_remedy_that_mends_it(lake: Lake, spotcast) -> None:
    at = pd.Timestamp("2023-05-01 12:00", tz="UTC")
    run_id = registry.record_run(
        lake.fs, lake.settings, TrainedModel("deepar-may", at), None, {"crps": 1.0}, {}, 1.0, at
    )
    registry.promote(lake.fs, run_id, "first model", at)
    history = lake.root / "model_runs" / "promotions.json"
    history.write_bytes(history.read_bytes()[:40])  # cut off
    before = lake.hashes()

    done = spotcast("models", "promote", run_id, "--config", str(lake.config), "--as-of", "2023-06-01")

    assert done.code == EXIT_ERROR
    assert done.message.startswith(f"spotcast: corrupt lake file {history} (")
    assert done.message.endswith(
        "): the champion history. Move it aside (the training runs in model_runs/ stay) and name the "
        "champion again: `spotcast models list`, then `spotcast models promote RUN_ID --as-of T` "
        "(T: the run's as_of), or `spotcast train`"
    )
    assert "--repair" not in done.message  # which sets series files aside only
    assert lake.hashes() == before
    with pytest.raises(registry.CorruptPromotions):
        registry.champion(lake.fs)

    # what the line says mends it
    shutil.move(history, lake.root.parent / "promotions.json.bad")
    done = spotcast("models", "promote", run_id, "--config", str(lake.config), "--as-of", at.isoformat())
    assert done.code == EXIT_OK, done.err
    assert registry.champion(lake.fs, at).model_id == "deepar-may"
