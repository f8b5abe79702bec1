"""What the fault tests share (not a test module): the lake under test with its configuration file,
its content as file hashes, a bring-your-own CSV lake, the outcome of a `spotcast` command, and a
`spotcast` command run in a process of its own."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from spotcast_testing import detached_env, write_config

from forecasting.config import Settings, load_settings
from forecasting.console import LOGS
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import read_series
from forecasting.schema import DELIVERY_HOUR, SERIES_COL, VALUE

HOLD = Path(__file__).with_name("hold.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUNDLED = PROJECT_ROOT / "data" / "bundled"
AS_OF = pd.Timestamp("2023-06-10 12:00", tz="UTC")  # the filled lake holds what was out 30 days before
FILLED_AS_OF = AS_OF - pd.Timedelta(days=30)
FAST_RETRY = {
    "not_available": {"interval_s": 0.01, "backoff": 1.0, "max_attempts": 2},
    "site_down": {"interval_s": 0.01, "backoff": 1.0, "max_attempts": 2},
}


@dataclass
class Lake:
    """A lake and the configuration file that points at it."""

    root: Path
    config: Path

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)

    @property
    def fs(self) -> LakeFS:
        return LakeFS.open(str(self.root))

    def hashes(self) -> dict[str, str]:
        """sha256 of every data file, by path below the root (the runs' own log files aside: a run
        that stops at bad input still leaves its log)."""
        return {
            str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and p.relative_to(self.root).parts[0] != LOGS
        }

    def rows(self) -> pd.DataFrame:
        return read_series(self.fs)

    def curated(self, series: str, zone: str, year: int) -> Path:
        return self.root / "curated" / f"series={series}" / f"zone={zone}" / f"year={year}" / "data.parquet"


def lake_config(folder: Path, lake_root: str, zones: list[dict], feeds: dict, **changes: object) -> Path:
    """A configuration file for a lake: the default one with these zones and feeds, history from
    2023-01-01, fast retries and a short wait for the lake lock."""
    values: dict[str, object] = {
        "lake_root": lake_root,
        "models_root": str(folder / "models"),
        "zones": [{k: v for k, v in zone.items() if v is not None} for zone in zones],
        "feeds": feeds,
        "history": {"start": "2023-01-01", "backfill_chunk_days": 92},
        "retry": FAST_RETRY,
        "lake_lock_wait_s": 1.0,
    }
    values.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder / "spotcast.toml", **values)


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def message(self) -> str:
        """The one line the command said about what went wrong (and no traceback)."""
        assert "Traceback" not in self.err, self.err
        lines = [line for line in self.err.splitlines() if line.startswith("spotcast")]
        assert len(lines) == 1, self.err
        return lines[0]


STOP_WITHIN_S = 20  # a stopped command exits within: typically 2 s; the rest is Prefect's own exit


def run_detached(tmp_path: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m forecasting.cli *argv` as cron or a shell would, to its end; stdout and stderr
    captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "forecasting.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=detached_env(tmp_path / "prefect"),
        cwd=PROJECT_ROOT,
    )


# --- bring-your-own CSVs (the replay source) --------------------------------------------------------

BYO_AS_OF = "2016-01-12T12:00"


def deepforkit_csv(path: Path) -> pd.DataFrame:
    """NO1's real prices and actual load of 1–10 January 2016 as a deepforkit-format CSV (local wall
    clock, 24 rows a day); returns the rows written."""
    history = pd.read_parquet(BUNDLED / "NO1.parquet")
    hours = history[DELIVERY_HOUR].between(
        pd.Timestamp("2015-12-31 23:00", tz="UTC"), pd.Timestamp("2016-01-10 22:00", tz="UTC")
    )
    wide = history[hours].pivot(index=DELIVERY_HOUR, columns=SERIES_COL, values=VALUE)[
        ["price_da", "load_actual"]
    ]
    local = wide.index.tz_convert("Europe/Oslo")
    rows = pd.DataFrame(
        {
            "": [f"{t.month}/{t.day}/{t.year} {t.hour}:00" for t in local],
            "Price_DA": wide["price_da"].to_numpy(),
            "Load_AC": wide["load_actual"].to_numpy(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False)
    return rows


def byo_lake(folder: Path, zones: list[dict]) -> Lake:
    """An empty lake below `folder` of NO1 alone, whose replay source is the folder `folder/byo`
    (where its NO_1.csv goes), history from 2016-01-01."""
    replay = {"kind": "replay", "source": str(folder / "byo"), "series": ["price_da", "load_actual"]}
    no1 = [z for z in zones if z["name"] == "NO1"]
    config = lake_config(
        folder, str(folder / "lake"), no1, {"replay": replay}, history={"start": "2016-01-01"}
    )
    return Lake(folder / "lake", config)


def rewrite_byo_csv(lake: Lake, change: Callable[[str], str]) -> Path:
    """Change the text of the lake's NO_1.csv and date it later (a new recording: read again)."""
    path = Path(lake.settings.feeds["replay"].source) / "NO_1.csv"
    path.write_text(change(path.read_text()))
    os.utime(path, (time.time() + 5, time.time() + 5))
    return path
