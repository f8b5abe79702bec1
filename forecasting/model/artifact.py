"""Save and load a fitted `DeepARPipeline` as ONE versioned artifact directory:

    params.json         constructor parameters (get_params)
    metadata.json       format version, model id, zones, feature names and order, training range and
                        data hash, start of the out-of-sample calibration weeks, library versions
    preprocessing.npz   fitted StandardScaler and PCA attributes (plain arrays, no pickle)
    predictor/<k>/      the GluonTS predictor of ensemble member k, written by its own serialize()
    gbm/p10.txt … p90.txt   the LightGBM member's boosters (gbm_weight > 0), LightGBM's text format

`save_pipeline` and `load_pipeline` work on a local directory (GluonTS serializes to local files);
forecasting/model/store.py puts it under models_root (a local folder or an object store) with a
manifest.json of every file, written last, and fetches it back checked against that manifest.

Security: the scikit-learn part is loaded from plain arrays and the LightGBM boosters from their
text format (numbers, no code), but the GluonTS predictor is rebuilt by
GluonTS's serde, which instantiates the classes named in its JSON, and by torch.load of the network
state. Only load artifacts you (or your pipeline) wrote: a tampered artifact can run code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from forecasting.errors import SpotcastError
from forecasting.model.gbm import QuantileMember
from forecasting.model.pipeline import DeepARPipeline, FittedState

FORMAT_VERSION = 2
PARAMS_FILE = "params.json"
METADATA_FILE = "metadata.json"
PREPROCESSING_FILE = "preprocessing.npz"
PREDICTOR_DIR = "predictor"
GBM_DIR = "gbm"
LIBRARIES = ("gluonts", "torch", "lightning", "scikit-learn", "numpy", "pandas", "lightgbm")
STAGES: dict[str, type] = {"scaler": StandardScaler, "pca": PCA}


class ArtifactError(SpotcastError):
    """The artifact directory is missing, incomplete or of an unknown format version."""


class ArtifactMismatchError(ArtifactError):
    """The artifact was trained for other zones or features than the caller asks for."""


class ArtifactFormatError(ArtifactError):
    """The artifact was written by a Spotcast whose model format this code cannot forecast with."""


def save_pipeline(pipeline: DeepARPipeline, path: str | Path) -> Path:
    """Write the fitted `pipeline` to the directory `path` (created; existing files overwritten)."""
    if not hasattr(pipeline, "predictors_"):
        raise ArtifactError("only a fitted pipeline can be saved")
    state = pipeline.fitted_state()
    path = Path(path)
    (path / PREDICTOR_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(path / PARAMS_FILE, _jsonable_params(pipeline))
    _write_json(path / METADATA_FILE, _metadata(pipeline.covariates, state))
    np.savez(path / PREPROCESSING_FILE, **_stage_arrays({"scaler": state.scaler, "pca": state.pca}))
    for member, predictor in enumerate(state.predictors):
        (path / PREDICTOR_DIR / str(member)).mkdir(exist_ok=True)
        predictor.serialize(path / PREDICTOR_DIR / str(member))
    if state.member is not None:
        state.member.save(path / GBM_DIR)
    return path


def load_pipeline(
    path: str | Path,
    zones: Iterable[str] | None = None,
    covariates: Iterable[str] | None = None,
    where: str | None = None,
) -> DeepARPipeline:
    """Read an artifact written by `save_pipeline` (trusted artifacts only, see the module doc).

    `zones` / `covariates`, when given, are what the caller will forecast with; an artifact trained
    for anything else raises ArtifactMismatchError instead of forecasting nonsense. A damaged
    artifact (truncated or unreadable file) raises ArtifactError naming the file. `where` names the
    artifact in messages when `path` is a local copy (of one on an object store, model/store.py).
    """
    from gluonts.torch.model.predictor import PyTorchPredictor  # torch loads only with a model

    path = Path(path)
    where = where or str(path)
    for name in (PARAMS_FILE, METADATA_FILE, PREPROCESSING_FILE, PREDICTOR_DIR):
        if not (path / name).exists():
            raise ArtifactError(f"{where} is not a model artifact: {name} is missing")
    meta = _read_json(path / METADATA_FILE)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactFormatError(
            f"{where}: artifact format {meta.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    check_matches(meta, zones, covariates, where=where)

    params = _read_json(path / PARAMS_FILE)
    params["covariates"] = tuple(params["covariates"])
    params["lags_seq"] = tuple(params["lags_seq"])
    try:
        with np.load(path / PREPROCESSING_FILE, allow_pickle=False) as arrays:
            stages = _stages_from_arrays(dict(arrays))
        predictors = [
            PyTorchPredictor.deserialize(path / PREDICTOR_DIR / str(member), device="cpu")
            for member in range(params.get("ensemble_size", 1))
        ]
        member = None
        if params.get("gbm_weight", 0.0) > 0:
            member = QuantileMember.load(path / GBM_DIR, tuple(meta["gbm_features"]))
    except (OSError, ValueError, KeyError, RuntimeError, EOFError) as exc:
        raise ArtifactError(
            f"{where}: damaged model artifact ({type(exc).__name__}: {exc}); retrain it"
        ) from exc
    state = FittedState(
        zones=dict(meta["zones"]),
        covariate_features=tuple(meta["covariate_features"]),
        anchor_features=tuple(meta["anchor_features"]),
        scaler=stages["scaler"],
        pca=stages["pca"],
        predictors=predictors,
        calibration_from=pd.Timestamp(meta["calibration_from"]),
        training_range=tuple(meta["training_range"]),
        training_data_hash=meta["training_data_hash"],
        model_id=meta["model_id"],
        member=member,
    )
    return DeepARPipeline.from_state(params, state)


def check_matches(
    meta: dict, zones: Iterable[str] | None, covariates: Iterable[str] | None, where: str
) -> None:
    """Raise ArtifactMismatchError when the requested zones or covariates differ from the artifact's."""
    if zones is not None and sorted(zones) != sorted(meta["zones"]):
        raise ArtifactMismatchError(
            f"{where}: model {meta['model_id']} was trained for zones {sorted(meta['zones'])}, "
            f"requested {sorted(zones)}; train a model for these zones"
        )
    if covariates is not None and list(covariates) != list(meta["covariates"]):
        raise ArtifactMismatchError(
            f"{where}: model {meta['model_id']} was trained on covariates {meta['covariates']} "
            f"(in this order), requested {list(covariates)}; train a model for these features"
        )


