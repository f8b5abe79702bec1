"""Faults of the lake, on real files and processes: corrupt Parquet, holes, a full disk, stale and odd
locks, two writers, a writer killed with SIGKILL, non-finite values. Each case ends with one clear
line, the documented exit code, and what was already in the lake unchanged."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_kit import AS_OF, FILLED_AS_OF, PROJECT_ROOT, Lake, lake_config
from fsspec.implementations.memory import MemoryFileSystem
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from forecasting.cli import EXIT_DEGRADED, EXIT_ERROR, EXIT_OK
from forecasting.config import TOKEN_ENV, load_settings
from forecasting.jobs.ingest import backfill
from forecasting.lake.check import QUARANTINE, check_files
from forecasting.lake.files import LOCK_NAME, LakeBusy, LakeFS, LakeWriteError, write_lock
from forecasting.lake.series_store import append_series, read_series
from forecasting.schema import DELIVERY_HOUR, KEY_COLUMNS, RETRIEVED_AT, SchemaError

CRASH_WRITER = PROJECT_ROOT / "tests" / "lake" / "crash_writer.py"


def corrupt(path: Path) -> None:
    """What a disk error or a half-copied backup leaves: the file cut in the middle."""
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def without_retrieval(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=RETRIEVED_AT).sort_values(KEY_COLUMNS).reset_index(drop=True)


def assert_kept(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """Every row that was in the lake is still there, with the same value."""
    joined = before.merge(after, on=KEY_COLUMNS, how="left", suffixes=("", "_after"))
    assert joined["value_after"].notna().all()
    assert (joined["value"] == joined["value_after"]).all()


# --- a corrupt Parquet file ------------------------------------------------------------------------


def test_status_names_a_corrupt_file_shows_the_others_and_ends_degraded(lake: Lake, spotcast) -> None:
    bad = lake.curated("price_da", "NO2", 2023)
    corrupt(bad)
    before = lake.hashes()

    done = spotcast("status", "--config", str(lake.config))

    assert done.code == EXIT_DEGRADED
    assert "corrupt lake file" in done.message and str(bad) in done.message
    shown = done.out.split("curated rows")[1]
    assert shown.count("NO1") == 2 and "load_actual" in shown  # NO1 both, NO2 load_actual
    assert lake.hashes() == before


def test_status_of_other_zones_does_not_read_the_corrupt_file(lake: Lake, spotcast) -> None:
    corrupt(lake.curated("price_da", "NO2", 2023))
    before = lake.hashes()

    done = spotcast("status", "--config", str(lake.config), "--zones", "NO1")

    assert done.code == EXIT_OK and done.err == ""
    assert lake.hashes() == before


def test_check_lists_every_corrupt_file_of_every_area(lake: Lake, spotcast) -> None:
    curated = lake.curated("load_actual", "NO1", 2023)
    corrupt(curated)
    raw = next((lake.root / "raw").rglob("*.parquet"))
    raw.write_bytes(b"not parquet at all")
    champion = lake.root / "model_runs" / "champion.json"
    champion.parent.mkdir()
    champion.write_text('{"model_id": "deepar-')
    before = lake.hashes()

    done = spotcast("check", "--config", str(lake.config), "--as-of", str(FILLED_AS_OF))

    assert done.code == EXIT_ERROR
    assert done.message == "spotcast: 3 corrupt lake file(s), listed above"
    for path in (curated, raw, champion):
        assert str(path.relative_to(lake.root)) in done.out
    assert lake.hashes() == before


def test_backfill_lands_the_other_series_and_names_the_corrupt_file(lake: Lake) -> None:
    def others() -> pd.DataFrame:  # everything but NO2's prices
        return pd.concat(
            [read_series(lake.fs, zones=["NO1"]), read_series(lake.fs, zones=["NO2"], series=["load_actual"])]
        )

    before = others()
    bad = lake.curated("price_da", "NO2", 2023)
    corrupt(bad)
    bad_bytes = bad.read_bytes()

    report = backfill(lake.settings, as_of=AS_OF)

    assert not report.ok
    (problem,) = {o.error for o in report.problems()}
    assert problem.startswith("not landed: corrupt lake file") and str(bad) in problem
    assert {(o.plan.request.zone.name, o.plan.request.series) for o in report.problems()} == {
        ("NO2", "price_da")
    }
    assert bad.read_bytes() == bad_bytes  # never overwritten
    assert_kept(before, others())
    assert others()[DELIVERY_HOUR].max() > before[DELIVERY_HOUR].max()  # the others landed


def test_repair_sets_the_corrupt_file_aside_and_pulls_its_hours_again(lake: Lake, spotcast) -> None:
    before = without_retrieval(lake.rows())
    bad = lake.curated("price_da", "NO2", 2023)
    corrupt(bad)
    bad_bytes = bad.read_bytes()

    report = backfill(lake.settings, as_of=FILLED_AS_OF, repair=True)

    assert report.ok
    pd.testing.assert_frame_equal(without_retrieval(lake.rows()), before)
    (kept,) = (lake.root / QUARANTINE).rglob("data.parquet.*")
    assert kept.read_bytes() == bad_bytes  # set aside for inspection, not deleted
    done = spotcast("check", "--config", str(lake.config), "--as-of", str(FILLED_AS_OF))
    assert done.code == EXIT_OK and "0 corrupt file(s)" in done.out


def test_a_curated_file_with_non_finite_values_is_named_with_its_row(lake: Lake, spotcast) -> None:
    # As an older Spotcast could leave it: inf from a bring-your-own CSV reached the lake.
    path = lake.curated("price_da", "NO1", 2023)
    table = pq.read_table(path).to_pandas()
    table.loc[5, "value"] = float("inf")
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    before = lake.hashes()

    done = spotcast("check", "--config", str(lake.config), "--as-of", str(FILLED_AS_OF))

    assert done.code == EXIT_ERROR
    assert "1 non-finite value(s) in column 'value', first at row 5 (2023-01-01 05:00 UTC)" in done.out
    assert lake.hashes() == before


# --- holes -----------------------------------------------------------------------------------------


def test_a_lost_year_is_missed_by_resume_listed_by_check_and_refilled_by_repair(
    tmp_path: Path, zone_configs: list[dict], replay_feeds: dict, spotcast
) -> None:
    history = {"start": "2022-10-01", "backfill_chunk_days": 92}
    config = lake_config(tmp_path, str(tmp_path / "lake"), zone_configs, replay_feeds, history=history)
    lake = Lake(tmp_path / "lake", config)
    backfill(lake.settings, as_of=FILLED_AS_OF)
    complete = without_retrieval(lake.rows())
    lake.curated("price_da", "NO1", 2022).unlink()

    resumed = backfill(lake.settings, as_of=FILLED_AS_OF)
    assert resumed.ok and resumed.new_rows == 0  # resume starts after the newest hour: blind to it

    done = spotcast("check", "--config", str(config), "--as-of", str(FILLED_AS_OF))
    assert done.code == EXIT_OK
    assert "price_da NO1: 2208 hour(s) missing, [2022-10-01 00:00, 2023-01-01 00:00) UTC" in done.out

    repaired = backfill(lake.settings, as_of=FILLED_AS_OF, repair=True)
    assert repaired.ok and repaired.new_rows == 2208
    pd.testing.assert_frame_equal(without_retrieval(lake.rows()), complete)
    assert "0 hole(s)" in spotcast("check", "--config", str(config), "--as-of", str(FILLED_AS_OF)).out


# --- a full disk -----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 4 MiB tmpfs (needs root); skipped where it cannot be mounted: the quota case covers ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill_up(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of `folder` until `leave_bytes` are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as handle:
        handle.write(b"\0" * max(free - leave_bytes, 0))


def test_a_full_disk_fails_the_landing_in_one_line_and_replaces_nothing(
    small_disk: Path, lake: Lake, zone_configs: list[dict], replay_feeds: dict
) -> None:
    config = lake_config(small_disk.parent / "full", str(small_disk / "lake"), zone_configs, replay_feeds)
    full = Lake(small_disk / "lake", config)
    subprocess.run(["cp", "-a", str(lake.root), str(full.root)], check=True)
    fill_up(small_disk, leave_bytes=16 * 1024)  # room for the lock, not for a pull's Parquet file
    before = full.hashes()

    with pytest.raises(LakeWriteError) as failed:
        backfill(full.settings, as_of=AS_OF)

    message = str(failed.value)
    assert "No space left on device" in message and "\n" not in message
    assert "the lake keeps its previous files" in message and str(full.root) in message
    assert full.hashes() == before  # no temporary, no lock, no file replaced


class QuotaFileSystem(MemoryFileSystem):
    """An in-memory file system that holds at most `quota` bytes: writes beyond it fail with ENOSPC,
    as a full disk or an exhausted object-store quota does."""

    protocol = "quotamem"
    quota = 10**9

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(path.removeprefix("quotamem://"))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: object) -> None:
        used = sum(len(f.getvalue()) for p, f in self.store.items() if p.startswith("/quota/"))
        if used + len(value) > self.quota:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        super().pipe_file(path, value, mode, **kwargs)


@pytest.fixture
def quota_lake(tmp_path: Path, zone_configs: list[dict], replay_feeds: dict) -> Lake:
    fsspec.register_implementation("quotamem", QuotaFileSystem, clobber=True)
    config = lake_config(tmp_path, "quotamem://quota/lake", zone_configs, replay_feeds)
    yield Lake(tmp_path / "unused", config)
    QuotaFileSystem.quota = 10**9
    fsspec.filesystem("quotamem").rm("/quota", recursive=True)


def quota_hashes() -> dict[str, int]:
    fs = fsspec.filesystem("quotamem")
    files = fs.find("/quota")
    assert files
    return {p: hash(fs.cat_file(p)) for p in files}


def test_a_full_object_store_fails_the_landing_in_one_line_keeps_every_file_whole_and_a_rerun_completes_it(
    quota_lake: Lake,
) -> None:
    # An object store has no rename: each file is one PUT to its final key, so a store that fills up
    # part-way leaves the files before the failure replaced, each whole; the next run completes it.
    settings = quota_lake.settings
    backfill(settings, as_of=FILLED_AS_OF)
    lake = LakeFS.of(settings)
    before = read_series(lake)
    QuotaFileSystem.quota = sum(len(fsspec.filesystem("quotamem").cat_file(p)) for p in quota_hashes()) + 2048

    with pytest.raises(LakeWriteError, match=r"No space left on device.*a re-run completes the write"):
        backfill(settings, as_of=AS_OF)

    assert_kept(before, read_series(lake))  # every file still reads, and no row was lost
    QuotaFileSystem.quota = 10**9
    assert backfill(settings, as_of=AS_OF).ok
    clean = settings.model_copy(update={"lake_root": "memory://clean-of-quota-test/lake"})
    backfill(clean, as_of=AS_OF)
    try:
        assert without_retrieval(read_series(lake)).equals(without_retrieval(read_series(LakeFS.of(clean))))
    finally:
        fsspec.filesystem("memory").rm("/clean-of-quota-test", recursive=True)


# --- locks and two writers -------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_lock_of_a_dead_writer_is_taken_over(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    pid = dead_pid()
    (lake.root / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "purpose": "x"}))
    before = lake.rows()

    report = backfill(lake.settings, as_of=AS_OF)

    assert report.ok and report.new_rows > 0
    assert f"taking over a stale lake lock of dead pid {pid}" in caplog.text
    assert_kept(before, lake.rows())
    assert not (lake.root / LOCK_NAME).exists()


@pytest.mark.parametrize("content", ["garbage", "[]", '{"pid": "abc", "host": 7}', ""])
def test_a_lock_file_without_a_valid_record_is_named_while_young_and_taken_over_when_old(
    lake: Lake, content: str
) -> None:
    lock = lake.root / LOCK_NAME
    lock.write_text(content)
    before = lake.hashes()

    with pytest.raises(LakeBusy) as busy:
        backfill(lake.settings, as_of=AS_OF)
    message = str(busy.value)
    assert f"the lake lock {lock} holds no valid lock record" in message and "\n" not in message
    assert repr(content.strip()[:60] or "empty") in message
    assert lake.hashes() == before

    os.utime(lock, (time.time() - 60, time.time() - 60))
    assert backfill(lake.settings, as_of=AS_OF).ok
    assert not lock.exists()


def test_a_second_writer_waits_for_the_lock_instead_of_failing(lake: Lake, hold) -> None:
    holder, _ = hold("lock", str(lake.root), "first writer")
    settings = load_settings(lake.config).model_copy(update={"lake_lock_wait_s": 30.0})
    threading.Timer(1.0, holder.terminate).start()  # the first writer finishes its landing

    began = time.monotonic()
    report = backfill(settings, as_of=AS_OF)

    assert report.ok and report.new_rows > 0 and time.monotonic() - began >= 1.0
    assert not (lake.root / LOCK_NAME).exists()


def test_a_second_writer_gives_up_after_the_wait_naming_the_holder(lake: Lake, hold) -> None:
    holder, _ = hold("lock", str(lake.root), "first writer")
    before = lake.hashes()
    before.pop(LOCK_NAME)

    with pytest.raises(LakeBusy) as busy:
        backfill(lake.settings, as_of=AS_OF)  # waits lake_lock_wait_s = 1 s

    assert f"locked by another run (first writer, pid {holder.pid} on {socket.gethostname()}" in str(
        busy.value
    )
    after = lake.hashes()
    after.pop(LOCK_NAME)
    assert after == before


def test_a_landing_leaves_the_temporary_files_of_live_writers_alone(lake: Lake, hold) -> None:
    # The race of the outside test: a forecast being stored (no lock) while a backfill starts.
    writer, temporary = hold("temporary", str(lake.root / "forecasts" / "issue_date=2023-06-10"))

    assert backfill(lake.settings, as_of=AS_OF - pd.Timedelta(days=10)).ok
    assert Path(temporary).exists()

    writer.kill()
    writer.wait()
    assert backfill(lake.settings, as_of=AS_OF).ok  # the next landing cleans up after the dead
    assert not Path(temporary).exists()


def test_another_writer_lands_while_a_pull_is_still_waiting_for_its_feed(
    lake: Lake, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, replay_source: Path
) -> None:
    # The outside test: the lock was held through pulls (retries of up to 8 × 3600 s).
    monkeypatch.setenv(TOKEN_ENV, "test-token-0000")
    other_writer_landed = []

    def slow_feed(request: Request) -> Response:  # while this pull waits, someone else writes
        with write_lock(lake.fs, "another run", wait_s=5.0):
            other_writer_landed.append(True)
        return Response("Service Unavailable", status=503)

    httpserver.expect_request("/api").respond_with_handler(slow_feed)
    feeds = {
        "replay": {"kind": "replay", "source": str(replay_source), "series": ["price_da"]},
        "entsoe": {"kind": "entsoe", "base_url": httpserver.url_for("/api"), "series": ["load_actual"]},
    }
    settings = lake.settings.model_copy(update={"feeds": load_settings(lake.config, feeds=feeds).feeds})

    report = backfill(settings, as_of=AS_OF)

    assert other_writer_landed and all(other_writer_landed)
    assert {o.status for o in report.outcomes if o.plan.feed == "entsoe"} == {"unavailable"}
    assert {o.status for o in report.outcomes if o.plan.feed == "replay"} == {"ok"}


# --- kill -9 ---------------------------------------------------------------------------------------


def test_a_writer_killed_with_sigkill_loses_nothing_that_was_there(lake: Lake, spotcast) -> None:
    overrides = {
        "lake_root": str(lake.root),
        "zones": [z.model_dump() for z in lake.settings.zones],
        "feeds": {n: f.model_dump(exclude_defaults=True) for n, f in lake.settings.feeds.items()},
        "history": {"start": "2023-01-01", "backfill_chunk_days": 1},  # many small landings
    }
    settings_json = lake.root.parent / "settings.json"
    settings_json.write_text(json.dumps(overrides))
    before = lake.rows()
    writer = subprocess.Popen(
        [sys.executable, str(CRASH_WRITER), str(settings_json), AS_OF.isoformat()],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    for _ in range(5):  # let it land a few pulls, then kill it in the middle of the next ones
        assert writer.stdout and writer.stdout.readline().startswith("landed")
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    assert check_files(LakeFS.open(str(lake.root))) == []
    assert_kept(before, lake.rows())
    done = spotcast("check", "--config", str(lake.config), "--as-of", str(FILLED_AS_OF))
    assert done.code == EXIT_OK and "0 corrupt file(s)" in done.out
    assert backfill(lake.settings, as_of=AS_OF).ok  # takes over the dead writer's lock
    assert not list(lake.root.rglob(".tmp-*")) and not (lake.root / LOCK_NAME).exists()


# --- non-finite values -----------------------------------------------------------------------------


def test_the_lake_refuses_non_finite_values_naming_the_row(lake: Lake) -> None:
    rows = read_series(lake.fs, zones=["NO1"], series=["price_da"]).tail(3).copy()
    rows["value"] = [1.0, float("-inf"), 2.0]
    before = lake.hashes()

    with pytest.raises(SchemaError) as refused:
        append_series(lake.fs, rows, "replay")

    hour = rows["delivery_hour"].iloc[1]
    assert (
        f"1 non-finite value(s) in column 'value', first -inf at NO1 price_da {hour:%Y-%m-%d %H:%M} UTC"
        in str(refused.value)
    )
    assert lake.hashes() == before
