"""The lake's file system: local paths or fsspec URLs (s3://, memory://), atomic file replacement,
and the single-writer lock.

Atomicity: on a local lake every file is written to a hidden temporary name in its final folder and
then renamed over the old one, so a reader (or a run after `kill -9`) sees either the old or the new
file, never half of one. Readers skip hidden files (pyarrow ignores names starting with '.' or '_').
An object store has no rename (a move is a copy and a delete): each file is one PUT to its final key,
which the store makes visible whole or not at all.

Temporary names carry the writer's pid and host (`.tmp-<pid>-<host>-<random>`), so the clean-up of
leftovers removes only those of writers that are gone (a dead pid on this host, or older than
STALE_TEMPORARY): writes that take no lock (forecasts, the model registry) are never pulled away
from under a live writer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from forecasting.clock import utc_now
from forecasting.errors import ConfigError, LakeError

if TYPE_CHECKING:
    from forecasting.config import Settings

log = logging.getLogger("spotcast.lake")

LOCK_NAME = "_lock.json"
TMP_PREFIX = ".tmp-"
# A temporary file this old belongs to no live write (the largest lake file is written in seconds).
STALE_TEMPORARY = pd.Timedelta(hours=1)
# A lock file without a valid holder record this old was left by a writer killed while creating it.
STALE_UNREADABLE_LOCK = pd.Timedelta(seconds=10)
LOCK_POLL_S = 0.2
# Local temporaries of one write written at once: Parquet encoding runs outside the GIL, and
# concurrent fsyncs share the file system's journal commits where one after the other each waits.
LOCAL_WRITERS = 8


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type where it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _write_failure(path: str, exc: OSError) -> str:
    """What went wrong writing `path`, in one line: a full disk (or quota) says so first."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{os.strerror(exc.errno)} writing {path}: free some space and run again"
    return f"could not write {path}: {one_line(exc)}"


class LakeBusy(LakeError):
    """Another run holds the lake's write lock."""


class CorruptFile(LakeError):
    """A lake file exists but cannot be used: truncated, not Parquet, or content the lake refuses."""

    def __init__(self, path: str, reason: BaseException | str) -> None:
        self.path = path
        self.reason = one_line(reason) if isinstance(reason, BaseException) else reason
        super().__init__(
            f"corrupt lake file {path} ({self.reason}); `spotcast check` lists every bad file, "
            "`spotcast backfill --repair` sets bad series files aside and pulls their hours again"
        )

    def __reduce__(self) -> tuple[type[CorruptFile], tuple[str, str]]:  # pickled with its fields
        return CorruptFile, (self.path, self.reason)


class LakeWriteError(LakeError):
    """A lake file could not be written (a full disk, no permission); nothing was replaced."""


def write_parquet(table: pa.Table, where: str | io.BytesIO) -> None:
    """How every lake table is encoded: zstd; dictionaries only for strings (a few distinct names);
    timestamps as deltas (hourly steps pack to a few bits), where a dictionary would be tried and
    dropped for every file. Five times smaller than pyarrow's defaults on the series, and faster."""
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    stamps = {f.name: "DELTA_BINARY_PACKED" for f in table.schema if pa.types.is_timestamp(f.type)}
    pq.write_table(table, where, compression="zstd", use_dictionary=strings, column_encoding=stamps)


def _encoded(content: pa.Table | bytes) -> bytes:
    if isinstance(content, bytes):
        return content
    buffer = io.BytesIO()
    write_parquet(content, buffer)
    return buffer.getvalue()


