"""One tiny real DeepAR pipeline, trained once per session on two zones of the bundled history."""

import pandas as pd
import pytest
from spotcast_testing import TINY_PARAMS

from forecasting.config import load_settings
from forecasting.feeds.replay import ReplayFeed
from forecasting.model.pipeline import DeepARPipeline
from forecasting.publication import known_at

ZONES = {"NO1": "Europe/Oslo", "NO2": "Europe/Oslo"}
TRAIN_END = pd.Timestamp("2019-03-01", tz="UTC")
TINY = TINY_PARAMS


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
