"""Checking the lake file by file, and setting bad series files aside.

`check_files` reads every data file in full and lists those that cannot be used: Parquet that does
not open or decode, curated files whose rows the lake would refuse (non-finite values, duplicate
hours, hours outside the file's year), JSON records that do not parse. `quarantine` moves a file to
`_quarantine/` under the lake root, which no reader looks at: its hours become a hole that
`spotcast backfill --repair` pulls again, and the file stays there for inspection.
"""

from __future__ import annotations

import json
import logging

from forecasting.clock import utc_now
from forecasting.lake.files import TMP_PREFIX, CorruptFile, LakeFS
from forecasting.lake.series_store import check_curated_file, curated_files

log = logging.getLogger("spotcast.lake")

QUARANTINE = "_quarantine"
# Model artifacts when models_root defaults to <lake_root>/models: checked against their own
# manifest when loaded (model/store.py), and no lake repair applies to them.
MODELS = "models"


def data_files(lake: LakeFS) -> list[str]:
    """Every Parquet and JSON file of the lake, except temporaries, the quarantine and models."""
    if not lake.exists(lake.root):
        return []
    files = []
    for path in lake.fs.find(lake.root, withdirs=False):
        relative = lake.relative(path)
        name = relative.rsplit("/", 1)[-1]
        if relative.startswith((QUARANTINE + "/", MODELS + "/")) or name.startswith(TMP_PREFIX):
            continue
        if name.endswith((".parquet", ".json")) and not name.startswith("_"):  # not the lock
            files.append(path)
    return sorted(files)


def check_file(lake: LakeFS, path: str) -> None:
    """Raise CorruptFile when the file at `path` cannot be used."""
    if path.endswith(".json"):
        try:
            json.loads(lake.fs.cat_file(path))
        except ValueError as exc:
            raise CorruptFile(path, f"not valid JSON: {exc}") from exc
    else:
        lake.read_table(path)


def corrupt_curated_files(lake: LakeFS, zones: list[str] | None = None) -> list[CorruptFile]:
    """The curated files (of `zones`, default all) that cannot be used, each with its reason."""
    problems = []
    for file in curated_files(lake):
        if zones and file.zone not in zones:
            continue
        try:
            check_curated_file(lake, file)
        except CorruptFile as problem:
            problems.append(problem)
    return problems


def check_files(lake: LakeFS) -> list[CorruptFile]:
    """Every file of the lake that cannot be used, each with its reason."""
    problems = corrupt_curated_files(lake)
    curated = {f.path for f in curated_files(lake)}
    for path in data_files(lake):
        if path in curated:
            continue
        try:
            check_file(lake, path)
        except CorruptFile as problem:
            problems.append(problem)
    return sorted(problems, key=lambda p: p.path)


def quarantine(lake: LakeFS, path: str) -> str:
    """Move `path` to `_quarantine/<its path>.<UTC time>`; returns where it went. Hold the lock."""
    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
    target = lake.path(QUARANTINE, f"{lake.relative(path)}.{stamp}")
    lake.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    lake.fs.mv(path, target)
    log.warning("set aside %s as %s", path, target)
    return target