def _check_bucket(lake: LakeFS, url: str) -> None:
    """One request to the lake's bucket, so that missing credentials, a missing bucket or a refusal
    is one clear line rather than a traceback from deep inside a run."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError, PartialCredentialsError

    bucket = lake.root.split("/", 1)[0]
    try:
        lake.fs.info(bucket)
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ConfigError(
            f"no credentials for the lake {url} ({one_line(exc)}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment"
        ) from None
    except FileNotFoundError:
        raise LakeError(f"the lake {url}: bucket {bucket!r} does not exist; create it first") from None
    except PermissionError as exc:
        raise LakeError(f"the lake {url}: access denied ({one_line(exc)})") from None
    except (OSError, BotoCoreError) as exc:
        raise LakeError(f"cannot reach the lake {url}: {one_line(exc)}") from None


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def temporary_name(folder: str) -> str:
    """A hidden temporary path in `folder` that names its writer (no .parquet suffix: globs skip it)."""
    return f"{folder}/{TMP_PREFIX}{os.getpid()}-{_host_tag()}-{uuid.uuid4().hex}"


def put_in_place(temporary: str | Path, final: str | Path) -> None:
    """Rename a finished local temporary (a file, or a folder of files) over `final`: a reader sees
    the old or the new one, never half. An old folder at `final` is removed first, since a rename
    cannot replace a folder that holds files (for that moment `final` is missing)."""
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(temporary, final)


@contextmanager
def atomic_write(final: str | Path) -> Iterator[Path]:
    """The one way a single local file or folder is replaced: the block writes at the temporary
    path this yields (beside `final`, named for its writer: `temporary_name`), which is put in place
    when the block ends (`put_in_place`), or removed when it fails, leaving `final` as it was."""
    final = Path(final)
    temporary = Path(temporary_name(str(final.parent)))
    try:
        yield temporary
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise
    put_in_place(temporary, final)


@dataclass(frozen=True)
class LakeFS:
    """A lake root on some file system; `path(...)` joins below the root."""

    fs: fsspec.AbstractFileSystem
    root: str

    @classmethod
    def open(cls, url: str, endpoint_url: str | None = None) -> LakeFS:
        """The lake at `url`; an s3:// lake is checked to be reachable (LakeError or ConfigError
        otherwise) and talks to `endpoint_url` when given (an S3-compatible server). Credentials
        come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile), never from
        the configuration."""
        if not url.startswith("s3://"):
            fs, root = fsspec.core.url_to_fs(url)
            return cls(fs=fs, root=root.rstrip("/"))
        # Listings are read fresh each time: other processes write to the same lake.
        options: dict[str, object] = {"use_listings_cache": False}
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
        fs, root = fsspec.core.url_to_fs(url, **options)
        lake = cls(fs=fs, root=root.rstrip("/"))
        _check_bucket(lake, url)
        return lake

    @classmethod
    def of(cls, settings: Settings) -> LakeFS:
        """The configured lake (`lake_root`, `lake_endpoint_url`)."""
        return cls.open(settings.lake_root, settings.lake_endpoint_url)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def partitions(self, folder: str, key: str) -> list[str]:
        """The values of the `key=<value>` folders right below `folder`, as listed (none when
        `folder` does not exist)."""
        if not self.exists(folder):
            return []
        names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        return [n.split("=", 1)[1] for n in names if n.startswith(f"{key}=")]

    def shown(self, path: str) -> str:
        """`path` as a user finds it: a local path as it is, elsewhere its URL (s3://bucket/…)."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def relative(self, path: str) -> str:
        return path.removeprefix(self.root).lstrip("/")

    def write_table_atomic(self, table: pa.Table, path: str) -> None:
        """Write `table` as Parquet at `path`, replacing any old file in one rename."""
        self.write_tables_atomic({path: table})

    def write_tables_atomic(self, files: dict[str, pa.Table | bytes]) -> None:
        """Write several files (Parquet tables or bytes) that belong together, replacing old ones in
        the order given, and only after every table was encoded: a bad table replaces none of them.
        Locally all are written to temporaries first, so a full disk replaces none either; on an
        object store each is one PUT to its final key, so a store failure part-way leaves the files
        before it replaced (a re-run of the idempotent write completes it). LakeWriteError names
        the file on OSError."""
        if not self.is_local:
            self._put_in_order({path: _encoded(content) for path, content in files.items()})
            return
        temporaries: dict[str, str] = {}  # final path → its temporary, once written
        # Writers running, and whether the write was given up: then no writer starts a file.
        writers, running, given_up = threading.Condition(), 0, False

        def write(path: str, content: pa.Table | bytes) -> None:
            nonlocal running
            with writers:
                if given_up:
                    return
                running += 1
            try:
                temporaries[path] = self._write_temporary(content, path)
            finally:
                with writers:
                    running -= 1
                    writers.notify_all()

        current = ""
        pool = ThreadPoolExecutor(max_workers=min(len(files), LOCAL_WRITERS) or 1)
        try:
            with pool:
                futures = {path: pool.submit(write, path, content) for path, content in files.items()}
            for current in files:
                futures[current].result()  # the first failure, in the order given
            for current in files:
                put_in_place(temporaries[current], current)
        except BaseException as exc:
            # Interrupted (SIGTERM, Ctrl-C: the signal lands in this thread wherever it is, even in
            # the pool's start of a thread it then does not track) while writers still run: those
            # finish their file first (seconds) and no other starts, so none adds a temporary after
            # the clean-up. A second interruption during that wait still removes what is there.
            try:
                with writers:
                    given_up = True
                    writers.wait_for(lambda: running == 0)
            finally:
                for tmp in list(temporaries.values()):
                    with contextlib.suppress(OSError):
                        os.remove(tmp)
                pool.shutdown(wait=False, cancel_futures=True)
            if isinstance(exc, OSError):
                raise LakeWriteError(
                    f"{_write_failure(current, exc)}; the lake keeps its previous files"
                ) from exc
            raise

    def _put_in_order(self, files: dict[str, bytes]) -> None:
        for number, (path, content) in enumerate(files.items()):
            try:
                self.fs.pipe_file(path, content)
            except OSError as exc:
                done = (
                    f"the {number} file(s) before it in this write were replaced"
                    if number
                    else "nothing was replaced"
                )
                raise LakeWriteError(
                    f"{_write_failure(path, exc)}; {done}, a re-run completes the write"
                ) from exc

    def _write_temporary(self, content: pa.Table | bytes, path: str) -> str:
        """Local temporaries are written side by side (see LOCAL_WRITERS), each durable (fsync)
        before it can be renamed into sight."""
        folder = path.rsplit("/", 1)[0]
        tmp = temporary_name(folder)
        try:
            os.makedirs(folder, exist_ok=True)
            if isinstance(content, pa.Table):
                write_parquet(content, tmp)
            else:
                with open(tmp, "wb") as handle:
                    handle.write(content)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return tmp

    @contextmanager
    def staged(self, folder: str) -> Iterator[Path]:
        """A local folder for files made by other libraries (charts, logs) that belong in the lake's
        `folder`: that folder itself on a local lake; elsewhere a temporary one whose files are
        uploaded when the block ends, also when it ends with an error (a run's log must land)."""
        if self.is_local:
            Path(folder).mkdir(parents=True, exist_ok=True)
            yield Path(folder)
            return
        with tempfile.TemporaryDirectory(prefix="spotcast-") as tmp:
            try:
                yield Path(tmp)
            finally:
                for local in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
                    self.fs.put_file(str(local), f"{folder}/{local.relative_to(tmp).as_posix()}")

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """Read a Parquet file; CorruptFile names it when it is corrupt (a missing one raises
        FileNotFoundError)."""
        try:
            with self.fs.open(path, "rb") as handle:
                return pq.read_table(handle, columns=columns)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise CorruptFile(path, exc) from exc

    def remove_leftovers(self, folder: str) -> int:
        """Delete temporary files that interrupted writes left in `folder` and below: those of a dead
        writer on this host, and any older than STALE_TEMPORARY. Live writes keep theirs."""
        if not self.fs.exists(folder):
            return 0
        leftovers = [
            p
            for p in self.fs.find(folder, withdirs=False)
            if p.rsplit("/", 1)[-1].startswith(TMP_PREFIX) and self._temporary_is_stale(p)
        ]
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):  # its writer cleaned it up meanwhile
                self.fs.rm(path)
        if leftovers:
            log.warning("removed %d temporary file(s) left by interrupted writes", len(leftovers))
        return len(leftovers)

    def _temporary_is_stale(self, path: str) -> bool:
        parts = path.rsplit("/", 1)[-1].removeprefix(TMP_PREFIX).split("-")
        if (
            len(parts) == 3
            and parts[0].isdigit()
            and parts[1] == _host_tag()
            and not _pid_alive(int(parts[0]))
        ):
            return True
        age = self.age(path)
        return age is not None and age > STALE_TEMPORARY

    def age(self, path: str) -> pd.Timedelta | None:
        """Time since `path` was last modified; None when the file system does not say."""
        try:
            modified = pd.Timestamp(self.fs.modified(path))
        except (NotImplementedError, OSError, ValueError):
            return None
        if modified.tzinfo is None:
            modified = modified.tz_localize("UTC")
        return utc_now() - modified


