"""Tables written for spreadsheets: a forecast or product table as CSV or Parquet by the file's
suffix, or the issue as an Excel workbook (.xlsx: `forecasting.reports.workbook`); the destination
is checked before anything is computed (so a bad `--out` costs nothing)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from forecasting.errors import UsageError

WORKBOOK_SUFFIX = ".xlsx"
EXPORT_SUFFIXES = (".csv", ".parquet", WORKBOOK_SUFFIX)
EXPORT_FORMATS = ".csv, .parquet or .xlsx"


def is_workbook(out: Path) -> bool:
    """Whether `out` asks for the Excel workbook rather than a table."""
    return Path(out).suffix.lower() == WORKBOOK_SUFFIX


def check_destination(out: Path) -> None:
    """Refuse an export destination that cannot be written, before anything is computed."""
    out = Path(out)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise UsageError(f"--out must end in {EXPORT_FORMATS}, got {out.name}")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name ending in {EXPORT_FORMATS}")
    folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), None)
    if folder is None or not folder.is_dir() or not _can_create_in(folder, out.parent):
        raise UsageError(f"--out {out}: cannot create a file there ({folder} is not a writable folder)")


def _can_create_in(folder: Path, target: Path) -> bool:
    """Whether a file can be made in `folder` (the nearest existing folder of `target`), by trying:
    access() says yes to root everywhere, /proc included. Leaves nothing behind."""
    try:
        if folder == target:
            with tempfile.TemporaryFile(dir=folder):
                return True
        missing = target.relative_to(folder).parts[0]
        (folder / missing).mkdir()  # the first folder the export would create
        (folder / missing).rmdir()
        return True
    except OSError:
        return False


def export_table(table: pd.DataFrame, out: Path) -> Path:
    """A forecast or product table as CSV or Parquet, by the file's suffix (for spreadsheets); the
    workbook (.xlsx) is `forecasting.reports.workbook.write_workbook`'s."""
    out = Path(out)
    check_destination(out)
    if is_workbook(out):
        raise ValueError(f"{out.name}: a workbook is written by write_workbook, not as one table")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        table.to_parquet(out, index=False)
    return out
