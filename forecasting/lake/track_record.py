"""A model's track record: the raw (uncalibrated) forecasts it issued at past instants, kept so that
each (model, issue) is forecast once. The spread calibration reads them back as its out-of-sample
evidence, and analysts read them as the model's history of forecasts.

    track_record/model_id=<model id>/issued_at=<YYYYMMDDTHHMMZ>/data.parquet    one issue, all zones

A raw forecast of an issue depends only on the model and on what was published by the issue
instant, so a stored one never goes stale; a model retrained on other data or parameters has
another model id. `MemoryTrackRecord` keeps them for one process (a backtest).
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd
import pyarrow as pa

from forecasting.lake.files import LakeFS
from forecasting.schema import FORECAST_COLUMNS, ISSUED_AT

TRACK_RECORD = "track_record"
DATA_FILE = "data.parquet"
STAMP = "%Y%m%dT%H%MZ"


class TrackRecord(Protocol):
    def get(self, model_id: str, issued_at: pd.Timestamp) -> pd.DataFrame | None:
        """The raw forecast frame the model issued at `issued_at`, None if never stored."""
        ...

    def put(self, model_id: str, frame: pd.DataFrame) -> None:
        """Keep one issue's raw forecast frame (all zones, one `issued_at`)."""
        ...


def _issue_of(frame: pd.DataFrame) -> pd.Timestamp:
    issues = frame[ISSUED_AT].unique()
    if len(issues) != 1:
        raise ValueError(f"a track-record entry holds exactly one issue instant, got {len(issues)}")
    return pd.Timestamp(issues[0]).tz_convert("UTC")


class MemoryTrackRecord:
    """Raw forecasts kept in this process only."""

    def __init__(self) -> None:
        self._frames: dict[tuple[str, pd.Timestamp], pd.DataFrame] = {}

    def get(self, model_id: str, issued_at: pd.Timestamp) -> pd.DataFrame | None:
        return self._frames.get((model_id, pd.Timestamp(issued_at).tz_convert("UTC")))

    def put(self, model_id: str, frame: pd.DataFrame) -> None:
        self._frames[(model_id, _issue_of(frame))] = frame


class LakeTrackRecord:
    """Raw forecasts kept in the lake (one small Parquet file per model and issue, written atomically)."""

    def __init__(self, lake: LakeFS) -> None:
        self.lake = lake

    def _path(self, model_id: str, issued_at: pd.Timestamp) -> str:
        stamp = pd.Timestamp(issued_at).tz_convert("UTC").strftime(STAMP)
        return self.lake.path(TRACK_RECORD, f"model_id={model_id}", f"{ISSUED_AT}={stamp}", DATA_FILE)

    def get(self, model_id: str, issued_at: pd.Timestamp) -> pd.DataFrame | None:
        path = self._path(model_id, issued_at)
        if not self.lake.exists(path):
            return None
        return self.lake.read_table(path).to_pandas()[FORECAST_COLUMNS]

    def put(self, model_id: str, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame[FORECAST_COLUMNS], preserve_index=False)
        self.lake.write_table_atomic(table, self._path(model_id, _issue_of(frame)))

    def issues(self, model_id: str) -> list[pd.Timestamp]:
        """Issue instants stored for `model_id`, oldest first."""
        folder = self.lake.path(TRACK_RECORD, f"model_id={model_id}")
        if not self.lake.exists(folder):
            return []
        names = [p.rsplit("/", 1)[-1] for p in self.lake.fs.ls(folder, detail=False)]
        stamps = [n.split("=", 1)[1] for n in names if n.startswith(f"{ISSUED_AT}=")]
        return sorted(pd.to_datetime(stamps, format=STAMP, utc=True))

    def read(self, model_id: str) -> pd.DataFrame:
        """Every stored raw forecast of `model_id` (empty frame if none)."""
        frames = [self.get(model_id, issue) for issue in self.issues(model_id)]
        frames = [f for f in frames if f is not None]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FORECAST_COLUMNS)
