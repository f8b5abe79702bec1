"""Market series in the lake: the raw area (every pull as fetched) and the curated area (one row per
zone × series × UTC delivery hour, with its publication time), plus pruned, as-of reads.

Layout (hive-style, readable by pandas, pyarrow and DuckDB without Spotcast):

    raw/feed=<feed>/series=<series>/zone=<zone>/pulled=<YYYY-MM-DD>/<content-hash>.parquet
    curated/series=<series>/zone=<zone>/year=<YYYY>/data.parquet

Why these keys: every consumer asks for one series of a few zones over a time range, so
series → zone → delivery year prunes to the few files needed; a year of hourly data (~8,800 rows)
is one file of useful size, where months would scatter the history over thousands of tiny files.
Raw files are named by the hash of their content, so re-running a pull writes nothing new.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from forecasting.lake.files import LakeFS
from forecasting.schema import (
    DELIVERY_HOUR,
    PUBLISHED_AT,
    RETRIEVED_AT,
    SERIES_COL,
    SERIES_COLUMNS,
    UNIT,
    VALUE,
    ZONE,
    empty_series_frame,
    validate_series_frame,
)

log = logging.getLogger("spotcast.lake")

RAW = "raw"
CURATED = "curated"
YEAR = "year"
FEED = "feed"
DATA_FILE = "data.parquet"

TS = pa.timestamp("ns", tz="UTC")
CURATED_FILE_SCHEMA = pa.schema(
    [
        (DELIVERY_HOUR, TS),
        (VALUE, pa.float64()),
        (UNIT, pa.string()),
        (PUBLISHED_AT, TS),
        (RETRIEVED_AT, TS),
        (FEED, pa.string()),
    ]
)
CURATED_PARTITIONING = ds.partitioning(
    pa.schema([(SERIES_COL, pa.string()), (ZONE, pa.string()), (YEAR, pa.int32())]), flavor="hive"
)


@dataclass
class AppendResult:
    """What one append changed in the curated area."""

    new_rows: int = 0
    revised_rows: int = 0
    unchanged_rows: int = 0
    files_written: list[str] = field(default_factory=list)
    raw_file: str | None = None

    def add(self, other: AppendResult) -> None:
        self.new_rows += other.new_rows
        self.revised_rows += other.revised_rows
        self.unchanged_rows += other.unchanged_rows
        self.files_written += other.files_written


def _content_hash(frame: pd.DataFrame) -> str:
    """Hash of what was fetched, not when: identical pulls map to the same raw file."""
    content = frame[[ZONE, SERIES_COL, DELIVERY_HOUR, VALUE, UNIT, PUBLISHED_AT]]
    hashed = pd.util.hash_pandas_object(content, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:32]


def write_raw_pull(lake: LakeFS, frame: pd.DataFrame, feed: str) -> str | None:
    """Keep one pull as fetched, with its retrieval time; returns the file or None if already kept."""
    if frame.empty:
        return None
    zone, series = frame[ZONE].iloc[0], frame[SERIES_COL].iloc[0]
    pulled = frame[RETRIEVED_AT].min().strftime("%Y-%m-%d")
    folder = lake.path(RAW, f"{FEED}={feed}", f"{SERIES_COL}={series}", f"{ZONE}={zone}")
    name = f"{_content_hash(frame)}.parquet"
    if lake.exists(folder) and any(p.endswith("/" + name) for p in lake.fs.find(folder)):
        return None
    path = f"{folder}/pulled={pulled}/{name}"
    # zone and series are in the path (hive keys); repeating them in the file confuses readers
    content = frame.drop(columns=[ZONE, SERIES_COL])
    lake.write_table_atomic(pa.Table.from_pandas(content, preserve_index=False), path)
    return path


def curated_file(lake: LakeFS, series: str, zone: str, year: int) -> str:
    return lake.path(CURATED, f"{SERIES_COL}={series}", f"{ZONE}={zone}", f"{YEAR}={year}", DATA_FILE)


def _read_partition(lake: LakeFS, path: str) -> pd.DataFrame:
    if not lake.exists(path):
        return pd.DataFrame(
            {
                c: pd.Series(dtype=t.to_pandas_dtype())
                for c, t in zip(CURATED_FILE_SCHEMA.names, CURATED_FILE_SCHEMA.types, strict=True)
            }
        )
    return lake.read_table(path).to_pandas()


def _merge(existing: pd.DataFrame, incoming: pd.DataFrame) -> tuple[pd.DataFrame, AppendResult]:
    """Upsert by delivery hour: new hours are added, changed values replace the old row (the raw area
    keeps the old pull), identical values keep the stored row untouched."""
    joined = incoming.merge(
        existing[[DELIVERY_HOUR, VALUE]],
        on=DELIVERY_HOUR,
        how="left",
        suffixes=("", "_stored"),
        indicator=True,
    )
    is_new = joined["_merge"].eq("left_only").to_numpy()
    same = np.isclose(joined[VALUE], joined[f"{VALUE}_stored"], rtol=0, atol=1e-9, equal_nan=True)
    is_revised = ~is_new & ~same
    changed = incoming[is_new | is_revised]
    result = AppendResult(int(is_new.sum()), int(is_revised.sum()), int((~is_new & same).sum()))
    kept = existing[~existing[DELIVERY_HOUR].isin(changed[DELIVERY_HOUR])]
    merged = pd.concat([kept, changed], ignore_index=True).sort_values(DELIVERY_HOUR)
    return merged.reset_index(drop=True), result


def append_series(lake: LakeFS, frame: pd.DataFrame, feed: str) -> AppendResult:
    """Append a tidy series frame (any zones/series) idempotently. The caller holds the write lock."""
    frame = validate_series_frame(frame, f"append from {feed}")
    result = AppendResult()
    for (zone, series), rows in frame.groupby([ZONE, SERIES_COL], sort=True):
        result.raw_file = write_raw_pull(lake, rows, feed) or result.raw_file
        incoming = rows.drop(columns=[ZONE, SERIES_COL]).assign(**{FEED: feed})
        for year, part in incoming.groupby(incoming[DELIVERY_HOUR].dt.year, sort=True):
            path = curated_file(lake, series, zone, int(year))
            merged, part_result = _merge(_read_partition(lake, path), part)
            if part_result.new_rows or part_result.revised_rows:
                table = pa.Table.from_pandas(
                    merged[CURATED_FILE_SCHEMA.names], CURATED_FILE_SCHEMA, preserve_index=False
                )
                lake.write_table_atomic(table, path)
                part_result.files_written.append(path)
            result.add(part_result)
    return result


def _dataset(lake: LakeFS) -> ds.Dataset | None:
    folder = lake.path(CURATED)
    if not lake.exists(folder):
        return None
    return ds.dataset(
        folder,
        filesystem=lake.fs,
        format="parquet",
        partitioning=CURATED_PARTITIONING,
        schema=pa.unify_schemas([CURATED_FILE_SCHEMA, CURATED_PARTITIONING.schema]),
    )


def read_series(
    lake: LakeFS,
    series: list[str] | None = None,
    zones: list[str] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    as_of: pd.Timestamp | None = None,
    with_feed: bool = False,
) -> pd.DataFrame:
    """Curated rows as a tidy series frame; partitions outside the series/zones/years are not read.

    `as_of` keeps only what had been published by then (what a forecast issued then could see);
    `with_feed` adds the name of the feed that delivered each row (lineage).
    """
    dataset = _dataset(lake)
    if dataset is None:
        return empty_series_frame()
    conditions = []
    if series:
        conditions.append(ds.field(SERIES_COL).isin(series))
    if zones:
        conditions.append(ds.field(ZONE).isin(zones))
    if start is not None:  # partitions are UTC years
        start = pd.Timestamp(start).tz_convert("UTC")
        conditions += [ds.field(YEAR) >= start.year, ds.field(DELIVERY_HOUR) >= pa.scalar(start, TS)]
    if end is not None:
        end = pd.Timestamp(end).tz_convert("UTC")
        conditions += [ds.field(YEAR) <= end.year, ds.field(DELIVERY_HOUR) < pa.scalar(end, TS)]
    if as_of is not None:
        conditions.append(ds.field(PUBLISHED_AT) <= pa.scalar(as_of, TS))
    condition = None
    for c in conditions:
        condition = c if condition is None else condition & c
    table = dataset.to_table(filter=condition, columns=SERIES_COLUMNS + ([FEED] if with_feed else []))
    frame = table.to_pandas()
    frame[ZONE] = frame[ZONE].astype(str)
    frame[SERIES_COL] = frame[SERIES_COL].astype(str)
    return frame.sort_values([ZONE, SERIES_COL, DELIVERY_HOUR]).reset_index(drop=True)


def newest_hours(lake: LakeFS) -> pd.DataFrame:
    """Per zone × series: row count, first and newest delivery hour in the curated area."""
    columns = [ZONE, SERIES_COL, "rows", "first_hour", "newest_hour"]
    dataset = _dataset(lake)
    if dataset is None:
        return pd.DataFrame(columns=columns)
    table = dataset.to_table(columns=[ZONE, SERIES_COL, DELIVERY_HOUR])  # the hour column only
    stats = table.group_by([ZONE, SERIES_COL]).aggregate(
        [(DELIVERY_HOUR, "count"), (DELIVERY_HOUR, "min"), (DELIVERY_HOUR, "max")]
    )
    frame = stats.to_pandas().rename(
        columns={
            f"{DELIVERY_HOUR}_count": "rows",
            f"{DELIVERY_HOUR}_min": "first_hour",
            f"{DELIVERY_HOUR}_max": "newest_hour",
        }
    )
    return frame[columns].sort_values([ZONE, SERIES_COL]).reset_index(drop=True)
