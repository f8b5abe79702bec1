"""One tiny real DeepAR pipeline, trained once per session on two zones of the bundled history."""

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.feeds.replay import ReplayFeed
from forecasting.model.pipeline import DeepARPipeline
from forecasting.publication import known_at

ZONES = {"NO1": "Europe/Oslo", "NO2": "Europe/Oslo"}
TRAIN_END = pd.Timestamp("2019-03-01", tz="UTC")
# Tiny but real: a few seconds of training on 2 cores.
TINY = dict(
    context_length=24,
    lags_seq=(1, 24),
    hidden_size=8,
    num_layers=1,
    dropout_rate=0.0,
    max_epochs=1,
    num_batches_per_epoch=5,
    batch_size=8,
    num_samples=20,
    origin_stride_days=7,
    calibration_weeks=2,
)


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    """NO1/NO2 rows from autumn 2018 to autumn 2019 (spans Easter and both DST switches of 2019)."""
    full = ReplayFeed.from_settings(load_settings()).history
    rows = full[full["zone"].isin(list(ZONES))]
    return rows[(rows["delivery_hour"] >= "2018-09-01") & (rows["delivery_hour"] < "2019-11-15")]


@pytest.fixture(scope="session")
def training_history(history) -> pd.DataFrame:
    return known_at(history, TRAIN_END)


@pytest.fixture(scope="session")
def fitted(training_history) -> DeepARPipeline:
    return DeepARPipeline(zones=ZONES, **TINY).fit(training_history)
