"""The tuning flow: the Optuna study's trials as task runs on a Dask cluster, then the study's plots
and best trials as artifacts of the flow run, and the best trial retrained (champion/challenger)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_image_artifact, create_markdown_artifact

from flows.cluster import cluster_size, current_fanout, local_workers, run_on_cluster
from forecasting.config import settings_for
from forecasting.jobs.ingest import as_utc
from forecasting.jobs.tune import TuneResult, tune


@flow(name="tune")
def tune_flow(
    config: str | None = None,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    retrain: bool = True,
    as_of: datetime | None = None,
) -> TuneResult:
    """Run (or resume) the configured study, as many trials at once as the cluster has workers."""
    from forecasting.reports.bundle import png_data_uri

    settings = settings_for(config, None)
    result = tune(settings, current_fanout(), cluster_size(), n_trials, timeout_s, retrain, as_utc(as_of))
    key = "tune-" + "".join(c if c.isalnum() else "-" for c in result.study.lower())
    create_markdown_artifact(f"```\n{result.summary}\n```", key=key, description="Best trials, importances")
    for path in map(Path, result.plots):
        if path.exists():  # a local lake; a remote one's plots are in its reports area
            create_image_artifact(png_data_uri(path), key=f"{key}-{path.stem}", description=path.name)
    return result


def run_tune(
    config: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    retrain: bool = True,
    as_of: datetime | None = None,
) -> TuneResult:
    """`tune_flow` on the scheduler at `address` ([tune] dask_address), else on a LocalCluster of
    `workers` processes (default: cores // [tune] trial_threads; 1: no cluster, trials run here)."""
    tune_config = settings_for(config, None).tune
    address = address or tune_config.dask_address
    size = workers or local_workers(tune_config.trial_threads)
    return run_on_cluster(tune_flow, size, address, config, n_trials, timeout_s, retrain, as_of)
