"""The model registry: where artifacts live, the record of every training run (in the lake), and
which model is the champion the daily flow forecasts with.

    <models_root>/<model_id>/                 one artifact directory (see forecasting.model.artifact)
    <lake>/model_runs/run_id=<id>/data.parquet one row per training run: id, time, code version,
                                               configuration, parameters, data range and hash,
                                               metrics, tags, artifact location
    <lake>/model_runs/champion.json            the promoted model and why
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import uuid
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pyarrow as pa

from forecasting.config import PROJECT_ROOT, Settings
from forecasting.errors import SpotcastError, UsageError
from forecasting.lake.files import CorruptFile, LakeFS
from forecasting.model.artifact import ArtifactError, load_pipeline
from forecasting.model.pipeline import DeepARPipeline

RUNS = "model_runs"
CHAMPION_FILE = "champion.json"
RUN_FILE = "data.parquet"


class NoChampion(SpotcastError):
    """No model has been promoted yet."""


@dataclass(frozen=True)
class Champion:
    model_id: str
    run_id: str
    promoted_at: str
    reason: str


def code_version() -> str:
    """The git commit of the running code (with '+dirty' when uncommitted), else the package version."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty=+dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return commit or version("spotcast")
    except (OSError, subprocess.SubprocessError):
        return version("spotcast")


def artifact_dir(settings: Settings, model_id: str) -> Path:
    return Path(settings.models_root) / model_id


def save_artifact(settings: Settings, pipeline: DeepARPipeline) -> Path:
    """Save under a temporary name, then rename: a crash never leaves a half-written model behind."""
    final = artifact_dir(settings, pipeline.model_id_)
    tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
    pipeline.save(tmp)
    if final.exists():  # same data and parameters → same model id: replace the older copy
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def record_run(
    lake: LakeFS,
    settings: Settings,
    pipeline: DeepARPipeline,
    artifact: Path,
    metrics: dict[str, float],
    tags: dict[str, str],
    training_seconds: float,
) -> str:
    """Append one training run to the registry; returns its run id."""
    run_id = f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    row = {
        "run_id": run_id,
        "model_id": pipeline.model_id_,
        "trained_at": pd.Timestamp.now(tz="UTC"),
        "code_version": code_version(),
        "config": settings.model_dump_json(exclude={"entsoe_token"}),
        "params": json.dumps(pipeline.get_params(), default=str, sort_keys=True),
        "zones": ",".join(pipeline.zones_),
        "train_start": pipeline.training_range_[0],
        "train_end": pipeline.training_range_[1],
        "data_hash": pipeline.training_data_hash_,
        "training_seconds": training_seconds,
        "artifact": str(artifact),
        "tags": json.dumps(tags, sort_keys=True),
        **{f"metric_{name}": float(value) for name, value in metrics.items()},
    }
    table = pa.Table.from_pylist([row])
    lake.write_table_atomic(table, lake.path(RUNS, f"run_id={run_id}", RUN_FILE))
    return run_id


def list_runs(lake: LakeFS) -> pd.DataFrame:
    folder = lake.path(RUNS)
    if not lake.exists(folder):
        return pd.DataFrame()
    files = [p for p in lake.fs.find(folder) if p.endswith(RUN_FILE)]
    frame = pd.concat([lake.read_table(p).to_pandas() for p in files], ignore_index=True)
    return frame.sort_values("trained_at").reset_index(drop=True)


def promote(lake: LakeFS, run_id: str, reason: str) -> Champion:
    runs = list_runs(lake)
    match = runs[runs["run_id"] == run_id] if len(runs) else runs
    if match.empty:
        raise UsageError(f"no training run {run_id!r} in the registry; see `spotcast models list`")
    champion = Champion(
        model_id=str(match["model_id"].iloc[0]),
        run_id=run_id,
        promoted_at=pd.Timestamp.now(tz="UTC").isoformat(),
        reason=reason,
    )
    payload = json.dumps(champion.__dict__, indent=2).encode()
    lake.write_tables_atomic({lake.path(RUNS, CHAMPION_FILE): payload})
    return champion


def champion(lake: LakeFS) -> Champion:
    path = lake.path(RUNS, CHAMPION_FILE)
    if not lake.exists(path):
        raise NoChampion("no model has been promoted yet: run `spotcast train`")
    try:
        return Champion(**json.loads(lake.fs.cat_file(path)))
    except (ValueError, TypeError) as exc:  # not JSON, or not a champion record
        raise CorruptFile(path, exc) from exc


# What a truncated or tampered artifact raises while it is read (json, numpy, torch, GluonTS serde).
UNREADABLE_ARTIFACT = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    RuntimeError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)


def load_champion(lake: LakeFS, settings: Settings) -> DeepARPipeline:
    """The promoted model, checked against the configured zones (trusted artifacts only)."""
    current = champion(lake)
    path = artifact_dir(settings, current.model_id)
    if not path.exists():
        raise ArtifactError(
            f"champion {current.model_id} has no artifact at {path}; retrain or promote another"
        )
    try:
        return load_pipeline(path, zones=settings.zone_names)
    except ArtifactError:
        raise
    except UNREADABLE_ARTIFACT as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ArtifactError(
            f"champion {current.model_id}: the model artifact {path} is unreadable ({detail}); "
            "retrain (`spotcast train`) or promote another run (`spotcast models promote`)"
        ) from exc


_OPERATORS = {"<=": "le", ">=": "ge", "!=": "ne", "<": "lt", ">": "gt", "=": "eq"}


def _split_condition(text: str) -> tuple[str, str, str]:
    for symbol, method in _OPERATORS.items():  # two-character operators are tried first
        if symbol in text:
            name, value = (part.strip() for part in text.split(symbol, 1))
            return name, method, value
    raise UsageError(f"not a condition: {text!r} (use e.g. crps<5 or trigger=manual)")


def _condition(runs: pd.DataFrame, text: str) -> pd.Series:
    """`crps<5`, `rmae<=0.9`, `model_id=deepar-…`, `trigger=manual`: metrics need no `metric_`
    prefix; names that are neither metrics nor columns are looked up in the run's tags."""
    name, method, value = _split_condition(text)
    column = f"metric_{name}" if f"metric_{name}" in runs.columns else name
    if column in runs.columns:
        values = runs[column]
    else:
        values = runs["tags"].map(lambda tags: json.loads(tags).get(name))
    if pd.api.types.is_numeric_dtype(values):
        return getattr(values, method)(float(value))
    return getattr(values.astype(str), method)(value)


def search_runs(
    runs: pd.DataFrame, where: list[str] | None = None, sort: str | None = None, descending: bool = False
) -> pd.DataFrame:
    """Filter runs by conditions on metrics, columns or tags, and sort by any metric or column."""
    for text in where or []:
        runs = runs[_condition(runs, text)]
    if sort:
        column = f"metric_{sort}" if f"metric_{sort}" in runs.columns else sort
        if column not in runs.columns:
            raise UsageError(f"cannot sort by {sort!r}: no such metric or column")
        runs = runs.sort_values(column, ascending=not descending, na_position="last")
    return runs.reset_index(drop=True)
