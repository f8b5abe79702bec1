"""Forward settlement prices in the lake: landing the desk's files, and as-of reads of the newest
settlement per zone, load and delivery period.

    forwards/trade_date=<YYYY-MM-DD>/data.parquet     the forwards frame of one trade date
                                                       (trade_date in the folder name only)

Why one file per trade date: a trade date settles once, in one daily file of a few hundred rows,
and an as-of read skips the trade dates settled after it by their folder names. A landing rewrites
each touched file with the union of what it held and the new rows (one atomic write, under the
lake's lock); a row already landed is left as it is, and a different price for a landed key is
refused, since the settlement of a trade date does not change.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from forecasting.clock import as_utc
from forecasting.config import PROJECT_ROOT, Settings
from forecasting.forwards import (
    DELIVERY_END,
    DELIVERY_START,
    FORWARD_COLUMNS,
    FORWARD_KEY,
    LOAD,
    PRICE,
    QUOTED_AS,
    SOURCE,
    TRADE_DATE,
    ForwardsFile,
    ForwardsFileError,
    Problem,
    empty_forwards_frame,
    product_of_period,
    validate_forwards_file,
)
from forecasting.lake.files import CorruptFile, LakeFS, write_lock
from forecasting.schema import PUBLISHED_AT, ZONE

FORWARDS = "forwards"
DATA_FILE = "data.parquet"
FILE_SCHEMA = pa.schema(
    [
        (ZONE, pa.string()),
        (LOAD, pa.string()),
        (DELIVERY_START, pa.date32()),
        (DELIVERY_END, pa.date32()),
        (PRICE, pa.float64()),
        (QUOTED_AS, pa.string()),
        (PUBLISHED_AT, pa.timestamp("ns", tz="UTC")),
        (SOURCE, pa.string()),
    ]
)
# Where a known row came from, for a conflict's message; never stored.
_ORIGIN = "_origin"


@dataclass(frozen=True)
class LandedForwards:
    """What one landing changed: rows added, rows already there (identical), the trade dates of the
    files landed, and the lake files written (none when nothing was new)."""

    rows_new: int
    rows_unchanged: int
    trade_dates: tuple[date, ...]
    files: tuple[str, ...]


def forward_files(settings: Settings) -> list[Path]:
    """The files `settings.forwards.files` names: paths or glob patterns, relative ones relative to
    the project root. A pattern matching nothing adds nothing (today's file may not be there yet)."""
    found: dict[Path, None] = {}
    for pattern in settings.forwards.files:
        full = Path(pattern).expanduser()
        full = full if full.is_absolute() else PROJECT_ROOT / full
        for match in sorted(glob.glob(str(full))):
            path = Path(match).resolve()  # `a/../b` and `b` are one file
            # Excel keeps `~$<name>.xlsx` beside a workbook while it is open: not the desk's file.
            if path.is_file() and not path.name.startswith("~$"):
                found.setdefault(path, None)
    return list(found)


def trade_date_file(lake: LakeFS, trade_date: date) -> str:
    return lake.path(FORWARDS, f"{TRADE_DATE}={trade_date.isoformat()}", DATA_FILE)


def landed_trade_dates(lake: LakeFS) -> list[date]:
    return sorted(date.fromisoformat(day) for day in lake.partitions(lake.path(FORWARDS), TRADE_DATE))


def _read_trade_date(lake: LakeFS, trade_date: date) -> pd.DataFrame:
    """The forwards frame of one landed trade date (empty when none is landed); CorruptFile names a
    file that does not open or is no forwards file."""
    path = trade_date_file(lake, trade_date)
    if not lake.exists(path):
        return empty_forwards_frame()
    table = lake.read_table(path)
    try:
        table = table.select(FILE_SCHEMA.names).cast(FILE_SCHEMA)
    except (KeyError, pa.ArrowException) as exc:
        raise CorruptFile(path, f"not a forwards file: {exc}") from exc
    frame = table.to_pandas()
    frame.insert(0, TRADE_DATE, pd.Series([trade_date] * len(frame), dtype="object"))
    return frame[FORWARD_COLUMNS]


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    filled = [frame for frame in frames if len(frame)]
    if not filled:
        return empty_forwards_frame()
    return pd.concat(filled, ignore_index=True)[FORWARD_COLUMNS]


def read_forwards(
    lake: LakeFS, as_of: pd.Timestamp | None = None, zones: list[str] | None = None
) -> pd.DataFrame:
    """The latest settlement known at `as_of` (None: all landed) per zone, load and delivery period:
    of the rows published by then, the newest trade date's. A forwards frame, sorted by zone, load
    and delivery period; empty (with its dtypes) when nothing qualifies."""
    as_of = as_utc(as_of)
    trade_dates = landed_trade_dates(lake)
    if as_of is not None:
        # A trade date settles on its own local day, which starts at most 14 h before its UTC day:
        # later trade dates cannot have been published yet, so their files are not read.
        trade_dates = [d for d in trade_dates if d <= as_of.date() + timedelta(days=1)]
    frame = _concat([_read_trade_date(lake, day) for day in trade_dates])
    keep = np.ones(len(frame), dtype=bool)
    if as_of is not None:
        keep &= (frame[PUBLISHED_AT] <= as_of).to_numpy()
    if zones:
        keep &= frame[ZONE].isin(zones).to_numpy()
    newest = frame[keep].sort_values(TRADE_DATE).drop_duplicates(FORWARD_KEY[1:], keep="last")
    return newest.sort_values([ZONE, LOAD, DELIVERY_START, DELIVERY_END]).reset_index(drop=True)


def _describe(row: pd.Series) -> str:
    product = product_of_period(row[DELIVERY_START], row[DELIVERY_END]) or (
        f"{row[DELIVERY_START]}…{row[DELIVERY_END]}"
    )
    return f"{row[ZONE]} {row[LOAD]} {product} of trade date {row[TRADE_DATE]}"


def _new_rows(file: ForwardsFile, rows: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """The rows of `file` whose key is not known yet; ForwardsFileError names each row (by line) whose
    key is known with another price."""
    compared = rows.reset_index(names="line").merge(
        known[[*FORWARD_KEY, PRICE, _ORIGIN]], on=FORWARD_KEY, how="left", suffixes=("", "_known")
    )
    known_price = compared[f"{PRICE}_known"].to_numpy(dtype="float64", na_value=np.nan)
    is_new = np.isnan(known_price)
    same = np.isclose(compared[PRICE].to_numpy(), known_price, rtol=0, atol=1e-9)
    conflicts = compared[~is_new & ~same]
    if len(conflicts):
        raise ForwardsFileError(
            file.path,
            [
                Problem(
                    int(row["line"]),
                    f"price {row[PRICE]:g} differs from {row[f'{PRICE}_known']:g} {row[_ORIGIN]} for the "
                    f"{_describe(row)}: the settlement of a trade date does not change",
                )
                for _, row in conflicts.iterrows()
            ],
        )
    return rows[is_new]


def _merged(files: list[ForwardsFile], landed: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The new rows of all `files` (EPADs resolved against any SYS forward of the files or the lake)
    and the count of rows already known; ForwardsFileError for the first file with a conflict."""
    system = _concat([landed, *(file.system_forwards() for file in files)])
    known = landed.assign(**{_ORIGIN: "landed from " + landed[SOURCE].astype(str)})
    new_frames, unchanged = [], 0
    for file in files:
        rows = file.forwards(system)
        new = _new_rows(file, rows, known)
        unchanged += len(rows) - len(new)
        origin = [f"in {file.path}:{line}" for line in new.index]
        known = pd.concat([known, new.assign(**{_ORIGIN: origin})], ignore_index=True)
        new_frames.append(new)
    return _concat(new_frames), unchanged


def _table(rows: pd.DataFrame) -> pa.Table:
    ordered = rows.sort_values([ZONE, LOAD, DELIVERY_START, DELIVERY_END])
    return pa.Table.from_pandas(ordered[FILE_SCHEMA.names], schema=FILE_SCHEMA, preserve_index=False)


def land_forwards(settings: Settings, paths: Sequence[str | Path]) -> LandedForwards:
    """Validate every file, then land their rows in one atomic write under the lake's lock. A bad
    file, an EPAD without a system forward, or a price that differs from one landed for the same
    trade date, zone, load and period raises ForwardsFileError (CorruptFile for an unreadable lake
    file) and nothing of any file lands. Landing the same rows again changes nothing."""
    files = [validate_forwards_file(path, settings) for path in paths]
    trade_dates = sorted({day for file in files for day in file.trade_dates})
    if not files:
        return LandedForwards(0, 0, (), ())
    lake = LakeFS.of(settings)
    with write_lock(lake, FORWARDS, settings.lake_lock_wait_s):
        lake.remove_leftovers(lake.path(FORWARDS))
        landed = {day: _read_trade_date(lake, day) for day in trade_dates}
        new, unchanged = _merged(files, _concat(list(landed.values())))
        writes: dict[str, pa.Table | bytes] = {
            trade_date_file(lake, day): _table(_concat([landed[day], rows]))
            for day, rows in new.groupby(TRADE_DATE, sort=True)
        }
        if writes:
            lake.write_tables_atomic(writes)
    return LandedForwards(len(new), unchanged, tuple(trade_dates), tuple(writes))
