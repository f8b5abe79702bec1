"""The `spotcast` command as an operator uses it: exit codes, messages, a real daily run through
Prefect (ephemeral server), and a degraded run where one feed never answers."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from spotcast_testing import detached_env, tiny_config

from forecasting.cli import EXIT_DEGRADED, EXIT_OK, EXIT_USAGE, _exit_code_of, main
from forecasting.config import DEFAULT_CONFIG
from forecasting.errors import UsageError
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import read_forecast
from forecasting.lake.series_store import newest_hours


def _config(tmp_path: Path, **changes: object) -> Path:
    return tiny_config(tmp_path, ["NO1"], "2018-09-01", **changes)


def _spotcast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "forecasting.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def prefect_env(tmp_path: Path) -> dict[str, str]:
    return detached_env(tmp_path / "prefect")


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for command in ("daily", "backfill", "train", "forecast", "backtest", "models", "lineage", "serve"):
        assert command in out


def test_bad_configuration_exits_2_naming_key_and_value(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(
        DEFAULT_CONFIG.read_text().replace('timezone = "Europe/Oslo"', 'timezone = "Mars/Olympus"', 1)
    )
    assert main(["status", "--config", str(path)]) == EXIT_USAGE
    assert "zones.0.timezone = 'Mars/Olympus'" in capsys.readouterr().err


def test_status_of_an_empty_lake_says_so(tmp_path, capsys):
    assert main(["status", "--config", str(_config(tmp_path))]) == EXIT_OK
    assert "(empty)" in capsys.readouterr().out


def test_check_of_an_empty_lake_lists_every_series_as_missing(tmp_path, capsys):
    assert main(["check", "--config", str(_config(tmp_path)), "--as-of", "2018-09-03T12:00"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "0 corrupt file(s)" in out
    # 14:00 in Oslo: Tuesday's prices are out, up to 24:00 Oslo = 22:00 UTC
    assert "price_da NO1: 94 hour(s) missing, [2018-09-01 00:00, 2018-09-04 22:00) UTC" in out
    assert "spotcast backfill --repair" in out


def test_a_flow_that_failed_with_a_spotcast_error_gets_its_exit_code_and_a_bug_keeps_its_traceback():
    from prefect.states import Completed, Failed

    assert _exit_code_of(Completed()) == EXIT_OK
    with pytest.raises(UsageError, match="NO9"):  # main prints it in one line, exit 2
        _exit_code_of(Failed(data=UsageError("unknown zone(s) ['NO9']")))
    with pytest.raises(KeyError):  # not ours: raised as it is, traceback and all
        _exit_code_of(Failed(data=KeyError("bug")))


@pytest.mark.slow
def test_daily_on_an_empty_lake_backfills_trains_and_forecasts(tmp_path, prefect_env):
    config = _config(tmp_path)
    done = _spotcast("daily", "--config", str(config), "--as-of", "2019-03-05T13:30", env=prefect_env)
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert "week 1" in done.stdout or "week 1" in done.stderr  # the per-zone summary
    forecast = read_forecast(LakeFS.open(str(tmp_path / "lake")))
    assert len(forecast) == 672 and set(forecast["zone"]) == {"NO1"}
    assert any((tmp_path / "lake" / "reports").rglob("fan_NO1.png"))


@pytest.mark.slow
def test_unreachable_feed_ends_degraded_with_exit_3_and_the_others_land(tmp_path, prefect_env):
    # Actual load comes from ENTSO-E at a closed port; the replay still supplies the rest.
    config = _config(
        tmp_path,
        feeds={
            "replay": {
                "kind": "replay",
                "source": "data/bundled",
                "series": ["price_da", "load_da", "generation_da", "wind_onshore_da"],
            },
            "entsoe_down": {
                "kind": "entsoe",
                "base_url": "http://127.0.0.1:9/api",
                "timeout_s": 2,
                "series": ["load_actual"],
            },
        },
        retry={
            "not_available": {"interval_s": 0.01, "backoff": 1.0, "max_attempts": 2},
            "site_down": {"interval_s": 0.01, "backoff": 2.0, "max_attempts": 2},
        },
    )
    env = {**prefect_env, "ENTSOE_API_TOKEN": "test-token-not-secret"}
    done = _spotcast("backfill", "--config", str(config), "--as-of", "2019-01-10T13:30", env=env)
    assert done.returncode == EXIT_DEGRADED, done.stderr[-3000:]
    assert "did not land" in done.stderr and "load_actual" in done.stderr
    assert "test-token-not-secret" not in done.stdout + done.stderr
    landed = newest_hours(LakeFS.open(str(tmp_path / "lake")))
    # NO1 has no wind forecast before 2019-02: a gap in the recording, not a failure
    assert set(landed["series"]) == {"price_da", "load_da", "generation_da"}
    price = landed[landed["series"] == "price_da"].iloc[0]
    assert price["newest_hour"] == pd.Timestamp("2019-01-11 22:00", tz="UTC")  # Friday's prices, out at 13:00
