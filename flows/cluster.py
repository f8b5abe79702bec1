"""Fan-out on a Dask cluster through Prefect's Dask task runner (prefect-dask): each backtest fit,
backtest origin or tuning trial is one Prefect task run, so it shows in the UI with its own state and
logs, and runs on whichever Dask worker is free.

Default: a LocalCluster on 127.0.0.1 of cores // threads worker processes, one task at a time each
(workers × torch threads ≤ cores: DeepAR on CPU gains more from a second trial than from a second
thread), with its dashboard (bokeh) at http://127.0.0.1:8787/status, or another port when that one
is taken; an address (tcp://host:8786) uses a running scheduler instead, once its workers are
found to run the same versions as this process (`check_cluster`). The shared input of a fan-out
(the history) is scattered to the workers once and handed to each task by Dask, not pickled into
every task.

A stop (Ctrl-C, SIGTERM) cancels the items still running and closes their task runs as Cancelled;
a LocalCluster's workers ignore both signals (`dask_setup`) and are stopped with the cluster. An
item whose worker was lost is run again by Dask on another worker; the fan-out says so, in the
console and in the task run's log (`DaskFanout`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import distributed
import httpx
from distributed import Client, Worker
from prefect import Flow, get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.states import Cancelled
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from flows.servers import workers_report_here
from forecasting.console import quiet_prefect_shutdown
from forecasting.errors import SpotcastError
from forecasting.fanout import Fanout, Function, in_process

R = TypeVar("R")

log = logging.getLogger("spotcast.cluster")

# A stopped run's task runs are closed through the API; the server writes a task run's record a few
# seconds after it started (Prefect's task-run recorder flushes every 5 s), so a started one that is
# not there yet is tried again, this long.
RECORDED_WITHIN_S = 10.0
EVENTS_SENT_S = 5.0  # a stopped run's workers get this long to send their queued Prefect events
WATCH_S = 2.0  # how often a waiting fan-out looks for items whose worker was lost


class ClusterError(SpotcastError):
    """The Dask scheduler given by address runs other versions than this process (exit code 1)."""


def local_workers(threads: int = 1) -> int:
    """Worker processes a LocalCluster of this machine gets: cores // torch threads per task."""
    return max(1, (os.cpu_count() or 1) // threads)


# A LocalCluster's workers print warnings only: the command shows the fan-out's progress, and each
# task run's own lines are in the Prefect UI.
WORKER_ENV = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}


