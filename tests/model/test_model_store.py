"""Model artifacts under a models root that is a local folder or an fsspec URL (an in-memory store
here; a real S3 server in tests/lake/test_s3_lake.py): written all or nothing, the manifest last,
and loaded only when every file matches it. Where models go when the configuration does not say."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import ConfigError, load_settings
from forecasting.lake.check import check_files
from forecasting.lake.files import LakeFS
from forecasting.model.artifact import ArtifactError, load_pipeline
from forecasting.model.pipeline import DeepARPipeline
from forecasting.model.store import MANIFEST_FILE, ModelStore

ISSUED = pd.Timestamp("2019-05-02 12:00", tz="UTC")


@pytest.fixture
def remote() -> ModelStore:
    return ModelStore(LakeFS.open(f"memory://models-{uuid.uuid4().hex[:8]}/models"))


def failing_manifest_upload(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every artifact file uploads, then the connection drops before the manifest."""
    put_file = store.store.fs.put_file

    def put(local: str, remote: str, **kwargs: object) -> None:
        if remote.endswith(MANIFEST_FILE):
            raise ConnectionResetError("connection reset by peer")
        put_file(local, remote, **kwargs)

    monkeypatch.setattr(store.store.fs, "put_file", put)


def test_an_artifact_on_an_object_store_loads_and_forecasts_as_the_fitted_model(
    fitted: DeepARPipeline, history: pd.DataFrame, remote: ModelStore
) -> None:
    location = remote.save(fitted)

    assert location == remote.location(fitted.model_id_) and location.startswith("memory://")
    assert remote.relative(location) == fitted.model_id_
    with remote.local_copy(fitted.model_id_) as folder:
        loaded = load_pipeline(folder, where=location)
    pd.testing.assert_frame_equal(
        loaded.predict(history, ISSUED).frame, fitted.predict(history, ISSUED).frame
    )
    assert not folder.exists()  # the download is gone once loaded


def test_the_manifest_lists_every_file_and_is_uploaded_last(
    fitted: DeepARPipeline, remote: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded: list[str] = []
    put_file = remote.store.fs.put_file
    monkeypatch.setattr(
        remote.store.fs,
        "put_file",
        lambda local, key, **kw: (uploaded.append(key), put_file(local, key, **kw)),
    )

    remote.save(fitted)

    prefix = remote.store.path(fitted.model_id_)
    manifest = json.loads(remote.store.fs.cat_file(f"{prefix}/{MANIFEST_FILE}"))["files"]
    assert uploaded[-1] == f"{prefix}/{MANIFEST_FILE}"
    assert sorted(uploaded[:-1]) == sorted(f"{prefix}/{name}" for name in manifest)
    assert {"params.json", "metadata.json", "preprocessing.npz"} <= set(manifest)
    assert any(name.startswith("predictor/0/") for name in manifest)


def test_an_upload_cut_short_fails_in_one_line_and_leaves_nothing_loadable(
    fitted: DeepARPipeline, remote: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote.save(fitted)  # a complete older copy of the same model: the new one replaces it
    failing_manifest_upload(remote, monkeypatch)

    with pytest.raises(ArtifactError, match=r"could not upload the model artifact memory://.*not loadable"):
        remote.save(fitted)

    assert remote.exists(fitted.model_id_)  # its files are there, but no manifest
    with pytest.raises(ArtifactError) as refused, remote.local_copy(fitted.model_id_):
        pass
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{remote.location(fitted.model_id_)} is no complete model artifact")


def test_a_file_that_differs_from_the_manifest_is_refused_naming_it(
    fitted: DeepARPipeline, remote: ModelStore
) -> None:
    remote.save(fitted)
    key = remote.store.path(fitted.model_id_, "preprocessing.npz")
    remote.store.fs.pipe_file(key, remote.store.fs.cat_file(key)[:-10])  # truncated meanwhile

    differs = r"preprocessing\.npz differs from the artifact's manifest\.json"
    with pytest.raises(ArtifactError, match=differs), remote.local_copy(fitted.model_id_):
        pass


def test_a_local_models_root_gets_the_artifact_whole_with_its_manifest(
    fitted: DeepARPipeline, tmp_path: Path
) -> None:
    local = ModelStore(LakeFS.open(str(tmp_path / "models")))

    location = local.save(fitted)

    assert location == str(tmp_path / "models" / fitted.model_id_)
    assert local.relative(location) == fitted.model_id_ and local.relative("/elsewhere/model") is None
    assert (Path(location) / MANIFEST_FILE).is_file()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [fitted.model_id_]  # no temporary left
    with local.local_copy(fitted.model_id_) as folder:
        assert folder == Path(location)


def test_models_go_under_a_lake_on_an_object_store_unless_configured() -> None:
    assert load_settings(lake_root="s3://bucket/lake").models_root == "s3://bucket/lake/models"
    assert load_settings(lake_root="s3://bucket/lake/").models_root == "s3://bucket/lake/models"
    configured = load_settings(lake_root="s3://bucket/lake", models_root="s3://models-bucket/deepar")
    assert configured.models_root == "s3://models-bucket/deepar"


def test_a_models_root_of_an_unknown_file_system_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"models_root = 'nosuch://x/models': unknown file system 'nosuch'"):
        load_settings(models_root="nosuch://x/models")


def test_the_lake_check_leaves_models_under_the_lake_to_their_manifest(tmp_path: Path) -> None:
    lake = LakeFS.open(str(tmp_path / "lake"))
    damaged = tmp_path / "lake" / "models" / "deepar-0123" / "params.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"hidden_size": ')  # no lake repair applies; loading names it

    assert check_files(lake) == []
