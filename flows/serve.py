"""Serve the flows with Prefect's own server and runner: the daily flow on its schedule, backfills on
demand, the Prefect UI to watch, trigger and inspect them.

    serve()  →  deployments "daily/daily" (cron at schedule.daily_at, read in schedule.timezone) and
                "backfill/backfill" (no schedule: manual runs with parameters)
             →  the daily run's alerts, [alerts]: Prefect automations and a notification block
                (flows/alerts.py), created or updated on the server
             →  prefect.serve(): Prefect's runner executes their runs as subprocesses

The server is the one PREFECT_API_URL names (environment or active Prefect profile). Without one,
`serve` runs `prefect server start` on host:port for as long as it serves (SQLite in PREFECT_HOME,
output in PREFECT_HOME/server.log) and stops it after the runner; a server already answering there
is used instead. A server `serve` started is recorded in PREFECT_HOME/spotcast-serve.json while it
serves: one-shot commands of the same PREFECT_HOME and lake report to it (`recorded_server`). With
workers of your own, deploy prefect.yaml instead (docs/operations.md).

The temporary server of a single command (`spotcast backfill` etc., without a server to report to) is
`start_temporary_server`: Prefect's own, started by Spotcast so that it ends with the command, also
when the command is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from forecasting.config import ConfigError, Schedule, default_config, load_settings
from forecasting.errors import SpotcastError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

log = logging.getLogger("spotcast.serve")

DAILY, BACKFILL = "daily", "backfill"  # deployment names (the flows have the same names)
TAGS = ["spotcast"]
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 4200
DEFAULT_API_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/api"
HEALTH_TIMEOUT_S = 120.0  # a fresh SQLite database needs its migrations first; slow on 2 cores
SERVER_LOG = "server.log"
TEMPORARY_SERVER_LOG = "temporary-server.log"
# $PREFECT_HOME/spotcast-serve.json: the server a running `spotcast serve` started, and its lake.
SERVE_RECORD = "spotcast-serve.json"
START_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"  # Prefect's own (flows/__init__.py)
TETHER = Path(__file__).with_name("tether.py")
# What Prefect's SubprocessASGIServer gives its server: no UI, the services of an ephemeral server.
TEMPORARY_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
PORT_IN_USE, PORT_TRIES = 3, 3  # uvicorn's exit code when it cannot start (a port taken), tries


class ServeError(SpotcastError, RuntimeError):
    """The Prefect server could not be started or reached (exit code 1)."""


def daily_cron(schedule: Schedule) -> str:
    """The cron line of the daily run: every day at `schedule.daily_at` (read in schedule.timezone)."""
    return f"{schedule.daily_at.minute} {schedule.daily_at.hour} * * *"


def daily_schedule_label(schedule: Schedule) -> str:
    """What the Prefect UI shows for the daily schedule (its slug): the time *and* its zone. The UI
    words a cron schedule without its time zone ("At 02:00 PM every day": the zone is in a tooltip
    only) unless the schedule has a slug; the slug also names the schedule as the creator of the
    runs it plans."""
    return f"every day at {schedule.daily_at:%H:%M} {schedule.timezone}"


def build_deployments(config: str | Path | None = None) -> list[RunnerDeployment]:
    """The two deployments, validated against the configuration (ConfigError if invalid): "daily" on
    the configured schedule and "backfill" without one. Both get the configuration file (absolute, so
    runs do not depend on the runner's working directory) as their `config` parameter."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.backfill import backfill_flow
    from flows.daily import daily_flow

    settings = load_settings(config)
    parameters = {"config": str(Path(config).resolve()) if config else str(default_config())}
    schedule = settings.schedule
    # The module path, not the file: runs import `flows.daily` from the installed package.
    daily = daily_flow.to_deployment(
        DAILY,
        schedule=Cron(
            daily_cron(schedule), timezone=schedule.timezone, slug=daily_schedule_label(schedule)
        ),
        parameters=parameters,
        description=(
            f"Every day at {schedule.daily_at:%H:%M} {schedule.timezone}, after the day-ahead auction "
            "results: ingest the new day(s) (backfilling first on an empty lake), load the champion "
            "model (training the first one if none exists), issue the four-week forecast and report."
        ),
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    backfill = backfill_flow.to_deployment(
        BACKFILL,
        parameters=parameters,
        description=(
            "Manual: pull history from `start` (default: history.start) up to `end` (default: now, or "
            "the end of the recording for the replay feed), resumable; `zones` limits it to some zones."
        ),
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [daily, backfill]


def next_runs(deployment: RunnerDeployment, n: int = 3, start: datetime | None = None) -> list[datetime]:
    """The next `n` scheduled instants (UTC) of `deployment` at or after `start` (default: now; naive
    is UTC), as Prefect's own scheduler computes them (the cron read in the schedule's time zone, DST
    included); [] for a deployment without a schedule."""
    from prefect.server.schemas.schedules import CronSchedule
    from prefect.utilities.asyncutils import run_coro_as_sync

    start = datetime.now(UTC) if start is None else start
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    instants: set[datetime] = set()
    for entry in deployment.schedules or []:
        cron = entry.schedule
        server = CronSchedule(cron=cron.cron, timezone=cron.timezone, day_or=cron.day_or)
        dates = run_coro_as_sync(server.get_dates(n=n, start=start))
        instants.update(datetime.fromtimestamp(d.timestamp(), tz=UTC) for d in dates or [])
    return sorted(instants)[:n]


def is_healthy(api_url: str) -> bool:
    """Whether a Prefect API answers its health check at `api_url` (no proxies: it is local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{api_url.rstrip('/')}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def reporting_to(api_url: str) -> Iterator[None]:
    """Runs of this process, and of the processes it starts (flow-run subprocesses, Dask workers),
    report to the Prefect server at `api_url` while inside: Prefect's settings hold it for this
    process, the environment for its children."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


@contextlib.contextmanager
def prefect_server(
    host: str, port: int, timeout_s: float = HEALTH_TIMEOUT_S, lake_root: str | None = None
) -> Iterator[str]:
    """`prefect server start` on host:port while inside (yields its API URL); one already answering
    there is used and left alone. Its own session: Ctrl-C reaches `serve`, which stops the runner
    first and the server after it. A server started here is recorded for `lake_root` (when given)
    while inside (`serve_record`); one found answering is not: it is not this process's to offer."""
    api_url = f"http://{host}:{port}/api"
    if is_healthy(api_url):
        log.info("a Prefect server already answers at %s: using it", api_url)
        yield api_url
        return
    from prefect.settings import PREFECT_HOME

    output = Path(PREFECT_HOME.value()) / SERVER_LOG
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    log.info("starting a Prefect server at %s (output in %s)", api_url.removesuffix("/api"), output)
    # Its UI address, for the links in alerts (flows/alerts.py), unless the environment names one.
    env = {"PREFECT_UI_URL": api_url.removesuffix("/api"), **os.environ}
    with output.open("ab") as out:
        server = subprocess.Popen(
            [*command, "--analytics-off"], stdout=out, stderr=out, start_new_session=True, env=env
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not is_healthy(api_url):
            if server.poll() is not None or time.monotonic() > deadline:
                last = "\n".join(output.read_text(errors="replace").splitlines()[-20:])
                raise ServeError(
                    f"the Prefect server at {api_url} did not start (exit code {server.poll()}):\n{last}"
                )
            time.sleep(0.5)
        with serve_record(api_url, lake_root) if lake_root else contextlib.nullcontext():
            yield api_url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def _prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")


@contextlib.contextmanager
def serve_record(api_url: str, lake_root: str) -> Iterator[Path]:
    """While inside, $PREFECT_HOME/spotcast-serve.json names the server at `api_url` that this
    process (`spotcast serve`) started for the lake `lake_root`: one-shot commands of the same
    PREFECT_HOME and lake report to it (`recorded_server`). Removed on the way out; a record left by
    a killed `serve` names a process that is gone, and is ignored."""
    path = _prefect_home() / SERVE_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"api_url": api_url, "pid": os.getpid(), "lake_root": lake_root}
    staged = path.with_name(f".{SERVE_RECORD}.{os.getpid()}")
    staged.write_text(json.dumps({**record, "started_at": datetime.now(UTC).isoformat()}) + "\n")
    staged.replace(path)  # readers see a whole record or none
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():  # not a later serve's
                path.unlink()


def recorded_server(lake_root: str) -> tuple[str, int] | None:
    """(API URL, pid of the `serve`) of the server that a running `spotcast serve` of this
    PREFECT_HOME started for the lake `lake_root` (`serve_record`), when that process still runs and
    its server answers; else None. A server that merely answers somewhere is never one."""
    try:
        record = json.loads((_prefect_home() / SERVE_RECORD).read_text())
        api_url, pid, lake = str(record["api_url"]), int(record["pid"]), str(record["lake_root"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if lake != lake_root or not _running(pid) or not is_healthy(api_url):
        return None
    return api_url, pid


def _running(pid: int) -> bool:
    if pid <= 0:  # 0 and -1 would ask about process groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    except (OSError, OverflowError):
        return False
    return True


_START_YOURSELF = (
    "start a server yourself (`spotcast serve`, or `prefect server start`) and set PREFECT_API_URL to "
    f"its API (e.g. {DEFAULT_API_URL})"
)


_temporary: dict[str, str] = {}  # "url": the temporary server of this process, once started


def start_temporary_server(timeout_s: float | None = None) -> str:
    """Start this process's temporary Prefect server, once, and return its API URL; it is stopped
    when the process exits (atexit, after Prefect's clients have sent what they hold), and ends
    with the process if that is killed (`flows/tether.py`: Linux's parent-death signal, a watchdog
    elsewhere). Call it from the main thread.

    The same server Prefect starts for a process without PREFECT_API_URL
    (`prefect.server.api.server.SubprocessASGIServer`: uvicorn serving `create_app`, no UI, the
    services of an ephemeral server, a free port on 127.0.0.1), but that one is a plain child
    process that outlives a `kill -9` of its parent (upstream, Prefect 3.x). Its output goes to
    $PREFECT_HOME/temporary-server.log.

    timeout_s: how long it may take to answer (default: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        120 s from flows/__init__.py). ServeError, in one line, when it does not answer in time or
        exits; the server is stopped then.
    """
    if "url" in _temporary:
        return _temporary["url"]
    timeout_s = timeout_s or float(os.environ.get(START_TIMEOUT_ENV) or HEALTH_TIMEOUT_S)
    home = _prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    output = home / TEMPORARY_SERVER_LOG
    deadline = time.monotonic() + timeout_s
    for attempt in range(1, PORT_TRIES + 1):
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        command = [sys.executable, str(TETHER), str(os.getpid()), "uvicorn", "--factory"]
        command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "error", "--lifespan", "on"]
        with output.open("ab") as out:
            # Its own session: Ctrl-C reaches the command, which stops the server after its run.
            server = subprocess.Popen(
                command,
                stdout=out,
                stderr=out,
                env={**os.environ, **TEMPORARY_SERVER_ENV},
                start_new_session=True,
            )
        try:
            code = _wait_healthy(server, api_url, deadline, timeout_s)
        except BaseException:  # a timeout, or SIGTERM/Ctrl-C while it starts
            _stop(server)
            raise
        if code is None:
            break
        if code != PORT_IN_USE or attempt == PORT_TRIES:  # a port taken since it was found free: another
            raise ServeError(
                f"the temporary Prefect server exited with code {code} before it answered (its output "
                f"is in {output}); {_START_YOURSELF}"
            )
    _temporary["url"] = api_url
    atexit.register(_stop, server)
    log.debug("temporary Prefect server at %s (pid %d)", api_url, server.pid)
    return api_url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(server: subprocess.Popen, api_url: str, deadline: float, timeout_s: float) -> int | None:
    """None once `server` answers at `api_url`; its exit code if it ends first; ServeError at the
    deadline (`timeout_s` after the first start)."""
    while not is_healthy(api_url):
        if server.poll() is not None:
            return server.returncode
        if time.monotonic() > deadline:
            raise ServeError(
                f"the temporary Prefect server did not answer within {timeout_s:g} s: allow it more "
                f"time ({START_TIMEOUT_ENV}=300), or {_START_YOURSELF}"
            )
        time.sleep(0.2)
    return None


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def serve(
    config: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    start_server: bool | None = None,
    limit: int | None = 1,
) -> None:
    """Serve the "daily" (scheduled) and "backfill" (manual) deployments until Ctrl-C or SIGTERM.

    start_server: None (default) starts a local server on host:port unless PREFECT_API_URL names one;
        True always does; False never does (ConfigError without PREFECT_API_URL).
    limit: at most this many runs at a time (default 1: the lake has a single writer, so a daily run
        due during a long backfill waits for it instead of failing on the lake lock).

    Raises ConfigError (bad configuration, no server) and ServeError (the server did not start).
    Returns after Prefect's runner has shut down (it cancels runs in flight and pauses the schedules).
    """
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL

    from flows.alerts import late_after, set_up_alerts

    deployments = build_deployments(config)  # a bad configuration fails before anything starts
    settings = load_settings(config)
    late_after(settings)  # a bad [alerts] deadline too
    main_thread = threading.current_thread() is threading.main_thread()
    # Until Prefect's runner installs its own handler, SIGTERM unwinds: the server stops too.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)) if main_thread else None
    configured = PREFECT_API_URL.value() or None
    if start_server is False and configured is None:
        raise ConfigError("no Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
    own = start_server or (start_server is None and configured is None)
    try:
        with (
            prefect_server(host, port, lake_root=settings.lake_root)
            if own
            else contextlib.nullcontext(configured) as api_url,
            reporting_to(api_url),
        ):
            # The daily deployment registered first (the runner registers it again, the same one):
            # its alerts need its id, and are in place before its first run (flows/alerts.py).
            set_up_alerts(settings, next(d for d in deployments if d.name == DAILY).apply())
            for deployment in deployments:
                upcoming = ", ".join(f"{t:%Y-%m-%d %H:%M}Z" for t in next_runs(deployment))
                log.info(
                    "deployment %s/%s: %s", deployment.flow_name, deployment.name, upcoming or "on demand"
                )
            log.info("Prefect UI: %s", api_url.removesuffix("/api"))
            prefect_serve(*deployments, limit=limit)
    except KeyboardInterrupt:  # Ctrl-C while the server was starting
        log.info("stopped")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
