"""Runs on a Dask cluster: Ctrl-C of `spotcast tune --workers 2`, SIGTERM of `spotcast backtest
--workers 2` (one line, exit 130 / 143, no task run left Running in the Prefect server), a worker lost while it
runs an item (the item re-run, and said), a hand-started scheduler whose worker runs another
Spotcast (refused in one line), and the LocalCluster's dashboard.

Real parts only: the commands in processes of their own on a tiny lake of the bundled history, a
Prefect server started here (`prefect_api`), LocalClusters, and `dask scheduler` / `dask worker`
processes on 127.0.0.1 started here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest
from distributed import Client, LocalCluster
from fault_kit import STOP_WITHIN_S
from prefect import flow
from spotcast_testing import TINY_PARAMS, prefect_home, tiny_config
from test_stop_faults import EXIT_SIGINT, EXIT_SIGTERM, STOPPED

from flows.cluster import ClusterError, check_cluster, current_fanout, run_on_cluster, task_runner
from forecasting.config import DEFAULT_CONFIG, load_settings
from forecasting.jobs import ingest

AS_OF = pd.Timestamp("2019-03-15 13:30", tz="UTC")
TUNE = {
    "study": "tiny",
    "seed": 7,
    "n_trials": 6,
    "validation": [{"start": "2019-02-04", "end": "2019-02-12"}],
    "space": {
        "hidden_size": {"low": 4, "high": 8},
        "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
    },
    "params": {"ensemble_size": 1, "n_jobs": 1},
}
# Fits that outlast a stop (the tiny model's 5 batches take a moment): a stopped item is Cancelled,
# not Completed before its worker is stopped.
LONGER_FITS = {**TINY_PARAMS, "num_batches_per_epoch": 100}
# The command's progress line of the step it was in when stopped ("12:00:01 study tiny: stopped at 2/6 after 31.0 s").
PROGRESS_STOPPED = re.compile(r"^\d\d:\d\d:\d\d .+: stopped( at \d+/\d+)? after ")
DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NO1 and NO2 from June 2018, as published by AS_OF, with a study of six tiny trials."""
    folder = tmp_path_factory.mktemp("cluster")
    model = {**tomllib.loads(DEFAULT_CONFIG.read_text())["model"], "params": LONGER_FITS}
    config = tiny_config(folder, ["NO1", "NO2"], "2018-06-01", tune=TUNE, model=model)
    assert ingest.backfill(load_settings(config), as_of=AS_OF).ok
    return config


# --- a stop while items run on a LocalCluster ------------------------------------------------------

COMMANDS = {  # the command, and the line after which its items run on the cluster
    "tune": (["tune", "--workers", "2", "--as-of", str(AS_OF)], "best so far"),
    "backtest": (
        [
            "backtest",
            "--start",
            "2019-02-04",
            "--end",
            "2019-02-19",
            "--retrain-every",
            "2",
            "--workers",
            "2",
        ],
        "fits …",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "signum", "every_process"),
    [  # both signals, both reaches and both commands in two runs (each takes ~30 s)
        ("tune", signal.SIGINT, True),  # Ctrl-C: the terminal signals the workers too
        ("backtest", signal.SIGTERM, False),  # kill PID, cron
    ],
    ids=["tune-ctrl-c", "backtest-kill"],
)
def test_a_stopped_run_on_a_local_cluster_ends_in_one_line_and_leaves_no_task_run_running(
    command: str, signum: int, every_process: bool, tiny_lake: Path, start_command, prefect_api: str
) -> None:
    # Was: after "stopped at 3/6", 59 lines on stderr (the workers' KeyboardInterrupt tracebacks, a
    # distributed ERROR about lost scattered data, nanny warnings), and the flow run's task runs
    # Running for ever.
    argv, running = COMMANDS[command]
    started = start_command(*argv[:1], "--config", str(tiny_lake), *argv[1:], PREFECT_API_URL=prefect_api)
    started.wait_for(running, timeout_s=300)
    _wait_for_a_running_task_run(prefect_api, command)  # what the stop must close
    before = len(started.said)

    exit_code, took = started.stop(signum, every_process=every_process)

    name = signal.Signals(signum).name
    assert exit_code == {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}[signum]
    assert took < STOP_WITHIN_S
    assert started.messages == [STOPPED.format(name)]  # and no traceback
    after = [line.rstrip("\n") for line in started.said[before:]]
    assert after[-1] == STOPPED.format(name)
    assert all(PROGRESS_STOPPED.match(line) for line in after[:-1]), "\n".join(after)
    assert not [line for line in started.said if "distributed" in line or "WARNING" in line], "".join(
        started.said
    )

    flow_run, task_runs = _last_flow_run(prefect_api, command)
    assert flow_run.state.is_crashed()
    assert {run.state.type.value for run in task_runs} <= {"COMPLETED", "CANCELLED"}
    assert any(run.state.is_cancelled() for run in task_runs), [(r.name, r.state.type.value) for r in task_runs]


def _any_running(task_runs: list) -> bool:
    return any(run.state.is_running() for run in task_runs)


def _wait_for_a_running_task_run(api_url: str, flow_name: str) -> None:
    """Until the server has recorded a task run of the newest `flow_name` run as Running: a worker's
    states reach it seconds after they happen, later on a busy machine."""
    _, task_runs = _newest_flow_run_when(api_url, flow_name, _any_running, within_s=120)
    assert _any_running(task_runs), f"no task run of {flow_name} was recorded Running within 120 s"


