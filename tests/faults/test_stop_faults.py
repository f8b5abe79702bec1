"""Stopping a run: SIGTERM and Ctrl-C (SIGINT) while pulls wait to retry and while pulls land,
`kill -9` of the command after its temporary Prefect server started, a Prefect server that does not
start in time, and a write interrupted while its writer threads still run. Each case ends with one
clear line, the documented exit code (128 + the signal: 143, 130), no temporary file and no lock
left, and what was in the lake kept.

The commands run as they do from a shell or systemd: `python -m forecasting.cli` in a process of its
own (`start_command`), against a local HTTP server on 127.0.0.1. Those that run a flow share one
Prefect server (`prefect_api`, conftest) instead of starting one each; `kill -9` and the start timeout go through the command's
own temporary server.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_kit import AS_OF, STOP_WITHIN_S, Lake, lake_config
from pytest_httpserver import HTTPServer
from test_lake_faults import assert_kept
from werkzeug import Response

from forecasting.cli import EXIT_ERROR, EXIT_USAGE
from forecasting.lake.check import check_files
from forecasting.lake.files import LOCK_NAME, LakeFS

EXIT_SIGTERM, EXIT_SIGINT = 128 + signal.SIGTERM, 128 + signal.SIGINT
STOPPED = (
    "spotcast: stopped by {}; what had landed stays, a re-run continues (backfill resumes after the "
    "newest landed hour)"
)
LONG_RETRY = {  # the defaults' order of magnitude: a stop must not sleep through them
    "not_available": {"interval_s": 3600, "backoff": 1.0, "max_attempts": 8},
    "site_down": {"interval_s": 3600, "backoff": 2.0, "max_attempts": 5},
}


@pytest.fixture
def feed_down(httpserver: HTTPServer) -> HTTPServer:
    """Energy-Charts that answers every request with HTTP 503: each pull waits an hour to retry."""
    httpserver.expect_request("/price").respond_with_handler(
        lambda _request: Response("Service Unavailable", status=503)
    )
    return httpserver


@pytest.fixture
def waiting_lake(lake: Lake, feed_down: HTTPServer, zone_configs: list[dict]) -> Lake:
    """The filled lake, its prices now from an Energy-Charts that is down, with the default retry waits."""
    feeds = {
        "energy_charts": {"kind": "energy_charts", "base_url": feed_down.url_for(""), "series": ["price_da"]}
    }
    config = lake_config(lake.root.parent, str(lake.root), zone_configs, feeds, retry=LONG_RETRY)
    return Lake(lake.root, config)


def temporaries(lake: Lake) -> list[Path]:
    return list(lake.root.rglob(".tmp-*"))


# --- a stop while pulls wait to retry ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, EXIT_SIGTERM), (signal.SIGINT, EXIT_SIGINT)],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_stop_during_a_retry_wait_ends_the_run_in_seconds_in_one_line(
    signum: int, code: int, waiting_lake: Lake, start_command, prefect_api: str
) -> None:
    # Was: SIGTERM left the process alive after 90 s (the pull threads slept through the hour's
    # wait, and the interpreter waits for them), with a TerminationSignal traceback.
    before = waiting_lake.hashes()
    command = start_command(
        "backfill", "--config", str(waiting_lake.config), "--as-of", str(AS_OF), PREFECT_API_URL=prefect_api
    )
    command.wait_for("retry in 3600.0 s")

    exit_code, took = command.stop(signum)

    assert exit_code == code
    assert took < STOP_WITHIN_S
    assert command.messages == [STOPPED.format(signal.Signals(signum).name)]
    assert waiting_lake.hashes() == before
    assert not temporaries(waiting_lake) and not (waiting_lake.root / LOCK_NAME).exists()


# --- a stop while pulls land ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sigterm_while_pulls_land_leaves_no_temporary_file_and_keeps_every_row(
    lake: Lake, zone_configs: list[dict], replay_feeds: dict, start_command, prefect_api: str
) -> None:
    # Was: exit after 2 s with "RuntimeError: dictionary changed size during iteration" from the
    # clean-up of temporary files while writer threads still added theirs, and one left behind.
    config = lake_config(
        lake.root.parent,
        str(lake.root),
        zone_configs,
        replay_feeds,
        history={"start": "2023-01-01", "backfill_chunk_days": 1},  # hundreds of small landings
    )
    before_rows = lake.rows()
    files_before = len(list(lake.root.rglob("*.parquet")))
    command = start_command(
        "backfill", "--config", str(config), "--as-of", str(AS_OF), "--no-resume", PREFECT_API_URL=prefect_api
    )
    command.wait_for("pull(s) as of")
    deadline = time.monotonic() + 120
    while len(list(lake.root.rglob("*.parquet"))) <= files_before + 3:  # some pulls have landed
        assert time.monotonic() < deadline and command.process.poll() is None, "".join(command.said)[-3000:]
        time.sleep(0.05)

    exit_code, took = command.stop(signal.SIGTERM)

    assert exit_code == EXIT_SIGTERM, "".join(command.said)[-3000:]  # stopped, not finished
    assert took < STOP_WITHIN_S
    assert command.messages == [STOPPED.format("SIGTERM")]
    assert not temporaries(lake) and not (lake.root / LOCK_NAME).exists()
    assert check_files(LakeFS.open(str(lake.root))) == []
    assert_kept(before_rows, lake.rows())


def test_a_write_interrupted_while_its_writers_run_removes_every_temporary_file(tmp_path: Path) -> None:
    # A signal lands in the main thread, wherever it is: here while it waits for the threads that
    # write the temporaries of one landing. The clean-up waits for them, then removes what they wrote.
    lake = LakeFS.open(str(tmp_path))
    rng = np.random.default_rng(0)
    table = pa.table({f"c{i}": rng.random(100_000) for i in range(8)})
    files = {str(tmp_path / f"f{n}" / "data.parquet"): table for n in range(8)}
    old = pa.table({"c0": [1.0]})
    for path in files:
        Path(path).parent.mkdir()
        pq.write_table(old, path)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    interrupted = 0
    try:
        for delay in (0.002, 0.005, 0.01, 0.02, 0.04, 0.08):
            signal.setitimer(signal.ITIMER_REAL, delay)
            try:
                lake.write_tables_atomic(files)
            except KeyboardInterrupt:
                interrupted += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert not list(tmp_path.rglob(".tmp-*")), f"after {delay} s"
            for path in files:  # each file the old one or the new one, whole
                assert pq.read_table(path).num_rows in (old.num_rows, table.num_rows)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert interrupted


# --- the temporary Prefect server ----------------------------------------------------------------------


def _no_server_on_the_default_address() -> None:
    from flows.servers import DEFAULT_API_URL, is_healthy

    if is_healthy(DEFAULT_API_URL):  # the command would report to it and start none of its own
        pytest.skip(f"a Prefect server answers at {DEFAULT_API_URL}")


@pytest.mark.slow
def test_kill_9_of_the_command_leaves_no_prefect_server_running(waiting_lake: Lake, start_command) -> None:
    # Was: the temporary server (uvicorn … prefect.server.api.server) was reparented to PID 1 and
    # stayed, 240 MB and ~10 % of a core.
    _no_server_on_the_default_address()
    command = start_command("backfill", "--config", str(waiting_lake.config), "--as-of", str(AS_OF))
    command.wait_for("retry in 3600.0 s")  # its server runs: the flow reports to it
    children = psutil.Process(command.process.pid).children(recursive=True)
    assert any("prefect.server.api.server:create_app" in " ".join(c.cmdline()) for c in children)

    command.process.kill()
    command.process.wait()

    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []


def test_a_prefect_server_that_does_not_start_in_time_is_one_line_and_is_stopped(
    waiting_lake: Lake, start_command
) -> None:
    # Was: a 43-line traceback (Prefect's RuntimeError from its own start of the server).
    _no_server_on_the_default_address()
    before = waiting_lake.hashes()
    command = start_command(
        "backfill",
        "--config",
        str(waiting_lake.config),
        "--as-of",
        str(AS_OF),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1",
    )
    children: list[psutil.Process] = []
    while command.process.poll() is None:  # the server it starts, seen while the command waits for it
        try:
            children += psutil.Process(command.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)

    assert command.process.wait() == EXIT_ERROR
    assert children, "".join(command.said)  # it had started one
    assert command.messages == [
        "spotcast: the temporary Prefect server did not answer within 1 s: allow it more time "
        "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=300), or start a server yourself (`spotcast "
        "serve`, or `prefect server start`) and set PREFECT_API_URL to its API (e.g. http://127.0.0.1:4200/api)"
    ]
    _, alive = psutil.wait_procs(set(children), timeout=15)
    assert alive == []
    assert waiting_lake.hashes() == before


def test_a_backfill_range_with_nothing_to_pull_is_refused_before_prefect_starts(lake: Lake, spotcast) -> None:
    # Was: refused by the flow, after an 88 s start of Prefect's server.
    before = lake.hashes()
    began = time.monotonic()

    done = spotcast("backfill", "--config", str(lake.config), "--start", "2030-01-01")

    assert done.code == EXIT_USAGE
    assert done.message == (
        "spotcast: nothing to backfill: the as-of instant 2023-06-29 11:00 UTC is before anything from "
        "the start 2030-01-01 on was published (history.start is 2023-01-01)"
    )
    assert time.monotonic() - began < 10
    assert lake.hashes() == before
