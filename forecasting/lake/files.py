"""The lake's file system: local paths or fsspec URLs (s3://, memory://), atomic file replacement,
and the single-writer lock.

Atomicity: every Parquet file is written to a hidden temporary name in its final folder and then
renamed over the old one, so a reader (or a run after `kill -9`) sees either the old or the new
file, never half of one. Readers skip hidden files (pyarrow ignores names starting with '.' or '_').
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger("spotcast.lake")

LOCK_NAME = "_lock.json"
TMP_PREFIX = ".tmp-"


class LakeBusy(RuntimeError):
    """Another run holds the lake's write lock."""


@dataclass(frozen=True)
class LakeFS:
    """A lake root on some file system; `path(...)` joins below the root."""

    fs: fsspec.AbstractFileSystem
    root: str

    @classmethod
    def open(cls, url: str) -> LakeFS:
        fs, root = fsspec.core.url_to_fs(url)
        return cls(fs=fs, root=root.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def write_table_atomic(self, table: pa.Table, path: str) -> None:
        """Write `table` as Parquet at `path`, replacing any old file in one rename."""
        folder = path.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/{TMP_PREFIX}{uuid.uuid4().hex}"  # no .parquet suffix: globs must not match it
        try:
            if self.is_local:
                pq.write_table(table, tmp, compression="zstd")
                with open(tmp, "rb+") as handle:  # durable before it becomes visible
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            else:
                buffer = io.BytesIO()
                pq.write_table(table, buffer, compression="zstd")
                self.fs.pipe_file(tmp, buffer.getvalue())
                self.fs.mv(tmp, path)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    def read_table(self, path: str) -> pa.Table:
        with self.fs.open(path, "rb") as handle:
            return pq.read_table(handle)

    def remove_leftovers(self, folder: str) -> int:
        """Delete temporary files an interrupted write left behind in `folder` and below."""
        if not self.fs.exists(folder):
            return 0
        leftovers = [p for p in self.fs.find(folder) if p.rsplit("/", 1)[-1].startswith(TMP_PREFIX)]
        for path in leftovers:
            self.fs.rm(path)
        if leftovers:
            log.warning("removed %d temporary file(s) left by an interrupted write", len(leftovers))
        return len(leftovers)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_is_stale(lake: LakeFS, path: str, holder: dict) -> bool:
    """A lock left by a dead process on this host (e.g. after kill -9) may be taken over; so may an
    empty lock file older than a few seconds (a writer killed between creating and filling it)."""
    if not holder:
        modified = pd.Timestamp(lake.fs.modified(path))
        if modified.tzinfo is None:
            modified = modified.tz_localize("UTC")
        return pd.Timestamp.now(tz="UTC") - modified > pd.Timedelta(seconds=10)
    return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))


@contextmanager
def write_lock(lake: LakeFS, purpose: str) -> Iterator[None]:
    """Hold the lake's single-writer lock. Local roots use an O_EXCL lock file; on object stores,
    which have no exclusive create, the lock is advisory (documented in the README)."""
    path = lake.path(LOCK_NAME)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": pd.Timestamp.now(tz="UTC").isoformat(),
        "purpose": purpose,
    }
    lake.fs.makedirs(lake.root, exist_ok=True)
    _acquire(lake, path, holder)
    try:
        yield
    finally:
        lake.fs.rm(path)


def _acquire(lake: LakeFS, path: str, holder: dict) -> None:
    for _ in range(2):
        try:
            if lake.is_local:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                with os.fdopen(fd, "w") as handle:
                    json.dump(holder, handle)
                return
            if not lake.fs.exists(path):
                lake.fs.pipe_file(path, json.dumps(holder).encode())
                return
        except FileExistsError:
            pass
        current = _read_holder(lake, path)
        if not _lock_is_stale(lake, path, current):
            raise LakeBusy(
                f"the lake {lake.root} is locked by another run ({current.get('purpose', '?')}, pid "
                f"{current.get('pid', '?')} on {current.get('host', '?')} since {current.get('since', '?')}); "
                f"wait for it to finish, or delete {path} if no such run is alive"
            )
        log.warning("taking over a stale lake lock of dead pid %s", current.get("pid"))
        lake.fs.rm(path)
    raise LakeBusy(f"could not take the lake lock {path}")


def _read_holder(lake: LakeFS, path: str) -> dict:
    try:
        return json.loads(lake.fs.cat_file(path))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
