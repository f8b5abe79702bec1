"""What is refused before anything is written: an as-of instant no run can have (in the future, or
long after a replay's recording ends), a configuration that should not load (a zone twice, a feed
URL that is not http(s), a directory or binary bytes as the file), odd lock files (a pid that is no
process's, a directory), and a disk with no byte left. Each case ends with one clear line, the
documented exit code, and the lake unchanged."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fault_kit import AS_OF, Lake, lake_config, run_detached
from test_lake_faults import fill_up, small_disk  # noqa: F401 - the 4 MiB tmpfs fixture

from forecasting.cli import EXIT_ERROR, EXIT_USAGE
from forecasting.config import load_settings
from forecasting.console import run_log
from forecasting.errors import LakeError, UsageError
from forecasting.jobs.ingest import REPLAY_AS_OF_GRACE, backfill, check_as_of, default_as_of, resolve_as_of
from forecasting.lake.files import LOCK_NAME, LakeBusy, LakeFS

RECORDING_END = pd.Timestamp("2023-06-29 11:00", tz="UTC")  # the test replay's last prices, published

# --- an as-of instant no run can have: exit 2 before Prefect starts -------------------------------

FUTURE = "spotcast: the as-of instant 2099-01-01 00:00 UTC is in the future (now is "
PAST_THE_RECORDING = (
    "spotcast: the as-of instant 2024-06-01 00:00 UTC is after the end of the replayed recording "
    "(2023-06-29 11:00 UTC, feeds.replay.source = '{source}') by more than 7 days: the replay holds "
    "nothing published then; leave --as-of out to run as of its end"
)

BAD_AS_OF: dict[str, tuple[list[str], str]] = {
    "backfill in 2099": (["backfill", "--as-of", "2099-01-01"], FUTURE),
    "daily in 2099": (["daily", "--as-of", "2099-01-01"], FUTURE),
    "forecast in 2099": (["forecast", "--as-of", "2099-01-01"], FUTURE),
    "train in 2099": (["train", "--as-of", "2099-01-01"], FUTURE),
    "check in 2099": (["check", "--as-of", "2099-01-01"], FUTURE),
    "backfill a year after the recording": (["backfill", "--as-of", "2024-06-01"], PAST_THE_RECORDING),
    "daily a year after the recording": (["daily", "--as-of", "2024-06-01"], PAST_THE_RECORDING),
    "forecast a year after the recording": (["forecast", "--as-of", "2024-06-01"], PAST_THE_RECORDING),
}


@pytest.mark.parametrize("case", list(BAD_AS_OF))
def test_an_as_of_no_run_can_have_exits_2_in_one_line_before_anything_runs(
    case: str, lake: Lake, spotcast
) -> None:
    argv, expected = BAD_AS_OF[case]
    before = lake.hashes()
    began = time.monotonic()

    done = spotcast(argv[0], "--config", str(lake.config), *argv[1:])

    assert done.code == EXIT_USAGE
    source = lake.settings.feeds["replay"].source
    assert done.message.startswith(expected.format(source=source)), done.message
    assert time.monotonic() - began < 10  # no Prefect server, no pull, no model
    assert lake.hashes() == before  # no rows stamped 2099, no pulled=2099 partition


def test_a_backfill_in_the_future_is_refused_by_the_library_too(lake: Lake) -> None:
    before = lake.hashes()

    with pytest.raises(UsageError, match=r"^the as-of instant 2099-01-01 00:00 UTC is in the future"):
        backfill(lake.settings, as_of=pd.Timestamp("2099-01-01", tz="UTC"))

    assert lake.hashes() == before


def test_a_replay_may_run_up_to_a_week_after_its_recording_and_defaults_to_its_end(lake: Lake) -> None:
    settings = lake.settings
    assert default_as_of(settings) == RECORDING_END  # no --as-of: as before, the recording's end
    assert resolve_as_of(settings, None) == RECORDING_END
    last = RECORDING_END + REPLAY_AS_OF_GRACE
    assert resolve_as_of(settings, last) == last
    with pytest.raises(UsageError, match=r"after the end of the replayed recording \(2023-06-29 11:00 UTC"):
        resolve_as_of(settings, last + pd.Timedelta(minutes=1))


def test_with_a_live_feed_only_the_wall_clock_limits_the_as_of(
    tmp_path: Path, zone_configs: list[dict], replay_feeds: dict
) -> None:
    feeds = {
        **replay_feeds,
        "energy_charts": {
            "kind": "energy_charts",
            "base_url": "https://api.energy-charts.info",
            "series": [],
        },
    }
    settings = load_settings(lake_config(tmp_path, str(tmp_path / "lake"), zone_configs, feeds))

    check_as_of(settings, pd.Timestamp("2024-06-01", tz="UTC"))  # the live feed has it
    check_as_of(settings, pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1))
    with pytest.raises(UsageError, match="is in the future"):
        check_as_of(settings, pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1))
    assert not (tmp_path / "lake").exists()


# --- a configuration that should not load: exit 2, before anything runs ---------------------------


def _zones_changed(lake: Lake, folder: Path, change: Callable[[list[dict]], list[dict]]) -> Path:
    zones = change([z.model_dump() for z in lake.settings.zones])
    feeds = {n: f.model_dump(exclude_defaults=True) for n, f in lake.settings.feeds.items()}
    return lake_config(folder, str(lake.root), zones, feeds)


def _feed_added(lake: Lake, folder: Path, name: str, feed: dict) -> Path:
    zones = [z.model_dump() for z in lake.settings.zones]
    feeds = {n: f.model_dump(exclude_defaults=True) for n, f in lake.settings.feeds.items()}
    return lake_config(folder, str(lake.root), zones, {**feeds, name: feed})


def _renamed_no2(zones: list[dict]) -> list[dict]:
    return [zones[0], {**zones[1], "name": "NO1"}]


def _no1_eic_for_no2(zones: list[dict]) -> list[dict]:
    return [zones[0], {**zones[1], "eic": zones[0]["eic"]}]


def _binary(folder: Path, lake: Lake) -> Path:
    path = folder / "spotcast.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    return path


UNLOADABLE: dict[str, tuple[Callable[[Path, Lake], Path], str]] = {
    "a zone renamed to another's name": (
        lambda folder, lake: _zones_changed(lake, folder, _renamed_no2),
        r"zones\.1\.name = 'NO1': zone name configured twice \(zones\.0 has it too\)",
    ),
    "a zone with another's EIC code": (
        lambda folder, lake: _zones_changed(lake, folder, _no1_eic_for_no2),
        r"zones\.1\.eic = '10YNO-1--------2': EIC code configured twice \(zones\.0 has it too\)",
    ),
    "an ftp:// Energy-Charts URL": (
        lambda folder, lake: _feed_added(
            lake,
            folder,
            "energy_charts",
            {"kind": "energy_charts", "base_url": "ftp://api.energy-charts.info", "series": ["price_da"]},
        ),
        r"feeds\.energy_charts\.base_url = 'ftp://api\.energy-charts\.info': must be an http:// or https:// URL",
    ),
    "a file:// ENTSO-E URL, even disabled": (
        lambda folder, lake: _feed_added(
            lake,
            folder,
            "entsoe",
            {"kind": "entsoe", "enabled": False, "base_url": "file:///etc/passwd", "series": ["price_da"]},
        ),
        r"feeds\.entsoe\.base_url = 'file:///etc/passwd': must be an http:// or https:// URL",
    ),
    "a directory": (lambda folder, lake: folder, r"configuration file .*/bad is a directory"),
    "binary bytes": (
        _binary,
        r"configuration file .*/spotcast\.toml is not a text file \(TOML is UTF-8 text; byte 0: invalid start byte\)",
    ),
}


@pytest.mark.parametrize("case", list(UNLOADABLE))
def test_a_configuration_that_should_not_load_exits_2_in_one_line(
    case: str, lake: Lake, tmp_path: Path, spotcast
) -> None:
    make, expected = UNLOADABLE[case]
    folder = tmp_path / "bad"
    folder.mkdir()
    config = make(folder, lake)
    before = lake.hashes()
    began = time.monotonic()

    done = spotcast("backfill", "--config", str(config), "--as-of", str(AS_OF))

    assert done.code == EXIT_USAGE
    assert re.search(expected, done.message), done.message
    assert time.monotonic() - began < 10
    assert lake.hashes() == before


# --- odd locks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pid", [10**20, -1, 0, True], ids=["1e20", "-1", "0", "true"])
def test_a_lock_of_a_pid_that_is_no_process_s_is_named_while_young_and_taken_over_when_old(
    lake: Lake, pid: int
) -> None:
    # -1 and 0 name process groups to kill(2), which "answer": such a lock looked alive for ever.
    lock = lake.root / LOCK_NAME
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "purpose": "x"}))
    before = lake.hashes()

    with pytest.raises(LakeBusy) as busy:
        backfill(lake.settings, as_of=AS_OF)

    message = str(busy.value)
    assert f"the lake lock {lock} holds no valid lock record" in message and "\n" not in message
    assert lake.hashes() == before
    os.utime(lock, (time.time() - 60, time.time() - 60))
    assert backfill(lake.settings, as_of=AS_OF).ok
    assert not lock.exists()


def test_a_lock_path_that_is_a_directory_is_named_and_left_alone(lake: Lake) -> None:
    lock = lake.root / LOCK_NAME
    lock.mkdir()
    (lock / "inside").write_text("someone's")
    before = lake.hashes()

    with pytest.raises(LakeError) as refused:
        backfill(lake.settings, as_of=AS_OF)

    message = str(refused.value)
    assert message.startswith(f"the lake lock {lock} cannot be read (") and "Is a directory" in message
    assert "\n" not in message
    assert lake.hashes() == before  # the directory and what is in it included


# --- a disk with no byte left -----------------------------------------------------------------------


@pytest.fixture
def full_lake(small_disk: Path, lake: Lake, zone_configs: list[dict], replay_feeds: dict) -> Lake:  # noqa: F811
    """The filled lake on a tmpfs with 0 bytes free."""
    config = lake_config(small_disk.parent / "full", str(small_disk / "lake"), zone_configs, replay_feeds)
    full = Lake(small_disk / "lake", config)
    subprocess.run(["cp", "-a", str(lake.root), str(full.root)], check=True)
    fill_up(small_disk, leave_bytes=0)
    assert os.statvfs(small_disk).f_bavail == 0
    return full


def test_the_run_log_on_a_full_disk_stops_once_and_quietly(
    full_lake: Lake, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    lines = logging.getLogger("spotcast.test")
    with run_log(LakeFS.open(str(full_lake.root)), "backfill") as path:
        for number in range(50):
            lines.info("line %d of a run", number)
    # no exception from the writes or from closing the file

    stopped = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
    assert stopped == [f"the run log {path} stopped: [Errno 28] No space left on device"]
    assert "Logging error" not in capsys.readouterr().err


def test_a_run_log_that_cannot_be_created_leaves_the_run_without_one(
    lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (lake.root / "logs").write_text("not a folder")  # as a full disk refuses a new folder

    with run_log(lake.fs, "backfill") as path:
        logging.getLogger("spotcast.test").info("the run goes on")

    assert path is None
    assert f"no run log: cannot create {lake.root}/logs/" in caplog.text


@pytest.mark.slow
def test_a_backfill_on_a_full_disk_says_so_in_one_line_and_changes_nothing(
    full_lake: Lake, tmp_path: Path
) -> None:
    # Was: exit 1, ~400 lines of stderr, a "--- Logging error ---" traceback per log line, no spotcast line.
    before = full_lake.hashes()

    done = run_detached(tmp_path, "backfill", "--config", str(full_lake.config), "--as-of", str(AS_OF))

    assert done.returncode == EXIT_ERROR
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("spotcast:")]
    lock = full_lake.root / LOCK_NAME
    assert said == [
        f"spotcast: No space left on device writing the lake lock {lock}: free some space and run again; "
        "nothing was written"
    ]
    assert done.stderr.count("stopped: [Errno 28] No space left on device") == 1
    assert len(done.stderr.splitlines()) < 10
    assert full_lake.hashes() == before