def dask_setup(worker: Worker) -> None:
    """distributed's preload hook, run in each LocalCluster worker process as it starts: the worker
    ignores SIGINT and SIGTERM. A terminal's Ctrl-C reaches every process of its foreground group,
    systemd's stop every process of the service; a worker that died of it printed a traceback and
    left the scheduler reporting lost data. The command stops its workers with the cluster instead,
    and they end with it even on `kill -9` (a nanny's worker exits when its parent is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def task_runner(workers: int | None = None, address: str | None = None) -> DaskTaskRunner:
    """A Dask task runner: on the scheduler at `address`, else on a new LocalCluster of `workers`."""
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": workers or local_workers(),
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "env": WORKER_ENV,
            "preload": [__name__],  # dask_setup
        },
    )


def run_on_cluster(
    flow_: Flow[..., R], workers: int | None, address: str | None, *args: Any, **kwargs: Any
) -> R:
    """`flow_(*args, **kwargs)` on a Dask task runner when asked for a scheduler address or more than one
    worker (a LocalCluster reporting to this process's Prefect server: `servers.workers_report_here`);
    else in this process (its fan-outs run one item after the other). Workers of a scheduler at
    `address` report to the server in their own environment."""
    if not address and (workers or 1) <= 1:
        return flow_(*args, **kwargs)
    on_cluster = flow_.with_options(task_runner=task_runner(workers, address))
    if address:
        return on_cluster(*args, **kwargs)
    with workers_report_here():
        return on_cluster(*args, **kwargs)


def _dask_runner() -> DaskTaskRunner | None:
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    return runner if isinstance(runner, DaskTaskRunner) else None


def current_fanout() -> Fanout:
    """Inside a flow: one task run per item on its Dask cluster (a scheduler given by address checked
    first, `check_cluster`), else one item after the other here."""
    runner = _dask_runner()
    if runner is None:
        return in_process
    client = runner.client
    if runner.address:
        check_cluster(client)
    # The history is scattered to every worker, and a lost worker's items are re-run on the others
    # with their copy; the active memory manager would keep one copy only, and losing its worker
    # would end the run ("lost dependencies").
    client.amm.stop()
    workers = len(client.scheduler_info()["workers"])
    log.info(
        "Dask cluster %s: %d worker(s), dashboard %s",
        client.scheduler.address,
        workers,
        client.dashboard_link,
    )
    return DaskFanout(runner)


def cluster_size() -> int:
    """Dask workers of the running flow's cluster (1 without one): how many tasks run at once."""
    runner = _dask_runner()
    return len(runner.client.scheduler_info()["workers"]) if runner is not None else 1


def spotcast_version() -> str:
    """The Spotcast installed where this runs; run on a worker, it also shows that the worker imports
    Spotcast's code (this function is sent by reference to its module)."""
    return importlib.metadata.version("spotcast")


def check_cluster(client: Client) -> None:
    """Refuse, in one line, a cluster whose scheduler or workers run other versions of Dask's
    packages than this process (those `Client.get_versions` compares: python, dask, distributed,
    cloudpickle, pandas, numpy…), or whose workers import another Spotcast or none."""
    mismatches = _package_mismatches(client.get_versions())
    here = spotcast_version()
    for worker, there in client.run(spotcast_version, on_error="return").items():
        if isinstance(there, BaseException):
            mismatches.append(f"worker {worker} cannot run Spotcast ({type(there).__name__}: {there})")
        elif there != here:
            mismatches.append(f"spotcast {here} here, {there} on worker {worker}")
    if mismatches:
        raise ClusterError(
            f"the Dask cluster at {client.scheduler.address} does not run this Spotcast's versions: "
            f"{'; '.join(mismatches)}; install the same versions on its scheduler and workers"
        )


def _package_mismatches(versions: dict[str, Any]) -> list[str]:
    """'dask 2026.7.1 here, 2025.1.0 on worker tcp://…' for each package whose version differs
    between this process and the scheduler or a worker (distributed's own comparison)."""
    from distributed.versions import scheduler_relevant_packages

    here = versions["client"]["packages"]
    others = {f"worker {address}": info["packages"] for address, info in versions["workers"].items()}
    scheduler = versions["scheduler"]["packages"]
    others["the scheduler"] = {k: v for k, v in scheduler.items() if k in scheduler_relevant_packages}
    return [
        f"{package} {version} here, {packages.get(package)} on {where}"
        for package, version in here.items()
        for where, packages in others.items()
        if package in packages and packages[package] != version
    ]


STARTED = "spotcast-item-started"  # the scheduler's event topic: an item began on a worker


@task(name="fan-out", cache_policy=NO_CACHE, task_run_name="{label}")
def _run_item(function: Callable[[Any, Any], Any], shared: Any, item: Any, label: str) -> Any:
    worker = distributed.get_worker()
    worker.log_event(STARTED, {"key": worker.get_current_task(), "worker": worker.address})
    return function(shared, item)


class DaskFanout(Fanout):
    """A `Fanout` for a flow running on a DaskTaskRunner: one task run per item. The shared input is
    scattered to every worker once per run, and Dask resolves it on the worker: the history is not
    pickled per task.

    An item running on a worker that is lost is run again by Dask on another, and Prefect shows one
    Completed run of it (run count 1). So each run of an item leaves an event on the scheduler
    (STARTED), and while it waits the fan-out reads them (every WATCH_S): a second run of an item
    is said on the console and in the item's task run log ("trial 3 re-run after a lost worker
    (tcp://…): run 2"). Events are what any client may read: no code of ours runs on the scheduler.
    A worker lost within milliseconds of starting an item may die before its event is sent: that
    re-run goes unsaid (the result is right either way)."""

    def __init__(self, runner: DaskTaskRunner) -> None:
        self.runner = runner
        self._labels: dict[str, str] = {}  # of the items running, by Dask key
        self._runs: dict[str, int] = {}  # runs said so far of each item that was re-run

    def _share(self, shared: Any) -> Any:
        return self.runner.client.scatter(shared, broadcast=True, hash=False)

    def _unshare(self, shared: Any) -> None:
        shared.release()

    def _submit(self, function: Function, shared: Any, item: Any, label: str) -> PrefectDaskFuture:
        future = _run_item.submit(function, shared, item, label=label)
        self._labels[future.wrapped_future.key] = label
        return future

    def _first_done(self, pending: list[PrefectDaskFuture]) -> PrefectDaskFuture:
        futures = [future.wrapped_future for future in pending]
        while True:
            self._watch(pending)
            try:
                with self.runner.client.as_current():
                    finished = distributed.wait(futures, WATCH_S, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            done = next(future for future in pending if future.wrapped_future in finished)
            self._watch([done])  # lost and re-run between two looks
            key = done.wrapped_future.key
            for known in (self._labels, self._runs):
                known.pop(key, None)
            return done

    def _watch(self, pending: list[PrefectDaskFuture]) -> None:
        """Say each pending item that has started more than once (its earlier worker was lost)."""
        started: dict[str, list[str]] = {}  # the workers each item started on, in order
        for _, event in self.runner.client.get_events(STARTED):
            started.setdefault(event["key"], []).append(event["worker"])
        for future in pending:
            key = future.wrapped_future.key
            workers = started.get(key, [])
            if len(workers) > self._runs.get(key, 1):
                self._runs[key] = len(workers)
                log.warning(
                    "%s re-run after a lost worker (%s): run %d",
                    self._labels[key],
                    workers[-2],
                    len(workers),
                    extra={"task_run_id": future.task_run_id},  # the task run's log too
                )

    def _abandon(self, pending: list[PrefectDaskFuture], error: BaseException) -> None:
        """Cancel the items still running and close their task runs as Cancelled, so that a stopped
        run leaves none Running for ever. A LocalCluster of this process is closed first, its
        workers with their items, so no state of theirs can come after Cancelled; on a running
        scheduler an item already running finishes on its worker (a thread cannot be stopped), its
        result is dropped, and its task run ends as it ends there."""
        client = self.runner.client
        local = client.cluster is not None
        started = {key for keys in client.processing().values() for key in keys}
        if local:
            client.run(_quiet_distributed_logs)  # before the cancel: its workers say so too
        client.cancel([future.wrapped_future for future in pending], force=True)
        # The workers' task-run events (Running…) may still be queued there: sent now, the server
        # records those task runs within RECORDED_WITHIN_S and they can be closed; a LocalCluster
        # closed with them queued would leave them unrecorded, or recorded Running later.
        client.run(_send_prefect_events, on_error="return")
        if local:
            _close_quietly(client)
        message = f"the run stopped ({type(error).__name__}) before this task's result was taken"
        ids = [future.task_run_id for future in pending]
        try:
            cancel_task_runs(
                ids, {f.task_run_id for f in pending if f.wrapped_future.key in started}, message
            )
        except Exception as exc:  # the stop goes on: the error that stopped the run is the news
            log.warning("%d task run(s) not closed as Cancelled: %s", len(ids), exc)


async def _send_prefect_events() -> None:
    """Send the Prefect events this worker holds (its items' task-run states), within EVENTS_SENT_S."""
    from prefect.events.worker import EventsWorker

    quiet_prefect_shutdown()  # the worker's own console lines reach the command's stderr
    await EventsWorker.drain_all(timeout=EVENTS_SENT_S, at_exit=False)


def _quiet_distributed_logs() -> None:
    """distributed's lines below CRITICAL are dropped in this process from now on: the cluster is
    torn down after a stop, and what breaks on the way (a heartbeat to the closed scheduler, a
    cancelled instruction) is the stop, said once by the command."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _close_quietly(client: Client) -> None:
    """Close a stopped run's LocalCluster (and the client of it) now, its workers still running
    their items: distributed would say so at length (cancelled instructions, "Worker process still
    alive after 4.0 seconds, killing"), and a stop is not news to it. Prefect's own closing of them
    afterwards finds them closed."""
    cluster = client.cluster
    distributed_log = logging.getLogger("distributed")
    level = distributed_log.level
    _quiet_distributed_logs()
    try:
        client.close()
        cluster.close()
    finally:
        distributed_log.setLevel(level)


def cancel_task_runs(task_run_ids: list[UUID], started: set[UUID], message: str) -> None:
    """Set each task run Cancelled. A started one that the server has not recorded yet is tried
    again until it is (RECORDED_WITHIN_S); one that never started has no record to close."""
    deadline = time.monotonic() + RECORDED_WITHIN_S
    with get_client(sync_client=True) as client:
        for task_run_id in task_run_ids:
            while True:
                try:
                    client.set_task_run_state(task_run_id, Cancelled(message=message), force=True)
                    break
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 404:
                        raise
                    if task_run_id not in started or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
