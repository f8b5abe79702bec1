"""A fit inside a Dask worker: worker processes are daemons, which may not start the processes the
ensemble members usually train in, so the members train in the worker itself."""

import pandas as pd
from distributed import Client, LocalCluster
from spotcast_testing import TINY_PARAMS

from forecasting.model.pipeline import DeepARPipeline

ZONES = {"NO1": "Europe/Oslo"}


def test_a_two_member_ensemble_fits_inside_a_dask_worker(training_history):
    rows = training_history[training_history["zone"].isin(list(ZONES))]
    pipeline = DeepARPipeline(zones=ZONES, **{**TINY_PARAMS, "ensemble_size": 2})
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        daemons = client.run(lambda: __import__("multiprocessing").current_process().daemon)
        assert all(daemons.values())  # the premise: Dask workers are daemons
        fitted = client.submit(pipeline.fit, rows).result()
    assert len(fitted.predictors_) == 2
    forecast = fitted.predict(rows, pd.Timestamp("2019-02-25 11:00", tz="UTC")).frame
    assert forecast["p50"].notna().all() and set(forecast["zone"]) == set(ZONES)
