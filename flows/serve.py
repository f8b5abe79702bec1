"""Serve the flows: a long-running process that runs the daily flow on its schedule and backfills
on demand, with the Prefect UI to watch, trigger and inspect them.

    serve()  →  a Prefect server (a configured one, or a local one it starts and stops)
             →  deployments "daily/daily" (cron at schedule.daily_at in schedule.timezone) and
                "backfill/backfill" (no schedule: manual runs with parameters)
             →  a Prefect runner in this process that executes their runs as subprocesses

Which server: PREFECT_API_URL (environment or the active Prefect profile) names an existing server,
and is used as is. Without it, `serve` starts `prefect server start` on host:port (SQLite in
PREFECT_HOME, the project-local `.prefect/` by default, analytics off) as a subprocess, waits for its
/api/health, and stops it on exit (Ctrl-C or SIGTERM), after the runner has shut down. A Prefect
server already answering on host:port is used rather than started twice. The UI is at
http://host:port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from forecasting.config import DEFAULT_CONFIG, ConfigError, Schedule, load_settings

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

log = logging.getLogger("spotcast.serve")

DAILY, BACKFILL = "daily", "backfill"  # deployment names (the flows have the same names)
TAGS = ["spotcast"]
HEALTH_TIMEOUT_S = 120.0  # a fresh SQLite database needs its migrations first; slow on 2 cores
STOP_TIMEOUT_S = 20.0
SERVER_LOG = "server.log"  # in PREFECT_HOME: the output of a server that `serve` started


class ServeError(RuntimeError):
    """The Prefect server could not be started or reached."""


# --- deployments -------------------------------------------------------------------------------


def daily_cron(schedule: Schedule) -> str:
    """The cron line of the daily run: every day at `schedule.daily_at` (read in schedule.timezone)."""
    return f"{schedule.daily_at.minute} {schedule.daily_at.hour} * * *"


def _config_parameter(config: str | Path | None) -> str:
    """The configuration file as the runs get it: an absolute path, so they do not depend on the
    runner's working directory."""
    return str(Path(config).resolve()) if config else str(DEFAULT_CONFIG)


def build_deployments(config: str | Path | None = None) -> list[RunnerDeployment]:
    """The two deployments `serve` registers, validated against the configuration (ConfigError if it
    is invalid): "daily" on the configured schedule and "backfill" without one. Both pass the
    configuration file as their `config` parameter; other parameters are given per run."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.backfill import backfill_flow
    from flows.daily import daily_flow

    settings = load_settings(config)
    parameters = {"config": _config_parameter(config)}
    schedule = settings.schedule
    # The module path, not the file: runs load `flows.daily` from the installed package wherever
    # the runner was started.
    daily = daily_flow.to_deployment(
        DAILY,
        schedule=Cron(daily_cron(schedule), timezone=schedule.timezone),
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
    """The next `n` scheduled instants (UTC) of `deployment` at or after `start` (default: now; a
    naive `start` is UTC), as Prefect's own scheduler computes them (the cron read in the schedule's
    time zone, DST included); [] for a deployment without a schedule."""
    from prefect.client.schemas.schedules import CronSchedule as ClientCron
    from prefect.server.schemas.schedules import CronSchedule
    from prefect.utilities.asyncutils import run_coro_as_sync

    start = datetime.now(UTC) if start is None else start
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    instants: set[datetime] = set()
    for entry in deployment.schedules or []:
        client = entry.schedule
        if not isinstance(client, ClientCron):
            raise TypeError(f"{deployment.name}: only cron schedules are supported, got {client!r}")
        server = CronSchedule(cron=client.cron, timezone=client.timezone, day_or=client.day_or)
        dates = run_coro_as_sync(server.get_dates(n=n, start=start))
        instants.update(datetime.fromtimestamp(d.timestamp(), tz=UTC) for d in dates or [])
    return sorted(instants)[:n]


# --- the server ---------------------------------------------------------------------------------


def _get(url: str, timeout_s: float = 5.0) -> int | None:
    """HTTP status of a GET (no proxies: the server is local), None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def is_healthy(api_url: str) -> bool:
    """Whether a Prefect API answers its health check at `api_url` (e.g. http://127.0.0.1:4200/api)."""
    return _get(f"{api_url.rstrip('/')}/health") == 200


