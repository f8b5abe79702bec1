"""The DeepAR pipeline as a scikit-learn estimator and as a `Forecaster`."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from spotcast_testing import assert_predict_leaves_unchanged

from forecasting.features.covariates import HOURS_EXTENDED, INPUT_STATUS_COLUMNS, NEWEST_PUBLISHED_HOUR
from forecasting.forecast_frame import forecast_start
from forecasting.model.pipeline import DeepARPipeline
from forecasting.paths import RawForecast
from forecasting.publication import known_at
from forecasting.schema import (
    DELIVERY_HOUR,
    FORECAST_COLUMNS,
    HORIZON_HOUR,
    HORIZON_HOURS,
    LOCAL_TIME,
    MODEL_ID,
    QUANTILE_COLUMNS,
    SERIES_COL,
    ZONE,
)

ISSUED = pd.Timestamp("2019-04-10 12:00", tz="UTC")  # 14:00 in Oslo, after the price auction


@pytest.fixture(scope="module")
def record(fitted, history) -> RawForecast:
    return fitted.predict(history, ISSUED)


@pytest.fixture(scope="module")
def forecast(record) -> pd.DataFrame:
    return record.frame


def test_get_params_survive_clone():
    pipeline = DeepARPipeline(n_components=3, embedding_dimension=2, lags_seq=(1, 24))
    params = clone(pipeline).get_params()
    assert params["n_components"] == 3
    assert params["embedding_dimension"] == 2
    assert params["lags_seq"] == (1, 24)


def test_set_params_changes_only_the_named_param():
    pipeline = DeepARPipeline().set_params(n_components=0.8)
    assert pipeline.n_components == 0.8
    assert pipeline.context_length == DeepARPipeline().context_length


def test_clone_of_fitted_pipeline_is_unfitted(fitted):
    assert not hasattr(clone(fitted), "predictors_")


def test_predict_before_fit_raises_not_fitted(history):
    with pytest.raises(NotFittedError, match="not fitted"):
        DeepARPipeline().predict(history, ISSUED)


def test_predict_leaves_the_estimator_unchanged(fitted, history):
    assert_predict_leaves_unchanged(fitted, history, ISSUED + pd.Timedelta(days=1))


def test_state_round_trip_gives_the_same_forecast(fitted, history, forecast):
    restored = DeepARPipeline.from_state(fitted.get_params(), fitted.fitted_state())
    pd.testing.assert_frame_equal(restored.predict(history, ISSUED).frame, forecast)


def test_forecast_has_horizon_rows_per_zone_and_forecast_columns(forecast):
    assert list(forecast.columns) == FORECAST_COLUMNS
    assert forecast.groupby(ZONE).size().to_dict() == {"NO1": HORIZON_HOURS, "NO2": HORIZON_HOURS}


def test_forecast_starts_at_first_unpublished_price_hour(forecast, history):
    for zone, rows in forecast.groupby(ZONE):
        assert rows[DELIVERY_HOUR].iloc[0] == forecast_start(history, zone, ISSUED)
        assert rows[HORIZON_HOUR].tolist() == list(range(1, HORIZON_HOURS + 1))


def test_quantiles_do_not_cross(forecast):
    deciles = forecast[list(QUANTILE_COLUMNS)].to_numpy()
    assert (np.diff(deciles, axis=1) >= 0).all()


def test_forecast_carries_the_model_id(forecast, fitted):
    assert (forecast[MODEL_ID] == fitted.model_id_).all()


def test_forecast_ignores_rows_published_after_issue(fitted, history, forecast):
    only_known = fitted.predict(known_at(history, ISSUED), ISSUED).frame
    pd.testing.assert_frame_equal(only_known, forecast)


def test_forecast_ignores_history_older_than_it_needs(fitted, history, forecast):
    recent = history[history[DELIVERY_HOUR] >= ISSUED - fitted.history_needed]
    pd.testing.assert_frame_equal(fitted.predict(recent, ISSUED).frame, forecast)


def test_input_status_reports_every_zone_and_covariate(fitted, record):
    status = record.input_status
    assert list(status.columns) == INPUT_STATUS_COLUMNS
    assert len(status) == 2 * len(fitted.covariates)
    assert (status[NEWEST_PUBLISHED_HOUR] <= ISSUED + pd.Timedelta(days=2)).all()
    assert (status[HOURS_EXTENDED] > HORIZON_HOURS - 48).all()


def local_hours_of_day(forecast: pd.DataFrame, day: str) -> pd.DataFrame:
    rows = forecast[(forecast[ZONE] == "NO1") & forecast[LOCAL_TIME].str.startswith(day)]
    return rows[[DELIVERY_HOUR, LOCAL_TIME]].reset_index(drop=True)


def test_spring_forward_day_has_23_local_hours_mapped_to_utc(fitted, history):
    forecast = fitted.predict(history, pd.Timestamp("2019-03-20 13:00", tz="UTC")).frame
    day = local_hours_of_day(forecast, "2019-03-31")
    assert len(day) == 23
    assert day[LOCAL_TIME].iloc[2] == "2019-03-31T03:00+0200"  # 02:00 does not exist
    assert day[DELIVERY_HOUR].iloc[2] == pd.Timestamp("2019-03-31 01:00", tz="UTC")


def test_fall_back_day_has_25_local_hours_mapped_to_utc(fitted, history):
    forecast = fitted.predict(history, pd.Timestamp("2019-10-10 12:00", tz="UTC")).frame
    day = local_hours_of_day(forecast, "2019-10-27")
    assert len(day) == 25
    assert day[LOCAL_TIME].iloc[2:4].tolist() == ["2019-10-27T02:00+0200", "2019-10-27T02:00+0100"]
    assert day[DELIVERY_HOUR].iloc[2:4].tolist() == [
        pd.Timestamp("2019-10-27 00:00", tz="UTC"),
        pd.Timestamp("2019-10-27 01:00", tz="UTC"),
    ]


def test_pca_fraction_keeps_that_share_of_covariate_variance(fitted):
    assert fitted.pca_.explained_variance_ratio_.sum() >= fitted.n_components


def test_pca_integer_keeps_that_many_components(fitted, training_history):
    pipeline = clone(fitted).set_params(zones={"NO1": "Europe/Oslo"}, n_components=4)
    pipeline.fit(training_history)
    assert pipeline.pca_.n_components_ == 4


def test_a_covariate_with_no_value_in_training_is_named_and_left_out(fitted, training_history, history, caplog):
    """NO1's bundled history has no wind forecast; without load_da too, both columns are empty: the
    training log names them, no numpy warning escapes the scaler, and the forecast is finite."""
    without = training_history[training_history[SERIES_COL] != "load_da"]
    pipeline = clone(fitted).set_params(zones={"NO1": "Europe/Oslo"})
    with caplog.at_level("WARNING", logger="forecasting.model.pipeline"), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pipeline.fit(without)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("no value of")]
    assert said == ["no value of load_da, wind_onshore_da in the training windows: left out of this model"]
    paths = pipeline.predict(history[history[SERIES_COL] != "load_da"], ISSUED).paths.zones[0].values
    assert np.isfinite(paths).all()


def test_raw_forecasts_made_ahead_are_the_paths_predict_makes(fitted, history, record):
    """A backtest makes raw paths ahead, in chunks of issues and other processes: they must be the
    paths `predict` makes at the same issue."""
    issues = pd.DatetimeIndex([ISSUED - pd.Timedelta(days=7), ISSUED])
    for chunk in (issues[1:], issues):  # each run from the history of its own span
        made = {paths.issued_at: paths for paths in fitted.raw_forecasts(history, chunk)}
        ahead = made[ISSUED]
        for zone, mine in zip(ahead.zones, record.paths.zones, strict=True):
            np.testing.assert_array_equal(zone.values, mine.values)
            assert zone.delivery_hours.equals(mine.delivery_hours)


def test_paths_are_float32_samples_by_horizon_hours_in_eur(fitted, record, forecast):
    for zone in record.paths.zones:
        assert zone.values.shape == (fitted.num_samples, HORIZON_HOURS)
        assert zone.values.dtype == np.float32
    # the hourly view is the paths' deciles
    no1 = record.paths.zones[0]
    rows = forecast[forecast[ZONE] == no1.zone]
    np.testing.assert_allclose(rows["p50"], np.median(no1.values.astype("float64"), axis=0), rtol=1e-9)


def test_a_one_layer_network_with_dropout_trains_without_torch_warnings(fitted, training_history):
    """The tuning space samples a dropout rate for one-layer networks too; the LSTM has nothing to
    drop between layers then, and torch's warning about it would reach the console."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DeepARPipeline(**{**fitted.get_params(), "num_layers": 1, "dropout_rate": 0.15}).fit(training_history)
    assert not [w for w in caught if "dropout" in str(w.message)]