def _metadata(covariates: Iterable[str], state: FittedState) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "model_id": state.model_id,
        "zones": state.zones,
        "covariates": list(covariates),
        "covariate_features": list(state.covariate_features),
        "anchor_features": list(state.anchor_features),
        "pca_components": int(state.pca.n_components_),
        "calibration_from": state.calibration_from.isoformat(),
        "training_range": list(state.training_range),
        "training_data_hash": state.training_data_hash,
        "libraries": {name: version(name) for name in LIBRARIES},
        "gbm_features": None if state.member is None else list(state.member.features),
    }


def _jsonable_params(pipeline: DeepARPipeline) -> dict:
    params = pipeline.get_params()
    params["zones"] = None if params["zones"] is None else dict(params["zones"])
    params["covariates"] = list(params["covariates"])
    params["lags_seq"] = list(params["lags_seq"])
    return params


def _stage_arrays(stages: dict) -> dict[str, np.ndarray]:
    """Every fitted attribute (name ending in `_`) of each stage as `stage.attribute` arrays."""
    arrays = {}
    for stage, estimator in stages.items():
        arrays[f"{stage}.__params__"] = np.array(json.dumps(estimator.get_params()))
        for name, value in vars(estimator).items():
            if name.endswith("_") and not name.startswith("_") and value is not None:
                arrays[f"{stage}.{name}"] = np.asarray(value)
    return arrays


def _stages_from_arrays(arrays: dict[str, np.ndarray]) -> dict:
    stages = {}
    for stage, cls in STAGES.items():
        params = json.loads(str(arrays[f"{stage}.__params__"]))
        estimator = cls(**params)
        for key, value in arrays.items():
            prefix, _, name = key.partition(".")
            if prefix == stage and name != "__params__":
                setattr(estimator, name, value.item() if value.ndim == 0 else value)
        stages[stage] = estimator
    return stages


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable model artifact file ({exc}); retrain the model") from exc


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
