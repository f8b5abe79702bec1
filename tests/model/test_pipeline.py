"""The DeepAR pipeline as a scikit-learn estimator and as a `Forecaster`."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from forecasting.features.covariates import HOURS_EXTENDED, INPUT_STATUS_COLUMNS, NEWEST_PUBLISHED_HOUR
from forecasting.forecast_frame import ForecastRecord, forecast_start
from forecasting.lake.track_record import MemoryTrackRecord
from forecasting.model.calibration import DELIVERED_AFTER
from forecasting.model.pipeline import DeepARPipeline
from forecasting.publication import known_at
from forecasting.schema import (
    DELIVERY_HOUR,
    FORECAST_COLUMNS,
    HORIZON_HOUR,
    HORIZON_HOURS,
    LOCAL_TIME,
    MODEL_ID,
    QUANTILE_COLUMNS,
    ZONE,
)

ISSUED = pd.Timestamp("2019-04-10 12:00", tz="UTC")  # 14:00 in Oslo, after the price auction


@pytest.fixture(scope="module")
def record(fitted, history) -> ForecastRecord:
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
    """scikit-learn's check_dict_unchanged: a forecast returns its by-products, stores none."""
    before = dict(fitted.__dict__)
    params = fitted.get_params()
    fitted.predict(history, ISSUED + pd.Timedelta(days=1))
    assert fitted.__dict__.keys() == before.keys()
    assert all(fitted.__dict__[key] is value for key, value in before.items())
    assert fitted.get_params() == params


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


def test_deciles_are_calibrated_on_delivered_weekly_issues_the_network_never_saw(fitted, record):
    issues = fitted._calibration_issues(ISSUED)
    assert len(issues) == fitted.calibration_weeks
    local, issued_local = issues.tz_convert("Europe/Oslo"), ISSUED.tz_convert("Europe/Oslo")
    assert (local.weekday == issued_local.weekday()).all()  # same local weekday and hour, across DST
    assert (local.hour == issued_local.hour).all()
    assert (issues + DELIVERED_AFTER <= ISSUED).all()  # every truth was published by the issue
    assert (issues >= fitted.calibration_from_).all()  # after the training windows' horizons
    assert record.spread_factors.shape == (HORIZON_HOURS // 168,)
    assert (record.spread_factors > 0).all()


def test_track_record_keeps_the_forecast_and_its_calibration_issues(fitted, history, forecast):
    track_record = MemoryTrackRecord()
    first = fitted.predict(history, ISSUED, track_record)
    for issue in [ISSUED, *fitted._calibration_issues(ISSUED)]:
        assert track_record.get(fitted.model_id_, issue) is not None
    pd.testing.assert_frame_equal(first.frame, forecast)  # the same whatever was stored before
    again = fitted.predict(history, ISSUED, track_record)  # everything now comes from the record
    pd.testing.assert_frame_equal(again.frame, forecast)


def test_calibration_issues_come_from_the_track_record(fitted, history, forecast):
    """A stored past forecast is what the calibration uses: a doctored one changes the spread."""
    track_record = MemoryTrackRecord()
    for issue in fitted._calibration_issues(ISSUED):
        past = fitted.predict(history, issue).frame
        track_record.put(fitted.model_id_, past.assign(p10=past["p50"] - 1e-3, p90=past["p50"] + 1e-3))
    widened = fitted.predict(history, ISSUED, track_record)
    assert (widened.spread_factors > 100).all()


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


def test_raw_forecasts_made_ahead_are_the_ones_predict_makes(fitted, history, forecast):
    """A backtest fills the track record ahead, in chunks of issues and other processes; the
    frames must be those `predict` would make and keep, and the forecast must not change."""
    made_by_predict = MemoryTrackRecord()
    fitted.predict(history, ISSUED, made_by_predict)
    issues = fitted.raw_issues(pd.DatetimeIndex([ISSUED]))
    assert issues[-1] == ISSUED and len(issues) == 1 + len(fitted._calibration_issues(ISSUED))
    ahead = MemoryTrackRecord()
    for chunk in (issues[:3], issues[3:]):  # two runs, each from the history of its own span
        for frame in fitted.raw_forecasts(history, chunk):
            ahead.put(fitted.model_id_, frame)
    for issue in issues:
        pd.testing.assert_frame_equal(ahead.get(fitted.model_id_, issue), made_by_predict.get(fitted.model_id_, issue))
    pd.testing.assert_frame_equal(fitted.predict(history, ISSUED, ahead).frame, forecast)


def test_a_one_layer_network_with_dropout_trains_without_torch_warnings(fitted, training_history):
    """The tuning space samples a dropout rate for one-layer networks too; the LSTM has nothing to
    drop between layers then, and torch's warning about it would reach the console."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DeepARPipeline(**{**fitted.get_params(), "num_layers": 1, "dropout_rate": 0.15}).fit(training_history)
    assert not [w for w in caught if "dropout" in str(w.message)]
