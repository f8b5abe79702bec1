"""The fault suite's fixtures: a small filled lake with its configuration file, a lake filled from a
bring-your-own CSV, the `spotcast` command run in this process, helper processes that hold the
lake's lock or a temporary file, and the lake's content as file hashes (what "nothing already in the lake lost or changed" is checked against).

Every fault case ends with the same three checks: one clear line (`Outcome.message`), the
documented exit code, and the lake's files unchanged (`Lake.hashes()` before and after).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from fault_kit import (
    BYO_AS_OF,
    FILLED_AS_OF,
    HOLD,
    PROJECT_ROOT,
    Lake,
    Outcome,
    byo_lake,
    deepforkit_csv,
    lake_config,
)

from forecasting.cli import main
from forecasting.config import load_settings
from forecasting.jobs.ingest import backfill


@pytest.fixture(scope="session")
def replay_feeds(replay_source: Path) -> dict:
    return {"replay": {"kind": "replay", "source": str(replay_source), "series": ["price_da", "load_actual"]}}


@pytest.fixture(scope="session")
def _filled_template(
    tmp_path_factory: pytest.TempPathFactory, zone_configs: list[dict], replay_feeds: dict
) -> Path:
    """NO1 and NO2, price_da and load_actual, 2023-01-01 up to what was out at FILLED_AS_OF."""
    folder = tmp_path_factory.mktemp("filled")
    config = lake_config(folder, str(folder / "lake"), zone_configs, replay_feeds)
    report = backfill(load_settings(config), as_of=FILLED_AS_OF)
    assert report.ok and report.new_rows > 0
    return folder / "lake"


@pytest.fixture
def lake(tmp_path: Path, _filled_template: Path, zone_configs: list[dict], replay_feeds: dict) -> Lake:
    """A copy of the filled lake for one test, with its configuration file."""
    root = tmp_path / "lake"
    shutil.copytree(_filled_template, root)
    return Lake(root, lake_config(tmp_path, str(root), zone_configs, replay_feeds))


@pytest.fixture
def byo(tmp_path: Path, zone_configs: list[dict]) -> Lake:
    """A lake of NO1 filled from a bring-your-own CSV (the replay source folder holds NO_1.csv)."""
    lake = byo_lake(tmp_path, zone_configs)
    deepforkit_csv(tmp_path / "byo" / "NO_1.csv")
    assert backfill(lake.settings, as_of=pd.Timestamp(BYO_AS_OF, tz="UTC")).ok
    return lake


@pytest.fixture
def spotcast() -> Callable[..., Outcome]:
    """Run the `spotcast` command in this process (argparse errors included). Output goes to fresh
    buffers, not pytest's per-test capture: Prefect's console handler keeps the stream it first saw."""

    def run(*argv: str) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as stop:
                code = int(stop.code or 0)
        return Outcome(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def hold() -> Iterator[Callable[..., tuple[subprocess.Popen, str]]]:
    """Start `hold.py` (a live holder of the lock or of a temporary file); killed at the end."""
    started: list[subprocess.Popen] = []

    def start(*argv: str) -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen(
            [sys.executable, str(HOLD), *argv], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("holding "), f"hold.py did not start: {line!r}"
        return process, line.removeprefix("holding ").strip()

    yield start
    for process in started:
        process.kill()
        process.wait()
