"""Saving and loading the pipeline as one versioned artifact directory."""

import json
import shutil

import pandas as pd
import pytest
from spotcast_testing import TINY_PARAMS

from forecasting.model.artifact import (
    METADATA_FILE,
    PARAMS_FILE,
    PREDICTOR_DIR,
    ArtifactError,
    ArtifactMismatchError,
    load_pipeline,
    save_pipeline,
)
from forecasting.model.pipeline import DeepARPipeline

ISSUED = pd.Timestamp("2019-05-02 12:00", tz="UTC")


@pytest.fixture(scope="module")
def artifact(fitted, tmp_path_factory):
    return save_pipeline(fitted, tmp_path_factory.mktemp("artifact") / "model")


def test_loaded_pipeline_forecasts_identically(fitted, artifact, history):
    loaded = load_pipeline(artifact)
    pd.testing.assert_frame_equal(loaded.predict(history, ISSUED).frame, fitted.predict(history, ISSUED).frame)


def test_seed_ensemble_pools_its_members_and_round_trips(fitted, training_history, history, tmp_path):
    ensemble = DeepARPipeline(zones=fitted.zones_, **{**TINY_PARAMS, "ensemble_size": 2})
    ensemble.fit(training_history)
    assert len(ensemble.predictors_) == 2
    forecast = ensemble.predict(history, ISSUED).frame
    assert not forecast.equals(fitted.predict(history, ISSUED).frame)  # the second member changes the paths
    loaded = load_pipeline(save_pipeline(ensemble, tmp_path / "ensemble"))
    pd.testing.assert_frame_equal(loaded.predict(history, ISSUED).frame, forecast)


def test_members_trained_in_parallel_equal_members_trained_one_by_one(fitted, training_history, history):
    params = {**TINY_PARAMS, "ensemble_size": 2}
    serial = DeepARPipeline(zones=fitted.zones_, n_jobs=1, **params).fit(training_history)
    parallel = DeepARPipeline(zones=fitted.zones_, n_jobs=2, **params).fit(training_history)
    assert parallel.model_id_ == serial.model_id_  # n_jobs does not change what the model is
    pd.testing.assert_frame_equal(
        parallel.predict(history, ISSUED).frame, serial.predict(history, ISSUED).frame, atol=1e-3, rtol=1e-3
    )


def test_loaded_pipeline_keeps_its_params(fitted, artifact):
    assert load_pipeline(artifact).get_params() == fitted.get_params()


def test_metadata_records_zones_features_and_training_data(fitted, artifact):
    meta = json.loads((artifact / METADATA_FILE).read_text())
    assert meta["model_id"] == fitted.model_id_
    assert sorted(meta["zones"]) == ["NO1", "NO2"]
    assert meta["covariate_features"] == list(fitted.covariate_features_)
    assert meta["training_data_hash"] == fitted.training_data_hash_
    assert {"gluonts", "torch", "scikit-learn"} <= set(meta["libraries"])


def test_loading_for_other_zones_raises_mismatch(artifact):
    with pytest.raises(ArtifactMismatchError, match="trained for zones"):
        load_pipeline(artifact, zones=["NO1", "NO2", "NO3"])


def test_loading_for_other_covariates_raises_mismatch(artifact):
    with pytest.raises(ArtifactMismatchError, match="trained on covariates"):
        load_pipeline(artifact, covariates=["load_da"])


def test_loading_for_the_same_zones_and_covariates_succeeds(fitted, artifact):
    loaded = load_pipeline(artifact, zones=["NO2", "NO1"], covariates=fitted.covariates)
    assert loaded.model_id_ == fitted.model_id_


def test_loading_a_directory_without_artifact_raises(tmp_path):
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_pipeline(tmp_path)


def test_saving_an_unfitted_pipeline_raises(tmp_path):
    with pytest.raises(ArtifactError, match="fitted"):
        save_pipeline(DeepARPipeline(), tmp_path / "model")


def _copy(artifact, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(artifact, copy)
    return copy


def test_truncated_params_name_the_file(artifact, tmp_path):
    copy = _copy(artifact, tmp_path)
    (copy / PARAMS_FILE).write_text((copy / PARAMS_FILE).read_text()[:20])
    with pytest.raises(ArtifactError, match=PARAMS_FILE):
        load_pipeline(copy)


def test_truncated_network_weights_give_an_artifact_error(artifact, tmp_path):
    copy = _copy(artifact, tmp_path)
    weights = next((copy / PREDICTOR_DIR / "0").glob("*.pt"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="damaged model artifact"):
        load_pipeline(copy)
