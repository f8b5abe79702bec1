"""`flows.serve`: the deployments, their schedule across DST changes, and — slow — the real thing: a
Prefect server on a free loopback port, `serve()` in a subprocess, a daily run of the scheduled
deployment triggered through the API that backfills an empty tmp lake, trains a tiny first model and
lands the forecast, with Spotcast's own lines in the run's log and the fan charts as image artifacts.

Everything stays on 127.0.0.1 with telemetry off; PREFECT_HOME of every server and serve process is
under tmp_path, and every subprocess (and what it started) is killed in the fixtures' teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from spotcast_testing import detached_env, tiny_config, write_config

from flows.serve import BACKFILL, DAILY, build_deployments, next_runs, serve
from flows.servers import SERVE_RECORD, ServeError, is_healthy, prefect_server
from forecasting.config import DEFAULT_CONFIG, PROJECT_ROOT, ConfigError

OSLO = ZoneInfo("Europe/Oslo")
ZONES = ["NO1", "NO2"]
AS_OF = "2019-03-05T13:30:00Z"  # 14:30 in Oslo, after the day-ahead results for 6 March
HORIZON_HOURS = 672
# Training windows need their 30-day horizon delivered before the calibration weeks (~6 weeks before
# the as-of) plus 2 weeks of past; validation scores 4 weekly issues delivered by the as-of.
HISTORY_START = "2018-10-01"
SERVER_START_S = 120.0
RUN_TIMEOUT_S = 360.0


# --- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, api_url: str | None) -> dict[str, str]:
    """A quiet, offline Prefect environment with its home (database, profiles) in `home`."""
    env = detached_env(
        home,
        PREFECT_SERVER_UI_ENABLED="false",  # nothing to look at in a test; starts faster
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PREFECT_RUNNER_POLL_FREQUENCY="2",
        PYTHONUNBUFFERED="1",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _children(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux /proc), to kill what a subprocess started."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM (the graceful path), then SIGKILL to the process and everything it started."""
    descendants = _children(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    descendants += _children(process.pid)
    for pid in [process.pid, *descendants]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def start_serve(command: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", command],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_deployments(api_url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout_s
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        while True:
            assert process.poll() is None, f"serve exited with {process.returncode}:\n{tail(log)}"
            with contextlib.suppress(ObjectNotFound):
                if is_healthy(api_url):
                    client.read_deployment_by_name(f"{DAILY}/{DAILY}")
                    client.read_deployment_by_name(f"{BACKFILL}/{BACKFILL}")
                    return
            assert time.monotonic() < deadline, f"deployments not served in {timeout_s} s:\n{tail(log)}"
            time.sleep(1)


# --- fixtures -----------------------------------------------------------------------------------


@contextlib.contextmanager
def own_prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port, SQLite in `home`: a server of one's own, as
    `serve` finds it through PREFECT_API_URL (yields its API URL)."""
    port = free_port()
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with (home / "server.log").open("ab") as out:
        process = subprocess.Popen(
            command, env=prefect_env(home, None), stdout=out, stderr=out, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not is_healthy(url):
            assert process.poll() is None, tail(home / "server.log")
            assert time.monotonic() < deadline, tail(home / "server.log")
            time.sleep(0.5)
        yield url
    finally:
        kill_tree(process, grace_s=10)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's server (the `served` runner's deployments live on it)."""
    with own_prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[str]:
    """A server with no deployment yet: no runner of another test can take its runs."""
    home = tmp_path / "server-home"
    home.mkdir()
    with own_prefect_server(home) as url:
        yield url


@pytest.fixture(scope="module")
def served_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_config(tmp_path_factory.mktemp("spotcast"), ZONES, HISTORY_START)


@pytest.fixture(scope="module")
def served(
    api_url: str, served_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`serve(config, start_server=False)` in a subprocess, pointed at the server at `api_url`."""
    home = tmp_path_factory.mktemp("serve-home")
    log = home / "serve.log"
    command = f"from flows.serve import serve; serve(config={str(served_config)!r}, start_server=False)"
    process = start_serve(command, prefect_env(home, api_url), log)
    try:
        wait_for_deployments(api_url, process, log, timeout_s=180)
        yield api_url, process, log
    finally:
        kill_tree(process)


# --- quick tests --------------------------------------------------------------------------------


def test_deployments_are_built_from_the_configuration(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", schedule={"daily_at": "13:45", "timezone": "Europe/Berlin"})
    daily, backfill = build_deployments(str(config))

    assert (daily.name, daily.flow_name, backfill.name, backfill.flow_name) == (
        DAILY,
        "daily",
        BACKFILL,
        "backfill",
    )
    assert daily.entrypoint == "flows.daily.daily_flow"
    assert backfill.entrypoint == "flows.backfill.backfill_flow"
    [entry] = daily.schedules
    assert (entry.schedule.cron, entry.schedule.timezone, entry.active) == (
        "45 13 * * *",
        "Europe/Berlin",
        True,
    )
    # The UI words a cron without its zone ("At 01:45 PM every day") unless the schedule has a slug
    assert entry.slug == "every day at 13:45 Europe/Berlin"
    assert not backfill.schedules
    assert daily.parameters == backfill.parameters == {"config": str(config.resolve())}
    assert {"config", "as_of", "zones"} <= set(daily._parameter_openapi_schema.properties)
    assert {"start", "end", "zones", "resume"} <= set(backfill._parameter_openapi_schema.properties)


def test_default_configuration_runs_daily_at_14_oslo() -> None:
    daily, _ = build_deployments()
    [entry] = daily.schedules
    assert (entry.schedule.cron, entry.schedule.timezone) == ("0 14 * * *", "Europe/Oslo")
    assert daily.parameters == {"config": str(DEFAULT_CONFIG)}


def test_bad_configuration_fails_before_serving(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.toml", schedule={"daily_at": "14:00", "timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        serve(config=str(config), start_server=True)


def test_no_server_configured_and_none_to_start_is_a_configuration_error() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(ConfigError, match="PREFECT_API_URL"),
    ):
        serve(start_server=False)


@pytest.mark.parametrize(
    ("start", "expected_utc"),
    [
        # Last Sunday of March 2019 is the 31st: 14:00 CET = 13:00 UTC, 14:00 CEST = 12:00 UTC.
        ("2019-03-29T12:00:00Z", ["2019-03-29T13:00", "2019-03-30T13:00", "2019-03-31T12:00"]),
        # Last Sunday of October 2019 is the 27th: back to 13:00 UTC.
        ("2019-10-25T12:30:00Z", ["2019-10-26T12:00", "2019-10-27T13:00", "2019-10-28T13:00"]),
        ("2024-03-30T13:00:00Z", ["2024-03-30T13:00", "2024-03-31T12:00", "2024-04-01T12:00"]),
        ("2024-10-26T12:00:01Z", ["2024-10-27T13:00", "2024-10-28T13:00", "2024-10-29T13:00"]),
    ],
)
def test_daily_schedule_follows_oslo_time_across_dst(start: str, expected_utc: list[str]) -> None:
    daily, backfill = build_deployments()
    runs = next_runs(daily, n=3, start=datetime.fromisoformat(start))
    assert runs == [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in expected_utc]
    assert all(t.astimezone(OSLO).time() == clock_time(14, 0) for t in runs)
    assert next_runs(backfill, n=3) == []


def test_next_runs_starts_at_or_after_start() -> None:
    daily, _ = build_deployments()
    at = datetime(2019, 3, 5, 13, 0, tzinfo=UTC)  # exactly 14:00 in Oslo
    assert next_runs(daily, n=1, start=at) == [at]
    assert next_runs(daily, n=1, start=at + timedelta(seconds=1)) == [at + timedelta(days=1)]


# --- slow: real servers -------------------------------------------------------------------------


@pytest.mark.slow
def test_server_schedules_daily_runs_at_the_configured_local_time(served, served_config: Path) -> None:
    """The server's own scheduler, fed by the served deployment, plans runs at 14:00 Oslo time, the
    same instants as `next_runs`; the backfill deployment has no schedule."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api_url, _, _ = served
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        deployment = client.read_deployment_by_name(f"{DAILY}/{DAILY}")
        backfill = client.read_deployment_by_name(f"{BACKFILL}/{BACKFILL}")
        [entry] = deployment.schedules
        assert (entry.schedule.cron, entry.schedule.timezone, entry.active) == (
            "0 14 * * *",
            "Europe/Oslo",
            True,
        )
        assert entry.slug == "every day at 14:00 Europe/Oslo"  # the UI shows it, zone included
        assert deployment.parameters == {"config": str(served_config.resolve())}
        assert backfill.schedules == []
        deadline = time.monotonic() + 90
        while True:
            planned = [
                run.expected_start_time
                for run in client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                    sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                )
                if run.state is not None and run.state.is_scheduled() and run.auto_scheduled
            ]
            if len(planned) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert len(planned) >= 3, "the server's scheduler planned no daily runs"
    planned = [datetime.fromtimestamp(t.timestamp(), tz=UTC) for t in planned]
    assert all(t.astimezone(OSLO).time() == clock_time(14, 0) for t in planned)
    daily, _ = build_deployments(str(served_config))
    assert planned == next_runs(daily, n=len(planned), start=planned[0])


@pytest.mark.slow
def test_daily_run_of_the_scheduled_deployment_backfills_trains_and_forecasts_visibly(
    served, served_config: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from forecasting.lake.files import LakeFS
    from forecasting.lake.forecast_store import read_forecast

    api_url, process, log = served
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        flow_run = run_deployment(
            f"{DAILY}/{DAILY}", parameters={"as_of": AS_OF, "zones": ZONES}, timeout=0, as_subflow=False
        )
        deadline = time.monotonic() + RUN_TIMEOUT_S
        with get_client(sync_client=True) as client:
            while True:
                flow_run = client.read_flow_run(flow_run.id)
                if flow_run.state is not None and flow_run.state.is_final():
                    break
                assert process.poll() is None, f"serve died ({process.returncode}):\n{tail(log)}"
                assert time.monotonic() < deadline, (
                    f"daily run still {flow_run.state_name} after {RUN_TIMEOUT_S} s:\n{tail(log)}"
                )
                time.sleep(2)
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
            )
            time.sleep(3)  # the run's last log lines are shipped in batches
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    assert flow_run.state.is_completed(), f"{flow_run.state}:\n{tail(log, 120)}"
    assert flow_run.parameters["config"] == str(served_config.resolve())

    by_key = {a.key: a for a in artifacts}
    assert {"daily-feed-status", "spotcast-1-summary", "spotcast-3-data-quality"} <= set(by_key)
    for zone in ZONES:  # the fan charts are images in the UI, not links to the worker's files
        chart = by_key[f"spotcast-5-{zone.lower()}-fan-chart"]
        assert chart.type == "image" and chart.data.startswith("data:image/png;base64,")

    names = {record.name for record in logs}
    messages = [record.message for record in logs]
    assert any(name.startswith("spotcast.") for name in names), names  # Spotcast's own loggers
    assert any(m.startswith("forecasting with deepar-") for m in messages), messages
    task_states = [r.message for r in logs if r.task_run_id is not None and r.message.startswith("Finished")]
    assert task_states == []  # no line per task in the UI: the run's graph shows task states

    settings_lake = tomllib.loads(served_config.read_text())["lake_root"]
    forecast = read_forecast(LakeFS.open(settings_lake))
    assert forecast.groupby("zone").size().to_dict() == dict.fromkeys(ZONES, HORIZON_HOURS)
    assert set(forecast["issued_at"]) == {pd.Timestamp(AS_OF)}


@pytest.mark.slow
def test_serve_starts_its_own_server_and_stops_it_on_sigterm(served_config: Path, tmp_path: Path) -> None:
    """No PREFECT_API_URL: serve starts a server on the given port, serves, and on SIGTERM shuts the
    runner down, then the server it started; it exits 0 and the port is free again."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log = tmp_path / "serve.log"
    command = f"from flows.serve import serve; serve(config={str(served_config)!r}, port={port})"
    process = start_serve(command, prefect_env(tmp_path / "home", None), log)
    try:
        wait_for_deployments(api_url, process, log, timeout_s=SERVER_START_S + 120)
        assert (tmp_path / "home" / "server.log").exists()
        # One-shot commands of this PREFECT_HOME and lake report to it while it serves.
        record = json.loads((tmp_path / "home" / SERVE_RECORD).read_text())
        lake = tomllib.loads(served_config.read_text())["lake_root"]
        assert (record["api_url"], record["pid"], record["lake_root"]) == (api_url, process.pid, lake)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, tail(log)
        assert not is_healthy(api_url)
        assert not (tmp_path / "home" / SERVE_RECORD).exists()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as `prefect server start` does
            s.bind(("127.0.0.1", port))  # nobody listens there any more
    finally:
        kill_tree(process)


@pytest.mark.slow
def test_a_server_that_cannot_start_is_reported_with_its_output(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_HOME, temporary_settings

    with temporary_settings(updates={PREFECT_HOME: tmp_path}), socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match="did not start") as error, prefect_server("127.0.0.1", port):
            pass
    assert "already in use" in str(error.value)


# --- prefect.yaml: the same deployments for a server and workers of one's own ---------------------


def _prefect_yaml() -> dict:
    import yaml

    return yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())


def test_prefect_yaml_deploys_the_flows_on_the_configured_schedule() -> None:
    from prefect.utilities.importtools import import_object

    from flows.backfill import backfill_flow
    from flows.daily import daily_flow

    deployments = {d["name"]: d for d in _prefect_yaml()["deployments"]}
    daily, _ = build_deployments()
    [entry] = daily.schedules
    assert deployments[DAILY]["schedules"] == [
        {"cron": entry.schedule.cron, "timezone": entry.schedule.timezone, "slug": entry.slug}
    ]
    assert "schedules" not in deployments[BACKFILL]
    with contextlib.chdir(PROJECT_ROOT):  # loaded as a worker loads them: from the file
        for name, flow in ((DAILY, daily_flow), (BACKFILL, backfill_flow)):
            loaded = import_object(deployments[name]["entrypoint"])
            assert (loaded.name, loaded.fn.__code__.co_filename) == (flow.name, flow.fn.__code__.co_filename)


@pytest.mark.slow
def test_prefect_yaml_backfill_on_a_process_worker_logs_retries_and_their_waits_in_the_run(
    empty_server: str, tmp_path: Path
) -> None:
    """`prefect deploy --all` and a process worker, as docs/operations.md describes, on a real server.
    One feed never answers: its retries, with their waits, are Spotcast lines in the run's log."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = {**prefect_env(tmp_path / "home", empty_server), "ENTSOE_API_TOKEN": "test-token-not-secret"}
    prefect = [sys.executable, "-m", "prefect"]

    def cli(*args: str) -> None:
        done = subprocess.run(
            [*prefect, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr

    cli("work-pool", "create", "spotcast", "--type", "process")
    cli("work-pool", "create", "spotcast-heavy", "--type", "process")  # tune and backtest deploy there
    cli("--no-prompt", "deploy", "--all")
    config = tiny_config(
        tmp_path,
        ["NO1"],
        HISTORY_START,
        feeds={
            "replay": {"kind": "replay", "source": "data/bundled", "series": ["price_da"]},
            "entsoe_down": {
                "kind": "entsoe",
                "base_url": "http://127.0.0.1:9/api",  # nothing listens there
                "timeout_s": 2,
                "series": ["load_actual"],
            },
        },
        retry={
            "not_available": {"interval_s": 0.5, "backoff": 1.0, "max_attempts": 2},
            "site_down": {"interval_s": 0.5, "backoff": 2.0, "max_attempts": 2},
        },
    )
    worker_log = tmp_path / "worker.log"
    with worker_log.open("ab") as out:
        worker = subprocess.Popen(
            [*prefect, "worker", "start", "--pool", "spotcast"],
            cwd=tmp_path,  # runs start where `prefect deploy` ran, not where the worker did
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with temporary_settings(updates={PREFECT_API_URL: empty_server}), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(f"{DAILY}/{DAILY}")
            [entry] = deployment.schedules
            assert (entry.schedule.cron, entry.schedule.timezone) == ("0 14 * * *", "Europe/Oslo")
            parameters = {"config": str(config), "end": "2018-10-08T00:00:00Z"}
            flow_run = run_deployment(
                f"{BACKFILL}/{BACKFILL}", parameters=parameters, timeout=0, as_subflow=False
            )
            deadline = time.monotonic() + 240
            while not (flow_run.state and flow_run.state.is_final()):
                assert worker.poll() is None and time.monotonic() < deadline, tail(worker_log)
                time.sleep(2)
                flow_run = client.read_flow_run(flow_run.id)
            time.sleep(3)  # the run's last log lines are shipped in batches
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    finally:
        kill_tree(worker, grace_s=10)
    assert flow_run.state.is_failed() and "did not land" in flow_run.state.message, tail(worker_log, 120)
    assert (tmp_path / "lake" / "curated" / "series=price_da").is_dir()  # the other feed landed
    retries = [r.message for r in logs if r.name == "spotcast.ingest" and "retry in" in r.message]
    assert retries and "retry in 0.5 s (site_down attempt 2 of 2)" in retries[0], [r.message for r in logs]
    assert not any("test-token-not-secret" in r.message for r in logs)