def _last_flow_run(api_url: str, flow_name: str) -> tuple:
    """The newest run of `flow_name` on the server and its task runs, once none is Running: the
    server records a worker's states a few seconds after they were sent (its task-run recorder)."""
    return _newest_flow_run_when(api_url, flow_name, lambda runs: not _any_running(runs), within_s=30)


def _newest_flow_run_when(api_url: str, flow_name: str, ready: Callable[[list], bool], within_s: float) -> tuple:
    """The newest run of `flow_name` and its task runs, read through one client until `ready(task
    runs)` holds or `within_s` has passed (then as last read)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowRunFilter
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + within_s
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_runs(
                flow_filter=FlowFilter(name={"any_": [flow_name]}), sort=FlowRunSort.START_TIME_DESC, limit=1
            )[0]
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run.id]}))
            if ready(task_runs) or time.monotonic() > deadline:
                return flow_run, task_runs
            time.sleep(0.5)


# --- hand-started scheduler and workers -----------------------------------------------------------


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`start_cluster(*worker_envs)`: a `dask scheduler` on 127.0.0.1 and one `dask worker` (with a
    nanny) per environment given (changes to this one); the scheduler's address, once every worker
    has joined."""
    processes: list[subprocess.Popen] = []

    def start(*worker_envs: dict[str, str]) -> str:
        scheduler_file = tmp_path / "scheduler.json"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": tmp_path}
        processes.append(
            subprocess.Popen(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                 "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
                **quiet,
            )
        )  # fmt: skip
        for env in worker_envs:
            processes.append(
                subprocess.Popen(
                    [
                        DASK,
                        "worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                    ],
                    env={**os.environ, **env},
                    **quiet,
                )
            )
        deadline = time.monotonic() + 120
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        with Client(scheduler_file=str(scheduler_file)) as client:
            client.wait_for_workers(len(worker_envs), timeout=120)
            return client.scheduler.address

    yield start
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def another_spotcast(folder: Path) -> dict[str, str]:
    """A worker environment in which the installed Spotcast says it is 9.9.9 (another release)."""
    info = folder / "spotcast-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spotcast\nVersion: 9.9.9\n")
    return {"PYTHONPATH": str(folder)}


def test_a_scheduler_whose_worker_runs_another_spotcast_is_refused_in_one_line(start_cluster, tmp_path: Path):
    address = start_cluster({}, another_spotcast(tmp_path / "other"))
    with Client(address) as client:
        workers = client.run(lambda dask_worker: dask_worker.name)
        with pytest.raises(ClusterError) as refused:
            check_cluster(client)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"the Dask cluster at {address} does not run this Spotcast's versions: ")
    mismatches = re.findall(r"spotcast 0\.1\.0 here, 9\.9\.9 on worker (tcp://[\d.:]+)", message)
    assert len(mismatches) == 1 and mismatches[0] in workers  # the other worker matches


def test_a_scheduler_of_the_same_versions_passes_the_check(start_cluster):
    with Client(start_cluster({})) as client:
        check_cluster(client)


@flow(name="items")
def items_flow(marker: str) -> list[int]:
    """Two items on the flow's cluster; the first run of either kills the worker process running it
    (as the OOM killer would)."""

    def kill_own_worker_the_first_time(shared: int, item: int) -> int:
        if not Path(marker).exists():
            Path(marker).touch()
            time.sleep(1.0)  # lost mid-item: the start event has left the worker (not in its first instant)
            os._exit(1)
        return shared + item

    return current_fanout()(kill_own_worker_the_first_time, 10, [1, 2], "item")


@pytest.mark.slow
def test_an_item_whose_worker_is_lost_is_rerun_said_in_its_task_run_log(
    start_cluster, prefect_api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Was: the re-run showed in Prefect as one Completed task run (run count 1), and a worker lost
    # with the only copy of the history (the active memory manager keeps one) ended the run.
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter
    from prefect.settings import PREFECT_API_URL, temporary_settings

    reporting = {"PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(prefect_home(tmp_path / "prefect"))}
    address = start_cluster(reporting, reporting)
    marker = str(tmp_path / "killed-once")
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        results = run_on_cluster(items_flow, None, address, marker)

    assert results == [11, 12] and Path(marker).exists()
    rerun = [r for r in caplog.records if "re-run after a lost worker" in r.getMessage()]
    assert len(rerun) == 1 and re.fullmatch(
        r"item [12]/2 re-run after a lost worker \(tcp://[\d.:]+\): run 2", rerun[0].getMessage()
    )
    task_run_id = UUID(str(rerun[0].task_run_id))
    deadline = time.monotonic() + 30
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        while not (logs := client.read_logs(LogFilter(task_run_id={"any_": [task_run_id]}))):
            assert time.monotonic() < deadline, "the line is not in the task run's log"
            time.sleep(1)
    assert any("re-run after a lost worker" in log.message for log in logs)


# --- the dashboard -----------------------------------------------------------------------------------


def test_the_local_clusters_dashboard_answers():
    # Was: "dashboard at http://127.0.0.1:8787/status" answered 404 (bokeh was not installed).
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with (
        LocalCluster(**task_runner(1).cluster_kwargs) as cluster,
        Client(cluster) as client,
        no_proxy.open(client.dashboard_link, timeout=30) as page,
    ):
        assert page.status == 200
        assert b"bokeh" in page.read().lower()