def ui_url(api_url: str) -> str:
    """The UI of a Prefect server, from its API URL (http://host:port/api → http://host:port)."""
    url = api_url.rstrip("/")
    return url.removesuffix("/api")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM if `serve` dies without cleaning up (kill -9)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalPrefectServer:
    """`prefect server start` on host:port as a subprocess (its own process group), with analytics
    off; `start()` returns once /api/health answers, `stop()` (or leaving the `with` block) ends it.

    env: the server's environment (default: this process's); PREFECT_HOME there picks the SQLite
    database. Its output goes to `log_path` (default: PREFECT_HOME/server.log)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4200,
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.env = dict(os.environ if env is None else env)
        self.env.update(
            {
                "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_API_URL": self.api_url,
            }
        )
        if log_path is None:
            home = self.env.get("PREFECT_HOME") or str(Path.home() / ".prefect")
            log_path = Path(home).expanduser() / SERVER_LOG
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def start(self, timeout_s: float = HEALTH_TIMEOUT_S) -> LocalPrefectServer:
        command = [sys.executable, "-m", "prefect", "server", "start"]
        command += ["--host", self.host, "--port", str(self.port), "--analytics-off"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        log.info("starting a Prefect server at %s (output in %s)", self.url, self.log_path)
        self.process = subprocess.Popen(
            command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches `serve` only: the server stops after the runner
            preexec_fn=_die_with_parent,
        )
        try:
            self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not is_healthy(self.api_url):
            if self.process is not None and self.process.poll() is not None:
                raise ServeError(
                    f"the Prefect server exited with code {self.process.returncode} before it was "
                    f"healthy:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServeError(
                    f"the Prefect server at {self.url} was not healthy after {timeout_s:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.5)
        log.info("Prefect server healthy at %s", self.url)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server output)"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM to the server's process group, SIGKILL after `timeout_s`; returns its exit code."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            code = process.poll()
            if code is None:
                log.info("stopping the Prefect server at %s", self.url)
                code = _end_group(process, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> LocalPrefectServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _end_group(process: subprocess.Popen, timeout_s: float) -> int | None:
    """End a process started with start_new_session=True and everything it started."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            return process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile, None when unset."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


# --- serve --------------------------------------------------------------------------------------


class _Terminated(BaseException):  # like KeyboardInterrupt: no `except Exception` swallows it
    """SIGTERM arrived before the runner had installed its own handler."""


@contextlib.contextmanager
def _sigterm_stops_startup() -> Iterator[None]:
    """Until the Prefect runner installs its own SIGTERM handler (a graceful shutdown), SIGTERM
    raises, so that the server being started is stopped on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _api_url_set(api_url: str) -> Iterator[None]:
    """Point this process (settings) and the flow-run subprocesses (environment) at `api_url`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


def serve(
    config: str | None = None,
    host: str = "127.0.0.1",
    port: int = 4200,
    start_server: bool | None = None,
    limit: int | None = 1,
    health_timeout_s: float = HEALTH_TIMEOUT_S,
) -> None:
    """Serve the "daily" (scheduled) and "backfill" (manual) deployments until Ctrl-C or SIGTERM.

    config: configuration file (default configs/spotcast.toml); validated first (ConfigError), and
        passed to every run as its `config` parameter (absolute path).
    host, port: where to start the local Prefect server (and so its UI: http://host:port).
    start_server: None (default) starts a local server unless PREFECT_API_URL is configured (then
        that server is used); True always starts one on host:port (ignoring PREFECT_API_URL); False
        never starts one and needs PREFECT_API_URL (ConfigError without it).
    limit: at most this many runs at a time (default 1: the lake has a single writer, so a daily run
        due during a long backfill waits for it instead of failing on the lake lock); None: no limit.
    health_timeout_s: how long to wait for the server's /api/health.

    Raises ConfigError (bad configuration, no server configured with start_server=False) and
    ServeError (the server did not become healthy). Returns after a shutdown: the runner cancels
    runs in flight and pauses the deployments' schedules, then a server started here is stopped.
    """
    deployments = build_deployments(config)  # a bad configuration fails before anything starts
    api_url = configured_api_url()
    if start_server is None:
        start_server = api_url is None
    if not start_server and api_url is None:
        raise ConfigError(
            "no Prefect server configured: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) "
            "or let `serve` start one"
        )
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_sigterm_stops_startup())
            if start_server:
                server = LocalPrefectServer(host, port)
                api_url = server.api_url
                if is_healthy(api_url):
                    log.info("a Prefect server already answers at %s: using it", server.url)
                else:
                    stack.enter_context(server.start(health_timeout_s))
            else:
                assert api_url is not None
                _wait_for(api_url, health_timeout_s)
            stack.enter_context(_api_url_set(api_url))
            _serve_deployments(deployments, api_url, limit)
    except (KeyboardInterrupt, _Terminated):
        log.info("stopped")


def _wait_for(api_url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    log.info("using the Prefect server at %s", api_url)
    while not is_healthy(api_url):
        if time.monotonic() > deadline:
            raise ServeError(f"the Prefect server at {api_url} (PREFECT_API_URL) does not answer")
        time.sleep(1.0)


def _serve_deployments(deployments: list[RunnerDeployment], api_url: str, limit: int | None) -> None:
    from prefect import serve as prefect_serve

    for deployment in deployments:
        upcoming = ", ".join(f"{t:%Y-%m-%d %H:%M}Z" for t in next_runs(deployment)) or "on demand only"
        log.info("deployment %s/%s: %s", deployment.flow_name, deployment.name, upcoming)
    log.info("Prefect UI: %s", ui_url(api_url))
    prefect_serve(*deployments, limit=limit)  # returns after Ctrl-C / SIGTERM
