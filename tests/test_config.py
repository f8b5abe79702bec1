"""Loading and validating the configuration: errors name the key and the value."""

from pathlib import Path

import pytest

from forecasting.config import DEFAULT_CONFIG, PROJECT_ROOT, TOKEN_ENV, ConfigError, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spotcast.toml"
    path.write_text(text + "\n" + DEFAULT_CONFIG.read_text())  # top-level keys come first
    return path


def test_default_configuration_loads_with_five_zones_and_replay_feed():
    settings = load_settings()
    assert settings.zone_names == ["NO1", "NO2", "NO3", "NO4", "NO5"]
    assert list(settings.enabled_feeds()) == ["replay"]
    assert settings.retry.not_available.max_attempts == 8
    assert settings.retry.site_down.backoff == 2.0


def test_relative_lake_root_is_resolved_against_the_project_not_the_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert load_settings().lake_root == str(PROJECT_ROOT / "data" / "lake")


def test_fsspec_url_lake_root_is_kept_as_is():
    assert load_settings(lake_root="s3://bucket/spotcast").lake_root == "s3://bucket/spotcast"


def test_unknown_time_zone_error_names_key_and_value():
    zones = [{"name": "NO1", "eic": "10YNO-1--------2", "timezone": "Europe/Osloo"}]
    with pytest.raises(ConfigError, match=r"zones\.0\.timezone = 'Europe/Osloo'.*unknown time zone"):
        load_settings(zones=zones)


def test_unknown_series_in_a_feed_is_refused():
    feeds = {"replay": {"kind": "replay", "source": "data/bundled", "series": ["price_da", "gas_price"]}}
    with pytest.raises(ConfigError, match=r"feeds\.replay\.series.*gas_price"):
        load_settings(feeds=feeds)


def test_negative_retry_interval_is_refused():
    with pytest.raises(ConfigError, match=r"retry\.site_down\.interval_s = -1"):
        load_settings(retry={"site_down": {"interval_s": -1, "backoff": 2.0, "max_attempts": 5}})


def test_token_comes_from_the_environment_and_is_never_printed(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "secret-token-123")
    settings = load_settings()
    assert settings.entsoe_token.get_secret_value() == "secret-token-123"
    assert "secret-token-123" not in repr(settings)
    assert "secret-token-123" not in settings.model_dump_json()


def test_token_written_in_the_file_is_refused(tmp_path):
    path = _write(tmp_path, 'entsoe_token = "abc"')
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        load_settings(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("lake_root = ")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        load_settings(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
