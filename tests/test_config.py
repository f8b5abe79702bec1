"""Loading and validating the configuration: errors name the key and the value."""

from pathlib import Path

import pytest

from forecasting.config import (
    DEFAULT_CONFIG,
    PROJECT_ROOT,
    TOKEN_ENV,
    ConfigError,
    ParamRange,
    default_config,
    load_settings,
    project_of,
)
from forecasting.errors import EXIT_USAGE, SpotcastError, UsageError


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


def _checkout(folder: Path) -> Path:
    """A checkout as a user has one: configs/spotcast.toml and the bundled history (linked)."""
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "spotcast.toml").write_text(DEFAULT_CONFIG.read_text())
    (folder / "data").mkdir()
    (folder / "data" / "bundled").symlink_to(PROJECT_ROOT / "data" / "bundled")
    return folder


def test_relative_paths_are_relative_to_the_configurations_project_not_the_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(DEFAULT_CONFIG)  # configs/spotcast.toml: the folder above configs/
    assert settings.lake_root == str(PROJECT_ROOT / "data" / "lake")
    assert settings.models_root == str(PROJECT_ROOT / "data" / "models")
    assert settings.feeds["replay"].source == str(PROJECT_ROOT / "data" / "bundled")
    assert project_of(DEFAULT_CONFIG) == PROJECT_ROOT


def test_without_config_the_checkout_worked_in_is_used_not_the_installed_codes(monkeypatch, tmp_path):
    checkout = _checkout(tmp_path / "clone")
    (checkout / "notebooks").mkdir()
    monkeypatch.chdir(checkout / "notebooks")  # its configs/ is found from a folder below too

    settings = load_settings()

    assert default_config() == checkout / "configs" / "spotcast.toml"
    assert settings.lake_root == str(checkout / "data" / "lake")
    assert settings.models_root == str(checkout / "data" / "models")
    assert settings.feeds["replay"].source == str(checkout / "data" / "bundled")


