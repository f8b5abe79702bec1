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
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from forecasting.lake.files import CorruptFile, LakeFS
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
SERIES_TABLE_SCHEMA = pa.schema(
    [
        (ZONE, pa.string()),
        (SERIES_COL, pa.string()),
        (DELIVERY_HOUR, TS),
        (VALUE, pa.float64()),
        (UNIT, pa.string()),
        (PUBLISHED_AT, TS),
        (RETRIEVED_AT, TS),
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


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """Per row, a hash of what was fetched, not when (the same for a row whatever frame holds it, and
    whether its strings are categories or not)."""
    content = frame[[ZONE, SERIES_COL, DELIVERY_HOUR, VALUE, UNIT, PUBLISHED_AT]]
    return pd.util.hash_pandas_object(content, index=False).to_numpy()


def _content_name(row_hashes: np.ndarray) -> str:
    """Raw file name of one pull: identical pulls map to the same raw file."""
    return f"{hashlib.sha256(row_hashes.tobytes()).hexdigest()[:32]}.parquet"


def _kept_names(lake: LakeFS, folder: str) -> set[str]:
    """Names of the raw files kept in one feed × series × zone folder (all pull days)."""
    if not lake.exists(folder):
        return set()
    return {p.rsplit("/", 1)[-1] for p in lake.fs.find(folder, withdirs=False)}


def _new_raw_path(lake: LakeFS, feed: str, rows: pa.Table, name: str) -> str | None:
    """Where one pull (one zone × series) is kept as fetched; None when a pull of the same content
    is kept already (on any day)."""
    zone, series = rows.column(ZONE)[0].as_py(), rows.column(SERIES_COL)[0].as_py()
    folder = lake.path(RAW, f"{FEED}={feed}", f"{SERIES_COL}={series}", f"{ZONE}={zone}")
    if name in _kept_names(lake, folder):
        return None
    pulled = pc.min(rows.column(RETRIEVED_AT)).as_py().strftime("%Y-%m-%d")
    return f"{folder}/pulled={pulled}/{name}"


def curated_file(lake: LakeFS, series: str, zone: str, year: int) -> str:
    return lake.path(CURATED, f"{SERIES_COL}={series}", f"{ZONE}={zone}", f"{YEAR}={year}", DATA_FILE)


def _read_partition(lake: LakeFS, path: str) -> pa.Table | None:
    """The stored rows of one curated file in the curated schema; None when there is no file."""
    if not lake.exists(path):
        return None
    table = lake.read_table(path)
    try:
        return table.select(CURATED_FILE_SCHEMA.names).cast(CURATED_FILE_SCHEMA)
    except (KeyError, pa.ArrowException) as exc:
        raise CorruptFile(path, f"not a curated series file: {exc}") from exc


def _merge(existing: pa.Table | None, incoming: pa.Table) -> tuple[pa.Table, AppendResult]:
    """Upsert by delivery hour (`incoming` sorted by it): new hours are added, changed values replace
    the old row (the raw area keeps the old pull), identical values keep the stored row untouched."""
    if existing is None:
        return incoming, AppendResult(new_rows=incoming.num_rows)
    stored_at = pc.index_in(incoming.column(DELIVERY_HOUR), value_set=existing.column(DELIVERY_HOUR))
    is_new = stored_at.is_null().to_numpy(zero_copy_only=False)
    stored = existing.column(VALUE).take(stored_at).to_numpy(zero_copy_only=False)  # NaN where new
    same = ~is_new & np.isclose(incoming.column(VALUE).to_numpy(), stored, rtol=0, atol=1e-9)
    is_changed = ~same  # new or revised
    result = AppendResult(int(is_new.sum()), int((is_changed & ~is_new).sum()), int(same.sum()))
    changed = incoming.filter(is_changed)
    replaced = pc.is_in(existing.column(DELIVERY_HOUR), value_set=changed.column(DELIVERY_HOUR))
    kept = existing.filter(pc.invert(replaced))
    return pa.concat_tables([kept, changed]).sort_by(DELIVERY_HOUR), result


def _curated_rows(rows: pa.Table, feed: str) -> pa.Table:
    """Rows of one zone × series in the curated file schema (the feed that delivered them added)."""
    delivered_by = pa.repeat(pa.scalar(feed), rows.num_rows)
    return (
        rows.select(CURATED_FILE_SCHEMA.names[:-1])
        .append_column(FEED, delivered_by)
        .cast(CURATED_FILE_SCHEMA)
    )


def _rows_at(table: pa.Table, positions: np.ndarray) -> pa.Table:
    """The rows at ascending `positions`: a zero-copy slice when they are one run (a sorted frame)."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return table.slice(int(positions[0]), len(positions))
    return table.take(positions)


def _by_year(rows: pa.Table, years: np.ndarray) -> Iterator[tuple[int, pa.Table]]:
    """One zone × series's rows sorted by delivery hour, cut into delivery years (slices)."""
    hours = rows.column(DELIVERY_HOUR).to_numpy().view("int64")
    if (np.diff(hours) < 0).any():
        order = np.argsort(hours, kind="stable")
        rows, years = rows.take(order), years[order]
    cuts = np.flatnonzero(np.diff(years)) + 1
    for start, end in zip(np.r_[0, cuts], np.r_[cuts, len(years)], strict=True):
        yield int(years[start]), rows.slice(int(start), int(end - start))


def append_series(lake: LakeFS, frame: pd.DataFrame, feed: str) -> AppendResult:
    """Append a tidy series frame (any zones/series) idempotently. The caller holds the write lock.

    Per zone × series, its rows are kept as one raw pull and merged into the curated file of each
    delivery year they touch; all these files are replaced together (all or none), each once."""
    # zone, series and unit hold a few distinct strings: as categories, the checks, hashes and
    # grouping below compare those few instead of one string per row
    frame = frame.astype({c: "category" for c in (ZONE, SERIES_COL, UNIT) if c in frame.columns})
    frame = validate_series_frame(frame, f"append from {feed}")
    # one thread: a pool of its own per call costs more than converting a pull's columns
    table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    table = table.replace_schema_metadata(None).cast(SERIES_TABLE_SCHEMA)  # categories as plain strings
    row_hashes = _row_hashes(frame)
    years = frame[DELIVERY_HOUR].dt.year.to_numpy()
    result = AppendResult()
    files: dict[str, pa.Table | bytes] = {}
    pairs = frame.groupby([ZONE, SERIES_COL], sort=True, observed=True).indices
    for (zone, series), positions in pairs.items():
        rows = _rows_at(table, positions)
        raw_path = _new_raw_path(lake, feed, rows, _content_name(row_hashes[positions]))
        if raw_path:
            # zone and series are in the path (hive keys); repeating them in the file confuses readers
            files[raw_path] = rows.drop_columns([ZONE, SERIES_COL])
            result.raw_file = raw_path
        for year, incoming in _by_year(_curated_rows(rows, feed), years[positions]):
            path = curated_file(lake, series, zone, year)
            merged, year_result = _merge(_read_partition(lake, path), incoming)
            if year_result.new_rows or year_result.revised_rows:
                files[path] = merged
                year_result.files_written.append(path)
            result.add(year_result)
    # one write for all pairs: every file of the call is encoded and synced side by side
    lake.write_tables_atomic(files)
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


def _to_table(
    lake: LakeFS, dataset: ds.Dataset, condition: ds.Expression | None, columns: list[str]
) -> pa.Table:
    """Read the files the condition selects; a corrupt one is named (CorruptFile), not just failed on."""
    try:
        return dataset.to_table(filter=condition, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        for fragment in dataset.get_fragments(filter=condition):
            lake.read_table(fragment.path, columns=[DELIVERY_HOUR])  # raises CorruptFile for the bad one
        raise exc


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
    table = _to_table(lake, dataset, condition, SERIES_COLUMNS + ([FEED] if with_feed else []))
    frame = table.to_pandas()
    frame[ZONE] = frame[ZONE].astype(str)
    frame[SERIES_COL] = frame[SERIES_COL].astype(str)
    return frame.sort_values([ZONE, SERIES_COL, DELIVERY_HOUR]).reset_index(drop=True)


# --- what the lake holds, file by file: one unreadable file never hides the others ----------------


@dataclass(frozen=True)
class CuratedFile:
    series: str
    zone: str
    year: int
    path: str


def curated_files(lake: LakeFS) -> list[CuratedFile]:
    """Every curated data file, by its partition keys (from the listing: nothing is read)."""
    folder = lake.path(CURATED)
    if not lake.exists(folder):
        return []
    found = []
    for path in lake.fs.find(folder, withdirs=False):
        parts = path.split(f"/{CURATED}/", 1)[-1].split("/")
        keys = dict(part.split("=", 1) for part in parts[:-1] if "=" in part)
        if parts[-1] == DATA_FILE and {SERIES_COL, ZONE, YEAR} <= set(keys) and keys[YEAR].isdigit():
            found.append(CuratedFile(keys[SERIES_COL], keys[ZONE], int(keys[YEAR]), path))
    return sorted(found, key=lambda f: (f.zone, f.series, f.year))


def _hours(lake: LakeFS, file: CuratedFile, as_of: pd.Timestamp | None = None) -> pd.Series:
    """The file's delivery hours (those published by `as_of`, when given)."""
    if as_of is None:
        return lake.read_table(file.path, columns=[DELIVERY_HOUR]).column(DELIVERY_HOUR).to_pandas()
    table = lake.read_table(file.path, columns=[DELIVERY_HOUR, PUBLISHED_AT])
    known = pc.less_equal(table.column(PUBLISHED_AT), pa.scalar(pd.Timestamp(as_of).tz_convert("UTC"), TS))
    return table.filter(known).column(DELIVERY_HOUR).to_pandas()


@dataclass
class LakeScan:
    """Per zone × series (columns zone, series, rows, first_hour, newest_hour) and the files that
    could not be read (left out of the table)."""

    table: pd.DataFrame
    unreadable: list[CorruptFile] = field(default_factory=list)

    def warn(self) -> None:
        for problem in self.unreadable:
            log.warning("%s", problem)


SCAN_COLUMNS = [ZONE, SERIES_COL, "rows", "first_hour", "newest_hour"]


def _scan(lake: LakeFS, files: list[CuratedFile], as_of: pd.Timestamp | None = None) -> LakeScan:
    rows, unreadable = [], []
    for file in files:
        try:
            hours = _hours(lake, file, as_of)
        except CorruptFile as problem:
            unreadable.append(problem)
            continue
        if len(hours):
            rows.append((file.zone, file.series, len(hours), hours.min(), hours.max()))
    per_file = pd.DataFrame(rows, columns=SCAN_COLUMNS)
    table = per_file.groupby([ZONE, SERIES_COL], as_index=False).agg(
        rows=("rows", "sum"), first_hour=("first_hour", "min"), newest_hour=("newest_hour", "max")
    )
    return LakeScan(table[SCAN_COLUMNS].sort_values([ZONE, SERIES_COL]).reset_index(drop=True), unreadable)


def scan_lake(lake: LakeFS, zones: list[str] | None = None, as_of: pd.Timestamp | None = None) -> LakeScan:
    """Rows, first and newest delivery hour per zone × series (of `zones`, default all), reading the
    hour column of every file of those zones; with `as_of`, of the rows published by then (the lake
    as it stood at that instant)."""
    return _scan(lake, [f for f in curated_files(lake) if not zones or f.zone in zones], as_of)


def newest_hours(lake: LakeFS) -> pd.DataFrame:
    """Per zone × series: row count, first and newest delivery hour in the curated area (unreadable
    files are left out, with a warning naming each)."""
    scan = scan_lake(lake)
    scan.warn()
    return scan.table


def _by_pair(files: list[CuratedFile]) -> Iterator[list[CuratedFile]]:
    pairs: dict[tuple[str, str], list[CuratedFile]] = {}
    for file in files:
        pairs.setdefault((file.zone, file.series), []).append(file)
    yield from pairs.values()


def newest_landed(lake: LakeFS) -> LakeScan:
    """The newest delivery hour per zone × series, reading only each pair's newest readable year
    (what planning needs); an unreadable newest year is listed and the year before it is used, so
    its hours are pulled again and its landing names the file. `rows` and `first_hour` cover the
    file read only."""
    tables, unreadable = [], []
    for files in _by_pair(curated_files(lake)):
        for file in sorted(files, key=lambda f: f.year, reverse=True):
            scan = _scan(lake, [file])
            unreadable += scan.unreadable
            if not scan.table.empty:
                tables.append(scan.table)
                break
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=SCAN_COLUMNS)
    return LakeScan(table, unreadable)


def check_curated_file(lake: LakeFS, file: CuratedFile) -> None:
    """Read `file` in full and raise CorruptFile when it does not open, or holds rows the lake would
    refuse: missing columns, non-finite values, duplicate hours, hours outside its year."""
    table = lake.read_table(file.path)
    missing = [c for c in CURATED_FILE_SCHEMA.names if c not in table.column_names]
    if missing:
        raise CorruptFile(file.path, f"missing columns {missing}")
    try:
        hours = table.column(DELIVERY_HOUR).to_pandas()
        values = table.column(VALUE).to_numpy().astype("float64")
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise CorruptFile(file.path, f"columns of the wrong type: {exc}") from exc
    problems = {
        "non-finite value(s) in column 'value'": ~np.isfinite(values),
        "duplicate delivery_hour(s)": hours.duplicated().to_numpy(),
        f"delivery_hour(s) outside the year {file.year}": (hours.dt.year != file.year).to_numpy(),
    }
    for what, rows in problems.items():
        if rows.any():
            row = int(np.argmax(rows))
            raise CorruptFile(
                file.path,
                f"{int(rows.sum())} {what}, first at row {row} ({hours.iloc[row]:%Y-%m-%d %H:%M} UTC)",
            )


def landed_hours(lake: LakeFS, zone: str, series: str) -> tuple[pd.DatetimeIndex, list[CorruptFile]]:
    """Every delivery hour the curated area holds for one zone × series, and the files of the pair
    that could not be read."""
    files = [f for f in curated_files(lake) if f.zone == zone and f.series == series]
    hours, unreadable = [], []
    for file in files:
        try:
            hours.append(_hours(lake, file))
        except CorruptFile as problem:
            unreadable.append(problem)
    index = pd.DatetimeIndex(pd.concat(hours)) if hours else pd.DatetimeIndex([], tz="UTC")
    return index.sort_values(), unreadable
