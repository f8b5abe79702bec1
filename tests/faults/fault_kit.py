"""What the fault tests share (not a test module): the lake under test with its configuration file,
its content as file hashes, and the outcome of a `spotcast` command."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from spotcast_testing import write_config

from forecasting.config import Settings, load_settings
from forecasting.console import LOGS
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import read_series

HOLD = Path(__file__).with_name("hold.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
