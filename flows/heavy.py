"""The heavy deployments' flows (prefect.yaml, work pool `spotcast-heavy`): the tuning study and the
backtest on a Dask cluster, started by a Prefect worker.

A deployment cannot choose its flow's task runner, and `tune_flow` and `backtest_flow` fan out only
on a Dask task runner (`flows.cluster.current_fanout`): deployed as they are, they would run every
trial, fit and origin one after the other in the worker's flow-run process. These flows take the
cluster as parameters, as `spotcast tune` and `spotcast backtest` take it as options, and run the
flow as a sub-flow run on it (`flows.cluster.run_on_cluster`):

    workers       a LocalCluster of this many worker processes on the worker's machine (default: its
                  cores, // [tune] trial_threads for tune; os.cpu_count() sees the host's cores, not
                  a container's CPU limit: give `workers` in a container); 1: no cluster
    dask_address  a running scheduler (tcp://host:8786) instead; for tune, default [tune] dask_address

The LocalCluster's workers report their task runs to the server of the flow run (the one the Prefect
worker gave it). Workers of a scheduler at `dask_address` report to the server in their own
environment (PREFECT_API_URL).
"""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow

from flows.cluster import local_workers, run_on_cluster
from flows.defaults import apply_prefect_defaults
from flows.modelling import backtest_flow
from flows.tune import run_tune
from forecasting.errors import UsageError
from forecasting.evaluation.backtest import BacktestResult
from forecasting.jobs.tune import TuneResult

# A deployment's entrypoint (prefect.yaml): the module a worker's flow-run process imports of
# Spotcast, so Prefect's defaults are applied here for that process (flows/defaults.py).
apply_prefect_defaults()


@flow(name="tune-on-cluster")
def tune_on_cluster(
    config: str | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    retrain: bool = True,
    as_of: datetime | None = None,
) -> TuneResult:
    """`spotcast tune` as a deployment: run (or resume) the configured study on a LocalCluster of
    `workers` processes or the scheduler at `dask_address`, then retrain the best trial (`retrain`)."""
    return run_tune(config, workers, dask_address, n_trials, timeout_s, retrain, as_of)


@flow(name="backtest-on-cluster")
def backtest_on_cluster(
    start: date,
    end: date,
    config: str | None = None,
    retrain_every: int | None = None,
    zones: list[str] | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
) -> BacktestResult:
    """`spotcast backtest` as a deployment: weekly origins from `start` (a Monday) to `end` (exclusive)
    on a LocalCluster of `workers` processes (default: the machine's cores) or the scheduler at
    `dask_address`; the same numbers as the serial run, written to the lake."""
    if end <= start:
        raise UsageError(f"end {end} is not after start {start}: no origin to backtest")
    return run_on_cluster(
        backtest_flow,
        workers or local_workers(),
        dask_address,
        config=config,
        start=start,
        end=end,
        retrain_every=retrain_every,
        zones=zones,
    )
