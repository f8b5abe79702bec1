"""Fan-out on a Dask cluster through Prefect's Dask task runner (prefect-dask): each backtest fit,
backtest origin or tuning trial is one Prefect task run, so it shows in the UI with its own state and
logs, and runs on whichever Dask worker is free.

Default: a LocalCluster on 127.0.0.1 of cores // threads worker processes, one task at a time each
(workers × torch threads ≤ cores: DeepAR on CPU gains more from a second trial than from a second
thread); an address (tcp://host:8786) uses a running scheduler instead. The shared input of a
fan-out (the history) is scattered to the workers once and handed to each task by Dask, not pickled
into every task.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect_dask import DaskTaskRunner

from flows.servers import workers_report_here
from forecasting.fanout import Fanout, Function, in_process

R = TypeVar("R")


def local_workers(threads: int = 1) -> int:
    """Worker processes a LocalCluster of this machine gets: cores // torch threads per task."""
    return max(1, (os.cpu_count() or 1) // threads)


# A LocalCluster's workers print warnings only: the command shows the fan-out's progress, and each
# task run's own lines are in the Prefect UI.
WORKER_ENV = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}


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
            "dashboard_address": None,
            "env": WORKER_ENV,
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
    """Inside a flow: one task run per item on its Dask cluster, else one item after the other here."""
    return dask_fanout if _dask_runner() is not None else in_process


def cluster_size() -> int:
    """Dask workers of the running flow's cluster (1 without one): how many tasks run at once."""
    runner = _dask_runner()
    return len(runner.client.scheduler_info()["workers"]) if runner is not None else 1


@task(name="fan-out", cache_policy=NO_CACHE, task_run_name="{label}")
def _run_item(function: Callable[[Any, Any], Any], shared: Any, item: Any, label: str) -> Any:
    return function(shared, item)


class DaskFanout(Fanout):
    """A `Fanout` for flows running on a DaskTaskRunner: one task run per item. The shared input is
    scattered to every worker once per run, and Dask resolves it on the worker: the history is not
    pickled per task."""

    def _runner(self) -> DaskTaskRunner:
        runner = _dask_runner()
        if runner is None:
            raise RuntimeError("DaskFanout runs inside a flow whose task runner is a DaskTaskRunner")
        return runner

    def _share(self, shared: Any) -> Any:
        return self._runner().client.scatter(shared, broadcast=True, hash=False)

    def _unshare(self, shared: Any) -> None:
        shared.release()

    def _submit(self, function: Function, shared: Any, item: Any, label: str) -> PrefectFuture:
        return _run_item.submit(function, shared, item, label=label)

    def _first_done(self, pending: list[PrefectFuture]) -> PrefectFuture:
        return next(as_completed(pending))


dask_fanout = DaskFanout()