def test_without_config_outside_a_checkout_is_refused_naming_what_to_do(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no configuration: configs/spotcast\.toml .*--config FILE"):
        load_settings()


def test_a_configuration_of_ones_own_writes_next_to_itself(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "history").symlink_to(PROJECT_ROOT / "data" / "bundled")
    path = study / "spotcast.toml"
    path.write_text(DEFAULT_CONFIG.read_text().replace('source = "data/bundled"', 'source = "history"'))

    settings = load_settings(path, models_root="models")  # an override is read as if in the file

    assert settings.lake_root == str(study / "data" / "lake")
    assert settings.models_root == str(study / "models")
    assert settings.feeds["replay"].source == str(study / "history")


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


def test_errors_are_one_line_naming_every_bad_key():
    zones = [{"name": "NO1", "eic": "short", "timezone": "Mars/Olympus"}]
    with pytest.raises(ConfigError) as bad:
        load_settings(zones=zones)
    message = str(bad.value)
    assert "\n" not in message
    assert "zones.0.eic = 'short'" in message and "zones.0.timezone = 'Mars/Olympus'" in message


def test_a_configuration_error_is_a_usage_problem_with_exit_code_2():
    assert issubclass(ConfigError, SpotcastError) and ConfigError.exit_code == EXIT_USAGE


def test_a_replay_feed_needs_a_source():
    with pytest.raises(ConfigError, match=r"feeds\.replay: a replay feed needs `source`"):
        load_settings(feeds={"replay": {"kind": "replay", "series": ["price_da"]}})


def test_a_replay_source_that_does_not_exist_is_refused_at_load(tmp_path):
    feeds = {"replay": {"kind": "replay", "source": str(tmp_path / "gone"), "series": ["price_da"]}}
    with pytest.raises(
        ConfigError, match=rf"feeds\.replay\.source = '{tmp_path}/gone': no such file or folder"
    ):
        load_settings(feeds=feeds)


def test_a_replay_source_without_a_file_of_the_zones_is_refused_at_load(tmp_path):
    (tmp_path / "SE3.csv").write_text("")
    feeds = {"replay": {"kind": "replay", "source": str(tmp_path), "series": ["price_da"]}}
    with pytest.raises(ConfigError, match=r"holds no \.csv or \.parquet file of the configured zones"):
        load_settings(feeds=feeds)


def test_a_disabled_feed_is_not_checked(tmp_path):
    feeds = {
        "replay": {"kind": "replay", "source": "data/bundled", "series": ["price_da"]},
        "old": {"kind": "replay", "source": str(tmp_path / "gone"), "series": ["load_da"], "enabled": False},
    }
    assert list(load_settings(feeds=feeds).enabled_feeds()) == ["replay"]


def test_an_unknown_lake_file_system_is_refused():
    with pytest.raises(ConfigError, match=r"lake_root = 'nosuch://lake': unknown file system 'nosuch'"):
        load_settings(lake_root="nosuch://lake")


def test_with_zones_narrows_the_settings_and_refuses_an_unknown_zone():
    settings = load_settings()
    assert settings.with_zones(["NO2", "NO1"]).zone_names == ["NO2", "NO1"]
    assert settings.with_zones(None) is settings
    with pytest.raises(
        UsageError, match=r"unknown zone\(s\) \['NO9'\]; configured: \['NO1', 'NO2', 'NO3', 'NO4', 'NO5'\]"
    ):
        settings.with_zones(["NO1", "NO9"])


def test_the_lock_wait_cannot_be_negative():
    with pytest.raises(ConfigError, match=r"lake_lock_wait_s = -1"):
        load_settings(lake_lock_wait_s=-1)


def test_a_file_extending_another_changes_only_its_own_keys(tmp_path):
    base = load_settings(DEFAULT_CONFIG)
    path = tmp_path / "small.toml"
    path.write_text(
        f'extends = "{DEFAULT_CONFIG}"\n[tune]\nstudy = "small"\n[tune.space]\nhidden_size = {{ low = 16, high = 64 }}\n'
    )

    settings = load_settings(path)

    assert settings.tune.study == "small"
    assert (settings.tune.space["hidden_size"].low, settings.tune.space["hidden_size"].high) == (16, 64)
    assert settings.tune.space["num_layers"] == base.tune.space["num_layers"]  # tables merge key by key
    assert settings.tune.validation == base.tune.validation and settings.zones == base.zones
    # What the base file reads stays its own (the checkout's history); where this one writes is its
    # own project's: extending a shared file never writes into its owner's lake.
    assert settings.feeds["replay"].source == base.feeds["replay"].source
    assert (settings.lake_root, settings.models_root) == (str(tmp_path / "data" / "lake"), str(tmp_path / "data" / "models"))


def test_the_prefect_server_of_a_configuration_is_an_http_url():
    assert load_settings(prefect={"api_url": "http://127.0.0.1:4300/api"}).prefect.api_url.endswith(":4300/api")
    assert load_settings().prefect.api_url is None  # none: the command's own server
    with pytest.raises(ConfigError, match=r"prefect\.api_url = '127\.0\.0\.1:4200'"):
        load_settings(prefect={"api_url": "127.0.0.1:4200"})


def test_the_two_core_tuning_configuration_is_the_default_with_a_smaller_space():
    base, small = load_settings(), load_settings(PROJECT_ROOT / "configs" / "tune-2core.toml")

    assert small.model_copy(update={"tune": base.tune}) == base
    assert small.tune.space["max_epochs"].high < base.tune.space["max_epochs"].high
    assert small.tune.sampler_startup_trials == 6  # TPE models trials 0–5 from trial 6 on


def _extending_default(tmp_path: Path, space: str) -> Path:
    path = tmp_path / "child.toml"
    path.write_text(f'extends = "{DEFAULT_CONFIG}"\n[tune.space]\n{space}\n')
    return path


def test_a_dimension_given_by_an_extending_file_replaces_the_base_files_whole(tmp_path):
    base = load_settings().tune.space
    assert (base["max_epochs"].step, base["hidden_size"].log) == (5, True)  # what must not leak through

    given = "max_epochs = { low = 1, high = 2 }\nhidden_size = { low = 4, high = 8 }"
    space = load_settings(_extending_default(tmp_path, given)).tune.space

    assert space["max_epochs"] == ParamRange(low=1, high=2)  # no step 5: Optuna would collapse it to [1, 1]
    assert space["hidden_size"] == ParamRange(low=4, high=8)  # not on the base's log scale
    assert space["num_layers"] == base["num_layers"]  # a dimension not given is the base's


def test_an_extending_file_drops_a_base_dimension_with_false(tmp_path):
    base = load_settings().tune.space

    space = load_settings(_extending_default(tmp_path, "max_epochs = false")).tune.space

    assert set(space) == set(base) - {"max_epochs"}
    assert list(space) == [name for name in base if name != "max_epochs"]  # in the base's order


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_epoch = false", r"tune\.space: max_epoch = false drops nothing: no file this"),
        ("max_epochs = 5", r"tune\.space: max_epochs = 5: a dimension is a table \{ low = …, high = … \}"),
        ("max_epochs = true", r"max_epochs = True: a dimension is a table .*or false to drop one"),
    ],
)
def test_what_is_not_a_dimension_is_refused_in_one_line(tmp_path, line: str, message: str):
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(_extending_default(tmp_path, line))
    assert "\n" not in str(refused.value)


