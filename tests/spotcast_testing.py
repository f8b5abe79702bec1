"""Test configurations shared by every test that trains or runs a flow: the default configuration
with a tmp lake, fewer zones, a short history and a tiny but real DeepAR model (seconds of training on
2 cores). Short lags drift at four weeks (see forecasting/model/pipeline.py): these tests check
plumbing and contracts, not accuracy, so the cheapest configuration that trains for real is right.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from datetime import date
from datetime import time as clock_time
from pathlib import Path
from typing import TYPE_CHECKING

from forecasting.config import DEFAULT_CONFIG

if TYPE_CHECKING:
    import pandas as pd

    from forecasting.jobs.forecast import IssuedForecast

PREFECT_DB = "prefect.db"  # Prefect's SQLite database in its PREFECT_HOME (its default URL)


@functools.cache
def _migrated_prefect_db() -> Path:
    """A Prefect database migrated to the installed Prefect's schema, made once per test session: a
    server on a fresh PREFECT_HOME spends ~10 of its ~16 s here migrating an empty one."""
    home = Path(tempfile.mkdtemp(prefix="spotcast-prefect-db-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    env = offline_env(PREFECT_HOME=str(home))
    command = [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and (home / PREFECT_DB).is_file(), done.stdout + done.stderr
    return home / PREFECT_DB


def prefect_home(folder: Path) -> Path:
    """`folder` (made if missing) as a PREFECT_HOME whose database is already migrated (a copy of
    the session's), unless it holds one: what a user's PREFECT_HOME has after its first run."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / PREFECT_DB).exists():
        shutil.copyfile(_migrated_prefect_db(), folder / PREFECT_DB)
    return folder


def offline_env(**changes: str) -> dict[str, str]:
    """The environment of a process a test starts (a `spotcast` command, a Prefect server or worker):
    this one's without any PREFECT_ setting (no PREFECT_API_URL: a test never reports to a server
    it did not start), no telemetry, then `changes`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **changes}


def detached_env(home: Path, **changes: str) -> dict[str, str]:
    """`offline_env` with a Prefect home of its own in `home` (its database already migrated)."""
    return offline_env(PREFECT_HOME=str(prefect_home(home)), **changes)


TINY_PARAMS: dict[str, object] = {
    "context_length": 24,
    "lags_seq": (1, 24),
    "hidden_size": 8,
    "num_layers": 1,
    "dropout_rate": 0.0,
    "max_epochs": 1,
    "num_batches_per_epoch": 5,
    "batch_size": 8,
    "num_samples": 20,
    "origin_stride_days": 7,
    "calibration_weeks": 2,
}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date | clock_time):
        return f'"{value.isoformat()}"'
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def dump_toml(data: dict, prefix: str = "") -> str:
    """Enough TOML for a Spotcast configuration: scalars, lists, tables, arrays of tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if isinstance(v, list) and not _tables(v)]
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += ["", f"[{name}]", dump_toml(value, f"{name}.")]
        elif isinstance(value, list) and _tables(value):
            for item in value:
                lines += ["", f"[[{name}]]", dump_toml(item, f"{name}.")]
    return "\n".join(lines)


def _tables(value: list) -> bool:
    return bool(value) and all(isinstance(v, dict) for v in value)


def write_config(path: Path, **changes: object) -> Path:
    """configs/spotcast.toml with top-level tables/keys replaced by `changes`. Relative replay
    sources (`data/bundled`) are the checkout's: written absolute, as a file outside the checkout
    needs them (its own relative paths are relative to its own folder)."""
    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    raw.update(changes)
    checkout = DEFAULT_CONFIG.parent.parent
    raw["feeds"] = {
        name: {**feed, "source": str(checkout / feed["source"])}
        if isinstance(feed.get("source"), str) and "://" not in feed["source"]
        else feed
        for name, feed in raw["feeds"].items()
    }
    path.write_text(dump_toml(raw) + "\n")
    return path


def tiny_config(folder: Path, zones: list[str], history_start: str, **changes: object) -> Path:
    """A configuration file in `folder`: lake and models there, only `zones`, history from
    `history_start`, the tiny model; `changes` replace further top-level keys (the lake's too)."""
    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    tiny: dict[str, object] = {
        "lake_root": str(folder / "lake"),
        "models_root": str(folder / "models"),
        "zones": [z for z in raw["zones"] if z["name"] in zones],
        "history": {**raw["history"], "start": history_start},
        "model": {**raw["model"], "params": TINY_PARAMS},
    }
    return write_config(folder / "spotcast.toml", **{**tiny, **changes})


def issue_tiny_forecast(config: Path, as_of: pd.Timestamp) -> IssuedForecast:
    """A real tiny run on the lake of `config`: backfill up to `as_of`, train and promote the first
    model, issue its forecast (hourly view, paths, products) at `as_of`."""
    from forecasting.config import load_settings
    from forecasting.jobs import ingest
    from forecasting.jobs.forecast import issue_forecast
    from forecasting.jobs.train import train
    from forecasting.lake.files import LakeFS
    from forecasting.model.registry import load_champion

    settings = load_settings(config)
    report = ingest.backfill(settings, as_of=as_of)
    assert report.ok, report.problems()
    assert train(settings, as_of).promoted
    return issue_forecast(settings, load_champion(LakeFS.open(settings.lake_root), settings), as_of)


def assert_predict_leaves_unchanged(estimator, history: pd.DataFrame, issued_at: pd.Timestamp) -> None:
    """scikit-learn's check_dict_unchanged: a forecast returns its by-products, stores none."""
    before = dict(estimator.__dict__)
    params = estimator.get_params()
    estimator.predict(history, issued_at)
    assert estimator.__dict__.keys() == before.keys()
    assert all(estimator.__dict__[key] is value for key, value in before.items())
    assert estimator.get_params() == params
