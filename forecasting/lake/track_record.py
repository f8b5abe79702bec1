"""A model's track record: the raw (uncalibrated) sample paths it issued at past instants, kept so
that each (model, issue) is forecast once. The spread stages read them back as their out-of-sample
evidence (hourly and per calendar product), and analysts read them as the model's history of
forecasts.

    track_record/model_id=<model id>/issued_at=<YYYYMMDDTHHMMZ>/data.parquet    one issue, all zones

One row per zone × delivery hour: the raw hourly forecast (forecast frame columns: mean and deciles
of the paths, for reading the history cheaply), the zone's time zone, and `paths`, the hour's
prices of every sample path (a list of float32; 200 paths × 672 hours × 5 zones ≈ 2.7 MB an issue).
A raw forecast of an issue depends only on the model and on what was published by the issue
instant, so a stored one never goes stale; a model retrained on other data or parameters has
another model id. An entry written before paths were kept (no `paths` column) counts as missing
and is made again. `MemoryTrackRecord` keeps them for one process (a backtest).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from forecasting.lake.files import LakeFS
from forecasting.paths import PATH_DTYPE, IssuePaths, ZonePaths
from forecasting.schema import DELIVERY_HOUR, FORECAST_COLUMNS, ISSUED_AT, ZONE

TRACK_RECORD = "track_record"
DATA_FILE = "data.parquet"
STAMP = "%Y%m%dT%H%MZ"
PATHS = "paths"
TIMEZONE = "timezone"


class TrackRecord(Protocol):
    def get(self, model_id: str, issued_at: pd.Timestamp) -> IssuePaths | None:
        """The raw paths the model issued at `issued_at`, None if never stored."""
        ...

    def put(self, model_id: str, paths: IssuePaths) -> None:
        """Keep one issue's raw paths (all zones)."""
        ...


def _utc(issued_at: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(issued_at).tz_convert("UTC")


class MemoryTrackRecord:
    """Raw paths kept in this process only."""

    def __init__(self) -> None:
        self._issues: dict[tuple[str, pd.Timestamp], IssuePaths] = {}

    def get(self, model_id: str, issued_at: pd.Timestamp) -> IssuePaths | None:
        return self._issues.get((model_id, _utc(issued_at)))

    def put(self, model_id: str, paths: IssuePaths) -> None:
        self._issues[(model_id, _utc(paths.issued_at))] = paths


def paths_table(paths: IssuePaths) -> pa.Table:
    """One issue as a track-record table (see the module docstring)."""
    frame = paths.forecast_frame()
    frame[TIMEZONE] = np.repeat([zone.timezone for zone in paths.zones], [zone.values.shape[1] for zone in paths.zones])
    table = pa.Table.from_pandas(frame[[*FORECAST_COLUMNS, TIMEZONE]], preserve_index=False)
    values = np.concatenate([zone.values.T for zone in paths.zones]).astype(PATH_DTYPE)  # hours × samples
    samples = values.shape[1]
    column = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), type=pa.float32()), samples)
    return table.append_column(PATHS, column)


def paths_of_table(table: pa.Table) -> IssuePaths:
    """The issue a track-record table holds (inverse of `paths_table`)."""
    frame = table.drop_columns([PATHS]).to_pandas()
    values = table.column(PATHS).combine_chunks()
    samples = values.type.list_size
    flat = values.flatten().to_numpy(zero_copy_only=False).reshape(-1, samples)
    zones = []
    for zone, rows in frame.groupby(ZONE, sort=False):
        first = rows.iloc[0]
        zones.append(ZonePaths(
            zone=str(zone),
            timezone=str(first[TIMEZONE]),
            issued_at=_utc(first[ISSUED_AT]),
            delivery_hours=pd.DatetimeIndex(rows[DELIVERY_HOUR]),
            values=np.ascontiguousarray(flat[rows.index.to_numpy()].T),
            model_id=str(first["model_id"]),
        ))
    return IssuePaths(zones[0].issued_at, zones[0].model_id, tuple(zones))


class LakeTrackRecord:
    """Raw paths kept in the lake (one Parquet file per model and issue, written atomically)."""

    def __init__(self, lake: LakeFS) -> None:
        self.lake = lake

    def _path(self, model_id: str, issued_at: pd.Timestamp) -> str:
        stamp = _utc(issued_at).strftime(STAMP)
        return self.lake.path(TRACK_RECORD, f"model_id={model_id}", f"{ISSUED_AT}={stamp}", DATA_FILE)

    def get(self, model_id: str, issued_at: pd.Timestamp) -> IssuePaths | None:
        path = self._path(model_id, issued_at)
        if not self.lake.exists(path):
            return None
        table = self.lake.read_table(path)
        return paths_of_table(table) if PATHS in table.column_names else None

    def put(self, model_id: str, paths: IssuePaths) -> None:
        self.lake.write_table_atomic(paths_table(paths), self._path(model_id, paths.issued_at))

    def issues(self, model_id: str) -> list[pd.Timestamp]:
        """Issue instants stored for `model_id`, oldest first."""
        stamps = self.lake.partitions(self.lake.path(TRACK_RECORD, f"model_id={model_id}"), ISSUED_AT)
        return sorted(pd.to_datetime(stamps, format=STAMP, utc=True))

    def read(self, model_id: str) -> pd.DataFrame:
        """Every stored raw hourly forecast of `model_id` (forecast frames; empty frame if none)."""
        frames = [
            self.lake.read_table(self._path(model_id, issue), columns=FORECAST_COLUMNS).to_pandas()
            for issue in self.issues(model_id)
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FORECAST_COLUMNS)
