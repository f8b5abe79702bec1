"""Tables written for spreadsheets: a forecast or product table as CSV or Parquet by the file's
suffix, its destination checked before anything is computed (so a bad `--out` costs nothing)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from forecasting.errors import UsageError

EXPORT_SUFFIXES = (".csv", ".parquet")


def check_destination(out: Path) -> None:
    """Refuse an export destination that cannot be written, before anything is computed."""
    out = Path(out)
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise UsageError(f"--out must end in .csv or .parquet, got {out.name}")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name ending in .csv or .parquet")
    folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"--out {out}: cannot create a file there ({folder} is not a writable folder)")


def export_table(table: pd.DataFrame, out: Path) -> Path:
    """A forecast or product table as CSV or Parquet, by the file's suffix (for spreadsheets)."""
    out = Path(out)
    check_destination(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        table.to_parquet(out, index=False)
    return out