def test_a_configuration_that_extends_itself_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')

    with pytest.raises(ConfigError, match="extends itself"):
        load_settings(tmp_path / "a.toml")


def test_a_missing_base_configuration_is_named(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "nowhere.toml"\n')

    with pytest.raises(ConfigError, match=r"not found: .*nowhere\.toml"):
        load_settings(tmp_path / "a.toml")


def test_a_zone_name_or_eic_code_configured_twice_is_refused():
    no1, no2 = (z.model_dump() for z in load_settings().zones[:2])
    with pytest.raises(ConfigError, match=r"zones\.1\.name = 'NO1': zone name configured twice \(zones\.0"):
        load_settings(zones=[no1, {**no2, "name": "NO1"}])
    with pytest.raises(ConfigError, match=r"zones\.1\.eic = '10YNO-1--------2': EIC code configured twice"):
        load_settings(zones=[no1, {**no2, "eic": no1["eic"]}])


@pytest.mark.parametrize(
    "url",
    ["ftp://api.energy-charts.info", "file:///tmp/x", "api.energy-charts.info", "https://", "http://h:99999"],
)
def test_a_feed_base_url_that_is_not_http_with_a_host_is_refused_at_load(url):
    feeds = {
        "energy_charts": {"kind": "energy_charts", "enabled": False, "base_url": url, "series": ["price_da"]}
    }
    with pytest.raises(
        ConfigError, match=r"feeds\.energy_charts\.base_url = .*(http:// or https://|not a URL)"
    ):
        load_settings(feeds=feeds)


def test_http_and_https_base_urls_load():
    for url in ("https://api.energy-charts.info", "http://127.0.0.1:8080/api"):
        feeds = {"energy_charts": {"kind": "energy_charts", "base_url": url, "series": ["price_da"]}}
        assert load_settings(feeds=feeds).feeds["energy_charts"].base_url == url


def test_a_directory_or_binary_bytes_as_the_configuration_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match=r"configuration file .* is a directory"):
        load_settings(tmp_path)
    binary = tmp_path / "spotcast.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError, match=r"is not a text file \(TOML is UTF-8 text"):
        load_settings(binary)


def test_an_unknown_time_zone_is_one_error_not_two():
    """The zone list left empty by its one bad zone is not a second, confusing error."""
    zones = [{"name": "DE", "eic": "10Y1001A1001A63L", "timezone": "Europe/Berlinn"}]
    with pytest.raises(ConfigError) as bad:
        load_settings(zones=zones)
    message = str(bad.value)
    assert message.endswith(": zones.0.timezone = 'Europe/Berlinn': unknown time zone 'Europe/Berlinn'")
    assert "Tuple" not in message and message.count("zones") == 1


def test_an_empty_zone_list_is_still_refused():
    with pytest.raises(ConfigError, match=r"zones = \[\]: Tuple should have at least 1 item"):
        load_settings(zones=[])


def test_a_named_covariate_that_no_enabled_feed_supplies_is_refused():
    with pytest.raises(ConfigError) as bad:
        load_settings(model={"params": {"covariates": ["load_da", "solar_da"]}})
    assert str(bad.value).endswith(
        ": model.params.covariates = ['load_da', 'solar_da']: no enabled feed supplies ['solar_da']; "
        "add them to an enabled feed's series or drop them from covariates"
    )
    assert bad.value.exit_code == EXIT_USAGE
    with pytest.raises(ConfigError, match=r"tune\.params\.covariates = \['solar_da'\]"):
        load_settings(tune={"params": {"covariates": ["solar_da"]}})


def test_named_covariates_that_the_feeds_supply_load():
    settings = load_settings(model={"params": {"covariates": ["load_da"]}})
    assert settings.model.params["covariates"] == ["load_da"]


REPLAY_FORMAT_ERRORS = {
    "unknown series": ({"columns": {"Gas": "gas_price"}}, r"format\.columns\.Gas.*unknown series 'gas_price'"),
    "unit not converted": (
        {"columns": {"Price": {"series": "price_da", "unit": "DKK/MWh"}}},
        r"unit 'DKK/MWh' of price_da is not one Spotcast converts; known: \['EUR/MWh', 'EUR/kWh', 'ct/kWh'\]",
    ),
    "two columns, one series": (
        {"columns": {"Price": "price_da", "Preis": "price_da"}},
        r"columns 'Price' and 'Preis' both hold price_da",
    ),
    "a series without a column": (
        {"columns": {"Price": "price_da"}},
        r"series \['load_da'\] is in no column of format\.columns \['Price'\]",
    ),
    "unknown time zone of the stamps": ({"timezone": "Europe/Berlinn"}, r"format\.timezone = 'Europe/Berlinn'"),
}


@pytest.mark.parametrize("case", list(REPLAY_FORMAT_ERRORS))
def test_a_bad_replay_format_is_refused_at_load(case: str):
    file_format, expected = REPLAY_FORMAT_ERRORS[case]
    feeds = {"replay": {"kind": "replay", "source": "data/bundled", "series": ["price_da", "load_da"], "format": file_format}}
    with pytest.raises(ConfigError, match=expected):
        load_settings(feeds=feeds)


def test_only_a_replay_feed_takes_a_format():
    feeds = {
        "replay": {"kind": "replay", "source": "data/bundled", "series": ["price_da"]},
        "entsoe": {"kind": "entsoe", "enabled": False, "series": ["load_da"], "format": {"time_format": "ISO8601"}},
    }
    with pytest.raises(ConfigError, match=r"feeds\.entsoe: `format` describes the files of a replay feed"):
        load_settings(feeds=feeds)


def test_zero_is_missing_defaults_on_for_the_bundled_format_and_off_for_a_column_map():
    from forecasting.config import SourceFormat

    assert SourceFormat().zeros_missing is True
    assert SourceFormat(columns={"Price": "price_da"}).zeros_missing is False
    assert SourceFormat(columns={"Price": "price_da"}, zero_is_missing=True).zeros_missing is True
    assert SourceFormat(zero_is_missing=False).zeros_missing is False


def test_a_derived_covariate_needs_the_series_it_is_computed_from():
    settings = load_settings(model={"params": {"covariates": ["load_da", "reservoir_deviation"]}})
    assert settings.model.params["covariates"] == ["load_da", "reservoir_deviation"]

    no_hydro = {"replay": {"kind": "replay", "source": "data/bundled", "series": ["price_da", "load_da"]}}
    with pytest.raises(ConfigError, match=r"no enabled feed supplies \['reservoir_filling', 'reservoir_normal_max'"):
        load_settings(feeds=no_hydro, model={"params": {"covariates": ["reservoir_deviation"]}})
