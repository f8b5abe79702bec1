"""The lake's file layer on real files: atomic replacement, leftovers, the single-writer lock, and a
backfill killed with SIGKILL in the middle of landing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forecasting.jobs.ingest import backfill
from forecasting.lake.files import LOCK_NAME, LakeBusy, LakeFS, atomic_write, temporary_name, write_lock
from forecasting.lake.series_store import newest_hours, read_series
from forecasting.schema import KEY_COLUMNS

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_holder(lake_root: Path, **holder: object) -> Path:
    path = lake_root / LOCK_NAME
    lake_root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder))
    return path


@pytest.fixture
def lake(tmp_path: Path) -> LakeFS:
    return LakeFS.open(str(tmp_path / "lake"))


# --- LakeFS ----------------------------------------------------------------------------------------


def test_open_local_path_and_memory_url_pick_their_file_systems(tmp_path: Path) -> None:
    local = LakeFS.open(str(tmp_path / "lake") + "/")
    memory = LakeFS.open("memory://somewhere/lake")
    assert local.is_local and local.path("curated", "x.parquet") == f"{tmp_path}/lake/curated/x.parquet"
    assert not memory.is_local and memory.path("raw") == "/somewhere/lake/raw"


def test_shown_keeps_a_local_path_and_gives_another_lake_its_url(tmp_path: Path) -> None:
    local = LakeFS.open(str(tmp_path / "lake"))
    memory = LakeFS.open("memory://somewhere/lake")
    assert local.shown(local.path("logs")) == f"{tmp_path}/lake/logs"
    assert memory.shown(memory.path("logs")) == "memory:///somewhere/lake/logs"


def test_write_table_atomic_replaces_the_old_file_and_leaves_no_temporary(lake: LakeFS) -> None:
    path = lake.path("curated", "series=price_da", "data.parquet")
    lake.write_table_atomic(pa.table({"x": [1, 2, 3]}), path)
    lake.write_table_atomic(pa.table({"x": [4, 5]}), path)

    assert pq.read_table(path).column("x").to_pylist() == [4, 5]
    assert os.listdir(Path(path).parent) == ["data.parquet"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(lake: LakeFS) -> None:
    path = lake.path("curated", "data.parquet")
    lake.write_table_atomic(pa.table({"x": [1, 2, 3]}), path)
    unwritable = pa.table({"x": pa.array([(1, 2, 3)], pa.month_day_nano_interval())})

    with pytest.raises(pa.ArrowNotImplementedError):
        lake.write_table_atomic(unwritable, path)

    assert pq.read_table(path).column("x").to_pylist() == [1, 2, 3]
    assert os.listdir(Path(path).parent) == ["data.parquet"]


def leftover_of(folder: Path, pid: int, host: str = socket.gethostname(), age_s: float = 0) -> Path:
    """A half-written temporary file as writer `pid` on `host` names it, `age_s` seconds old."""
    tag = hashlib.sha1(host.encode()).hexdigest()[:8]
    path = folder / f".tmp-{pid}-{tag}-{uuid.uuid4().hex}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 half")
    if age_s:
        os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_remove_leftovers_deletes_temporaries_of_writers_that_are_gone_and_nothing_else(lake: LakeFS) -> None:
    keep = lake.path("curated", "a", "data.parquet")
    lake.write_table_atomic(pa.table({"x": [1]}), keep)
    curated, forecasts = Path(lake.path("curated", "a")), Path(lake.path("forecasts", "issue_date=x"))
    dead = leftover_of(curated, dead_pid())
    old_foreign = leftover_of(forecasts, 12345, host="another-host", age_s=2 * 3600)
    old_unnamed = forecasts / ".tmp-0123456789abcdef"  # the name of an earlier Spotcast
    old_unnamed.write_bytes(b"PAR1 half")
    os.utime(old_unnamed, (time.time() - 7200, time.time() - 7200))
    live = leftover_of(forecasts, os.getpid())  # e.g. a forecast being written, without the lock
    young_foreign = leftover_of(forecasts, 12345, host="another-host")

    assert lake.remove_leftovers(lake.root) == 3

    assert not any(p.exists() for p in (dead, old_foreign, old_unnamed))
    assert live.exists() and young_foreign.exists() and Path(keep).exists()
    assert lake.remove_leftovers(lake.path("no-such-folder")) == 0


def test_write_names_its_temporary_after_the_writer(lake: LakeFS) -> None:
    tmp = temporary_name(lake.root)
    name = tmp.rsplit("/", 1)[-1]
    assert name.startswith(f".tmp-{os.getpid()}-")
    assert not lake._temporary_is_stale(tmp)


def test_atomic_write_replaces_a_folder_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    """How a model artifact (a folder) is saved: the new one replaces the old, none of it stays."""
    final = tmp_path / "deepar-1"
    for content in ("old", "new"):
        with atomic_write(final) as temporary:
            temporary.mkdir()
            (temporary / f"{content}.json").write_text(content)

    assert os.listdir(tmp_path) == ["deepar-1"] and os.listdir(final) == ["new.json"]


def test_atomic_write_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "epochs"
    with atomic_write(final) as temporary:
        temporary.write_text("1 0.5")

    with pytest.raises(OSError, match="disk full"), atomic_write(final) as temporary:
        temporary.write_text("2 0")
        raise OSError("disk full")

    assert final.read_text() == "1 0.5" and os.listdir(tmp_path) == ["epochs"]


# --- the write lock --------------------------------------------------------------------------------


def test_second_writer_while_the_lock_is_held_raises_lake_busy_naming_pid_and_host(lake: LakeFS) -> None:
    with write_lock(lake, "backfill"), pytest.raises(LakeBusy) as busy, write_lock(lake, "daily"):
        pass
    message = str(busy.value)
    assert f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert "backfill" in message and LOCK_NAME in message


def test_run_while_the_lock_is_held_raises_lake_busy_and_lands_nothing(
    make_settings, as_of: pd.Timestamp
) -> None:
    settings = make_settings(lake_lock_wait_s=0.5)
    lake = LakeFS.open(settings.lake_root)
    with write_lock(lake, "someone else"), pytest.raises(LakeBusy, match="someone else"):
        backfill(settings, as_of=as_of)
    assert not Path(settings.lake_root, "curated").exists()


def test_lock_is_released_when_the_writer_fails(lake: LakeFS) -> None:
    with pytest.raises(RuntimeError), write_lock(lake, "failing"):
        raise RuntimeError("boom")
    assert not Path(lake.path(LOCK_NAME)).exists()
    with write_lock(lake, "next"):
        pass


def test_lock_left_by_a_dead_pid_is_taken_over(lake: LakeFS) -> None:
    pid = dead_pid()
    lock = write_holder(Path(lake.root), pid=pid, host=socket.gethostname(), since="x", purpose="killed")

    with write_lock(lake, "takeover"):
        holder = json.loads(lock.read_text())
    assert holder["pid"] == os.getpid() and holder["purpose"] == "takeover"
    assert not lock.exists()


def test_lock_of_a_dead_pid_on_another_host_is_not_taken_over(lake: LakeFS) -> None:
    write_holder(Path(lake.root), pid=dead_pid(), host="some-other-host", since="x", purpose="elsewhere")
    with pytest.raises(LakeBusy, match="some-other-host"), write_lock(lake, "mine"):
        pass


def test_empty_lock_file_is_taken_over_only_once_it_is_old(lake: LakeFS) -> None:
    lock = Path(lake.root) / LOCK_NAME
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    with pytest.raises(LakeBusy), write_lock(lake, "too early"):
        pass

    old = time.time() - 60
    os.utime(lock, (old, old))
    with write_lock(lake, "later"):
        assert json.loads(lock.read_text())["purpose"] == "later"


# --- kill -9 in the middle of a backfill -----------------------------------------------------------


def _lake_files(root: Path) -> tuple[list[Path], list[Path]]:
    if not root.exists():
        return [], []
    files = [p for p in root.rglob("*") if p.is_file()]
    return [p for p in files if p.name.startswith(".tmp-")], [p for p in files if p.name == "data.parquet"]


def _kill_while_landing(settings_json: Path, as_of: pd.Timestamp, lake_root: Path) -> str:
    """Start the crash writer; once it has landed some curated files, SIGKILL it as soon as a temporary
    file shows up (a write in progress), or between writes if none is seen in time. Returns which."""
    writer = subprocess.Popen(
        [sys.executable, str(CRASH_WRITER), str(settings_json), as_of.isoformat()],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    moment = "timeout"
    try:
        while time.monotonic() < deadline and writer.poll() is None:
            temporaries, curated = _lake_files(lake_root)
            if temporaries and len(curated) >= 2:
                moment = "during a write"
                break
            if len(curated) >= 6:
                moment = "between writes"
                break
            time.sleep(0.001)
        assert writer.poll() is None, f"the writer ended before it was killed: {writer.communicate()[1]}"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()  # reap it: a zombie would still count as alive for the lock
    assert writer.returncode == -signal.SIGKILL
    return moment


def test_backfill_killed_mid_write_leaves_a_readable_lake_and_the_rerun_matches_a_clean_run(
    tmp_path: Path, zone_configs: list[dict], replay_source: Path, make_settings, as_of: pd.Timestamp
) -> None:
    overrides = {
        "lake_root": str(tmp_path / "crashed"),
        "zones": zone_configs,
        "feeds": {
            "replay": {"kind": "replay", "source": str(replay_source), "series": ["price_da", "load_actual"]}
        },
        "history": {"start": "2022-06-01", "backfill_chunk_days": 92},
    }
    settings_json = tmp_path / "settings.json"
    settings_json.write_text(json.dumps(overrides))
    crashed_root = tmp_path / "crashed"

    moment = _kill_while_landing(settings_json, as_of, crashed_root)
    print(f"killed {moment}")

    # Every visible Parquet file opens, the lake reads, and the dead writer's lock is still there.
    lake = LakeFS.open(str(crashed_root))
    visible = [p for p in crashed_root.rglob("*.parquet") if not p.name.startswith(".")]
    assert visible
    for path in visible:
        pq.read_table(path)
    partial = read_series(lake)
    assert not partial.duplicated(KEY_COLUMNS).any()
    assert (crashed_root / LOCK_NAME).exists()

    rerun = backfill(make_settings(**overrides), as_of=as_of)  # takes over the dead pid's lock
    clean = backfill(make_settings(**{**overrides, "lake_root": str(tmp_path / "clean")}), as_of=as_of)

    assert rerun.ok and clean.ok
    final = read_series(lake)
    expected = read_series(LakeFS.open(str(tmp_path / "clean")))
    assert len(final) == len(expected) == clean.new_rows == len(partial) + rerun.new_rows
    assert not final.duplicated(KEY_COLUMNS).any()
    pd.testing.assert_frame_equal(final, expected)
    pd.testing.assert_frame_equal(newest_hours(lake), newest_hours(LakeFS.open(str(tmp_path / "clean"))))
    assert not list(crashed_root.rglob(".tmp-*")) and not (crashed_root / LOCK_NAME).exists()
