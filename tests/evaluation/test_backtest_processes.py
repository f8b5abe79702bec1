"""A backtest of a tiny real DeepAR pipeline on two worker processes equals the serial one, number
for number: fits, raw forecasts made ahead in chunks, and origins all run in the workers."""

import pandas as pd
import pytest
from spotcast_testing import TINY_PARAMS

from forecasting.config import load_settings
from forecasting.evaluation.backtest import run_backtest
from forecasting.fanout import ProcessFanout
from forecasting.feeds.replay import ReplayFeed
from forecasting.model.forecaster import CalibratedForecaster
from forecasting.model.pipeline import DeepARPipeline

ZONES = {"NO1": "Europe/Oslo", "NO2": "Europe/Oslo"}


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    full = ReplayFeed.from_settings(load_settings()).history
    rows = full[full["zone"].isin(list(ZONES))]
    return rows[(rows["delivery_hour"] >= "2017-01-01") & (rows["delivery_hour"] < "2019-05-01")]


def run(history: pd.DataFrame, **fanout) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = run_backtest(
        history,
        lambda: CalibratedForecaster(DeepARPipeline(zones=ZONES, **TINY_PARAMS)),
        "2019-03-01",
        "2019-03-16",
        timezones=ZONES,
        model_name="deepar",
        **fanout,
    )
    assert result.raw_forecasts > len(result.origins)  # the calibration issues too, made ahead
    forecasts = result.forecasts.sort_values(["model", "issued_at", "zone", "delivery_hour"], ignore_index=True)
    return forecasts, result.products.sort_values(["model", "issued_at", "zone", "product"], ignore_index=True)


def test_a_backtest_on_two_worker_processes_equals_the_serial_one(history):
    serial, serial_products = run(history)
    with ProcessFanout(2) as fanout:
        parallel, parallel_products = run(history, fanout=fanout, origin_tasks=2)
    assert set(serial["model"]) == {"deepar", "seasonal_naive", "seasonal_naive_empirical", "level_shape_naive"}
    pd.testing.assert_frame_equal(parallel, serial)
    assert set(serial_products["model"]) == {"deepar", "no_change", "mean_of_hourly_deciles"}
    pd.testing.assert_frame_equal(parallel_products, serial_products)
