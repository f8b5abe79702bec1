"""Prefect servers: which one runs report to, starting one when Spotcast must, and pointing this
process (and the processes it starts) at it. Everything Spotcast does about a server is here.

    point_runs_at_server    a one-shot command's server: PREFECT_API_URL, `[prefect] api_url`, the
                            active Prefect profile's, the one a running `spotcast serve` recorded for
                            this lake (`recorded_server`), else a temporary server of its own
                            (`start_temporary_server`); never a server that merely answers somewhere
    server_for_serve        `serve`'s server: PREFECT_API_URL, else `prefect server start` on
                            host:port for as long as it serves (`prefect_server`), recorded in
                            $PREFECT_HOME/spotcast-serve.json for one-shot commands (`serve_record`)
    workers_report_here     a Dask LocalCluster's workers report to this process's server
    reporting_to            the pointing itself: Prefect's settings here, the environment for children

The temporary server of a command is Prefect's own (uvicorn serving `create_app`, no UI), started by
Spotcast through flows/tether.py so that it ends with the command, also when the command is killed.
A server that cannot be started or reached is a `ServeError`: one line, exit code 1.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from forecasting.config import ConfigError, Settings
from forecasting.errors import SpotcastError

log = logging.getLogger("spotcast.servers")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 4200
DEFAULT_API_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/api"
HEALTH_TIMEOUT_S = 120.0  # a fresh SQLite database needs its migrations first; slow on 2 cores
SERVER_LOG = "server.log"
TEMPORARY_SERVER_LOG = "temporary-server.log"
# $PREFECT_HOME/spotcast-serve.json: the server a running `spotcast serve` started, and its lake.
SERVE_RECORD = "spotcast-serve.json"
START_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"  # Prefect's own (flows/defaults.py)
TETHER = Path(__file__).with_name("tether.py")
# What Prefect's SubprocessASGIServer gives its server: no UI, the services of an ephemeral server.
TEMPORARY_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
PORT_IN_USE, PORT_TRIES = 3, 3  # uvicorn's exit code when it cannot start (a port taken), tries


class ServeError(SpotcastError):
    """The Prefect server could not be started or reached (exit code 1)."""


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


# --- a one-shot command's server ----------------------------------------------------------------


def point_runs_at_server(settings: Settings, scope: contextlib.ExitStack) -> None:
    """Point this process's runs at their Prefect server until `scope` closes: only one the user
    named or started. In order: PREFECT_API_URL (environment), `[prefect] api_url` of `settings`,
    the active Prefect profile's PREFECT_API_URL, the server `spotcast serve` of this PREFECT_HOME
    started for this lake and still serves (`recorded_server`). Never a server that merely answers
    on 127.0.0.1:4200: on a shared host that is another user's, and its UI would show this run.
    Without one, a temporary server is started now (`start_temporary_server`): Prefect's own, but
    one that ends with this process also when it is killed (`kill -9`), and whose slow start is one
    line (ServeError). Call it before this process runs a flow, with Prefect's defaults applied."""
    if os.environ.get("PREFECT_API_URL"):
        return
    if settings.prefect.api_url:
        log.info("reporting to the Prefect server at %s ([prefect] api_url)", settings.prefect.api_url)
        scope.enter_context(reporting_to(settings.prefect.api_url))
        return
    # Prefect starts a temporary server, which writes to this console: its services' errors while it
    # is stopped at the end of a run (a cancelled flush of run events) would end a good run with a
    # traceback. What the run needs from the server, the client reports.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    if "prefect" in sys.modules:  # Prefect ran in this process before (`main` called by a test): it
        return  # keeps to its settings and its own temporary server
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():  # the active Prefect profile names a server
        return
    served = recorded_server(settings.lake_root)
    if served is not None:
        log.info("reporting to the Prefect server at %s, which `spotcast serve` (pid %d) runs", *served)
        scope.enter_context(reporting_to(served[0]))
        return
    from forecasting import progress

    with progress.task("starting a temporary Prefect server for this run"):  # 10–30 s on 2 cores
        url = start_temporary_server()
    # For the rest of the process: Prefect's clients send what they still hold as it exits.
    scope.enter_context(reporting_to(url))


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


# --- `serve`'s server ---------------------------------------------------------------------------


@contextlib.contextmanager
def server_for_serve(host: str, port: int, start_server: bool | None, lake_root: str) -> Iterator[str]:
    """The server `serve` registers and runs its deployments on, reported to while inside (yields
    its API URL). start_server: None starts one on host:port (`prefect_server`, recorded for
    `lake_root`) unless PREFECT_API_URL (environment or active profile) names one; True always
    does; False never does (ConfigError without PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value() or None
    if start_server is False and configured is None:
        raise ConfigError("no Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
    own = start_server or (start_server is None and configured is None)
    with (
        prefect_server(host, port, lake_root=lake_root)
        if own
        else contextlib.nullcontext(configured) as api_url,
        reporting_to(api_url),
    ):
        yield api_url


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


# --- the temporary server of a command ----------------------------------------------------------

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
        120 s from flows/defaults.py). ServeError, in one line, when it does not answer in time or
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


# --- a Dask cluster's workers -------------------------------------------------------------------


@contextlib.contextmanager
def workers_report_here() -> Iterator[None]:
    """A LocalCluster's workers are processes of their own, and Prefect's choice of server lives in
    this process's settings: without a server in their environment each worker would start a
    temporary server of its own for the task runs it executes. So the server (the configured one,
    else the temporary one Prefect starts for this process, started now) goes into the environment
    the workers inherit."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        server = SubprocessASGIServer()  # the one this process's client would start; stopped at exit
        server.start()
        api_url = server.api_url
    with reporting_to(api_url):
        yield