# The largest pid a process can have (pid_t is a signed 32-bit number; Linux allows up to 2**22).
MAX_PID = 2**31 - 1


def _is_pid(value: object) -> bool:
    """A number a process can have as its pid: 0 and -1 name process groups to os.kill (and "look
    alive"), larger numbers than pid_t overflow it; True is no pid."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_PID


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host; a number that is no pid (0, -1, 10**20) is none."""
    if not _is_pid(pid):
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _valid_holder(content: object) -> bool:
    return isinstance(content, dict) and _is_pid(content.get("pid")) and isinstance(content.get("host"), str)


def _read_holder(lake: LakeFS, path: str) -> dict | str | None:
    """The lock's holder record; the raw text when it is not one (empty, truncated, foreign, a pid
    that is no process's); None when the lock was released meanwhile. A lock path that cannot be
    read at all (a directory, no permission) is a LakeError naming it: it is not taken over, since
    removing what someone put there is not ours to do."""
    try:
        raw = lake.fs.cat_file(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LakeError(
            f"the lake lock {path} cannot be read ({one_line(exc)}); it must be a file Spotcast "
            "writes: if no Spotcast run is writing to this lake, remove it"
        ) from None
    text = raw.decode("utf-8", errors="replace")
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        return text
    return content if _valid_holder(content) else text


def _lock_is_stale(lake: LakeFS, path: str, holder: dict | str) -> bool:
    """A lock left by a dead process on this host (e.g. after kill -9) may be taken over; so may a
    lock file without a valid record once it is a few seconds old (a writer killed between creating
    and filling it, or a file someone else put there)."""
    if isinstance(holder, str):
        age = lake.age(path)
        return age is not None and age > STALE_UNREADABLE_LOCK
    return holder["host"] == socket.gethostname() and not _pid_alive(holder["pid"])


def _busy_message(lake: LakeFS, path: str, holder: dict | str) -> str:
    if isinstance(holder, str):
        shown = holder.strip()[:60] or "empty"
        return (
            f"the lake lock {path} holds no valid lock record ({shown!r}) and was written moments "
            "ago; if no Spotcast run is writing to this lake, delete it"
        )
    return (
        f"the lake {lake.root} is locked by another run ({holder.get('purpose', '?')}, pid "
        f"{holder['pid']} on {holder['host']} since {holder.get('since', '?')}); "
        f"wait for it to finish, or delete {path} if no such run is alive"
    )


@contextmanager
def write_lock(lake: LakeFS, purpose: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lake's single-writer lock, waiting up to `wait_s` for another writer to release it
    (LakeBusy after that). The lock file is created exclusively: O_EXCL on a local root, a
    conditional PUT (If-None-Match: *) on an object store."""
    path = lake.path(LOCK_NAME)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": utc_now().isoformat(),
        "purpose": purpose,
    }
    if lake.is_local:
        os.makedirs(lake.root, exist_ok=True)
    _acquire(lake, path, holder, wait_s)
    try:
        yield
    finally:
        lake.fs.rm(path)


def _create(lake: LakeFS, path: str, holder: dict) -> bool:
    """Create the lock file with our record; False when it exists."""
    try:
        if lake.is_local:
            # The record is written first and linked in whole: a writer killed at any moment leaves
            # no lock, or a complete one (never an empty file that blocks others for a while).
            temporary = temporary_name(os.path.dirname(path))
            try:
                with open(temporary, "w") as handle:
                    json.dump(holder, handle)
                os.link(temporary, path)  # fails with FileExistsError where a lock exists
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(temporary)
            return True
        # Only one of two concurrent conditional PUTs succeeds; the other gets 412 (FileExistsError).
        lake.fs.pipe_file(path, json.dumps(holder).encode(), mode="create")
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LakeWriteError(
                f"{os.strerror(exc.errno)} writing the lake lock {path}: free some space and run again; "
                "nothing was written"
            ) from exc
        raise LakeWriteError(f"could not create the lake lock {path}: {one_line(exc)}") from exc


def _acquire(lake: LakeFS, path: str, holder: dict, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not _create(lake, path, holder):
        current = _read_holder(lake, path)
        if current is None:  # released between our attempt and the read
            continue
        if _lock_is_stale(lake, path, current):
            if isinstance(current, str):
                log.warning("taking over the lake lock %s: it holds no valid lock record", path)
            else:
                log.warning("taking over a stale lake lock of dead pid %s", current["pid"])
            with contextlib.suppress(FileNotFoundError):
                lake.fs.rm(path)
            continue
        if time.monotonic() >= deadline:
            raise LakeBusy(_busy_message(lake, path, current))
        time.sleep(LOCK_POLL_S)
