"""Shared fixtures: a small real replay source, settings with a tmp lake and fast retries, and the
pytest-httpserver listen address.

The replay source is a trimmed copy of the bundled NO1/NO2 history (real values, bundled format),
written once per session so every test that replays or backfills stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from flows.defaults import apply_prefect_defaults
from forecasting.config import Settings, load_settings
from forecasting.feeds.replay import ReplayFeed
from forecasting.schema import DELIVERY_HOUR, SERIES_COL

# The suite runs flows and Prefect in its own process, so it is one of the entry points of
# flows/defaults.py: as the `spotcast` command does, Prefect's defaults are applied before any test
# module loads Prefect. Values the environment sets (PREFECT_HOME, …) win.
apply_prefect_defaults()

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = PROJECT_ROOT / "data" / "bundled"

TEST_ZONES = ("NO1", "NO2")
TEST_SERIES = ("price_da", "load_actual")
# The replay source covers both DST changes of 2022/23 and the negative prices of May–June 2023.
SOURCE_START = pd.Timestamp("2022-06-01", tz="UTC")
# A daily run's "now": 14:00 in Oslo, after the 13:00 day-ahead release.
AS_OF = pd.Timestamp("2023-06-10 12:00", tz="UTC")
HISTORY_START = "2023-01-01"
# Everything in the source is public by then.
LATE = pd.Timestamp("2030-01-01", tz="UTC")

FAST_RETRY = {
    "not_available": {"interval_s": 0.01, "backoff": 1.0, "max_attempts": 3},
    "site_down": {"interval_s": 0.01, "backoff": 2.0, "max_attempts": 3},
}


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


@pytest.fixture
def as_of() -> pd.Timestamp:
    """A daily run's "now" inside the replay source: 14:00 in Oslo, after the day-ahead release."""
    return AS_OF


@pytest.fixture(scope="session")
def zone_configs() -> list[dict]:
    """The configured NO1/NO2 zones (EIC, time zone) from the default configuration."""
    return [z.model_dump() for z in load_settings().zones if z.name in TEST_ZONES]


@pytest.fixture(scope="session")
def replay_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of bundled-format Parquet files: NO1 and NO2, price_da and load_actual, from June 2022."""
    folder = tmp_path_factory.mktemp("replay")
    for zone in TEST_ZONES:
        history = pd.read_parquet(BUNDLED / f"{zone}.parquet")
        keep = history[SERIES_COL].isin(TEST_SERIES) & (history[DELIVERY_HOUR] >= SOURCE_START)
        history[keep].reset_index(drop=True).to_parquet(folder / f"{zone}.parquet", index=False)
    return folder


@pytest.fixture
def make_settings(tmp_path: Path, zone_configs: list[dict], replay_source: Path) -> Callable[..., Settings]:
    """Settings for a tmp lake replaying the small source; keyword arguments override top-level keys."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "lake_root": str(tmp_path / "lake"),
            "zones": zone_configs,
            "feeds": {
                "replay": {"kind": "replay", "source": str(replay_source), "series": list(TEST_SERIES)}
            },
            "history": {"start": HISTORY_START},
            "retry": FAST_RETRY,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def _session_replay(tmp_path_factory: pytest.TempPathFactory, replay_source: Path) -> ReplayFeed:
    base = load_settings(
        lake_root=str(tmp_path_factory.mktemp("unused-lake")),
        zones=[z.model_dump() for z in load_settings().zones if z.name in TEST_ZONES],
        feeds={"replay": {"kind": "replay", "source": str(replay_source), "series": list(TEST_SERIES)}},
    )
    feed = ReplayFeed.from_settings(base, clock=lambda: LATE)
    _ = feed.history  # read and stamp once per session
    return feed


@pytest.fixture
def replay(_session_replay: ReplayFeed) -> Iterator[ReplayFeed]:
    """The session's replay feed (history read once); its clock is reset after each test."""
    yield _session_replay
    _session_replay.clock = lambda: LATE


@pytest.fixture(scope="session", autouse=True)
def _stop_temporary_prefect_servers() -> Iterator[None]:
    """Stop the temporary Prefect servers that in-process flows started while pytest's output
    streams are open: Prefect's own exit hook logs "Stopping temporary server" to a closed stream."""
    yield
    server_module = sys.modules.get("prefect.server.api.server")  # only if a test started one
    if server_module is not None:
        for server in list(server_module.SubprocessASGIServer._instances.values()):
            server.stop()
