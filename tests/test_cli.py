"""The `spotcast` command as an operator uses it: exit codes, messages, a real daily run through
Prefect (ephemeral server), and a degraded run where one feed never answers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from forecasting.cli import EXIT_DEGRADED, EXIT_OK, EXIT_USAGE, main
from forecasting.config import DEFAULT_CONFIG
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import read_forecast
from forecasting.lake.series_store import newest_hours

TINY_PARAMS = """
[model.params]
context_length = 24
lags_seq = [1, 24]
hidden_size = 8
num_layers = 1
max_epochs = 1
num_batches_per_epoch = 5
batch_size = 8
num_samples = 20
origin_stride_days = 7
calibration_weeks = 2
"""


def _config(tmp_path: Path, feeds: str = "", zones: tuple[str, ...] = ("NO1",)) -> Path:
    """The default configuration with a tmp lake, fewer zones, a short history and a tiny model."""
    text = DEFAULT_CONFIG.read_text()
    text = text.replace('lake_root = "data/lake"', f'lake_root = "{tmp_path / "lake"}"')
    text = text.replace('models_root = "data/models"', f'models_root = "{tmp_path / "models"}"')
    text = text.replace('start = "2015-01-01"', 'start = "2018-09-01"')
    text = text.split("[model.params]")[0] + TINY_PARAMS
    for zone in {"NO1", "NO2", "NO3", "NO4", "NO5"} - set(zones):
        text = re.sub(rf'\[\[zones\]\]\nname = "{zone}"\n[^\[]*', "", text)
    path = tmp_path / "spotcast.toml"
    path.write_text(text + feeds)
    return path


def _spotcast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "forecasting.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def prefect_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false"
    )
    env.pop("PREFECT_API_URL", None)
    return env


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
    feeds = """
[feeds.entsoe_down]
kind = "entsoe"
base_url = "http://127.0.0.1:9/api"
timeout_s = 2
series = ["load_actual"]
"""
    text = _config(tmp_path).read_text()
    text = text.replace(
        'series = ["price_da", "load_da", "load_actual", "generation_da", "wind_onshore_da"]\n\n[feeds.entsoe]',
        'series = ["price_da", "load_da", "generation_da", "wind_onshore_da"]\n\n[feeds.entsoe]',
        1,
    )
    text = text.replace(
        "interval_s = 3600\nbackoff = 2.0\nmax_attempts = 5",
        "interval_s = 0.01\nbackoff = 2.0\nmax_attempts = 2",
    )
    config = tmp_path / "degraded.toml"
    config.write_text(text + feeds)
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
