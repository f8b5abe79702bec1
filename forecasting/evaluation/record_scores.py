"""A model's track record scored: its raw forecasts kept in the lake (`forecasting.lake.track_record`)
of every issue whose four weeks are delivered, against the realised prices, next to the seasonal
naive of the same issues. The deciles are the model's raw ones, before the spread calibration."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from forecasting.evaluation.baselines import SEASONAL_NAIVE, SeasonalNaive
from forecasting.evaluation.metrics import MODEL, score
from forecasting.publication import known_at
from forecasting.schema import DELIVERY_HOUR, ISSUED_AT, MODEL_ID, PRICE, SERIES_COL

RAW_MODEL = "model, raw deciles"


def delivered(track: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Issues of `track` whose every forecast hour is before the newest price."""
    if track.empty or prices.empty:
        return track.iloc[0:0]
    newest = prices[DELIVERY_HOUR].max()
    last_hour = track.groupby(ISSUED_AT)[DELIVERY_HOUR].transform("max")
    return track[last_hour <= newest]


def score_track_record(
    track: pd.DataFrame, history: pd.DataFrame, timezones: Mapping[str, str]
) -> pd.DataFrame | None:
    """Metric table (overall and per horizon week) of the delivered issues in `track`, or None when
    none is delivered yet. `history` is a tidy series frame holding the prices before and over them."""
    prices = history[history[SERIES_COL] == PRICE]
    done = delivered(track, prices)
    if done.empty:
        return None
    naive = []
    for issue in pd.DatetimeIndex(done[ISSUED_AT].unique()):
        known = known_at(prices, issue)
        naive.append(SeasonalNaive(timezones).fit(known).predict(known, issue).assign(**{MODEL: SEASONAL_NAIVE}))
    forecasts = pd.concat([done.assign(**{MODEL: RAW_MODEL}), *naive], ignore_index=True)
    table = score(forecasts.drop(columns=[MODEL_ID]), prices, model_col=MODEL)
    return table.assign(issues=done[ISSUED_AT].nunique())
