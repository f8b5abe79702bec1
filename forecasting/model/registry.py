"""The model registry: where artifacts live, the record of every training run (in the lake), and
which model was the champion — the one the daily flow forecasts with — at each instant.

    <models_root>/<model_id>/                 one artifact directory (see forecasting.model.artifact),
                                               a local folder or on an object store (model/store.py)
    <lake>/model_runs/run_id=<id>/data.parquet one row per training run: id, time, the instant whose
                                               published data trained it (`as_of`), code version,
                                               configuration, parameters, data range and hash,
                                               metrics, tags, artifact location (relative
                                               to models_root)
    <lake>/model_runs/promotions.json          every promotion: model, run, why, when (wall clock) and
                                               from which instant of the lake's as-of clock on

Promotions live on the same clock as the data: a replay at T (`forecast --as-of T`) uses the model
that was champion at T, the newest promotion whose `as_of` is at or before T, and so never a model
trained on data published after T. Lakes written before the history kept a single champion.json;
it is read as the first promotion.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from forecasting import progress
from forecasting.clock import as_utc, utc_now
from forecasting.config import PROJECT_ROOT, Settings
from forecasting.errors import SpotcastError, UsageError
from forecasting.lake.files import CorruptFile, LakeFS
from forecasting.model.store import ModelStore

if TYPE_CHECKING:  # the model (torch) is imported only where one is loaded: listing runs stays fast
    from forecasting.model.pipeline import DeepARPipeline

RUNS = "model_runs"
PROMOTIONS_FILE = "promotions.json"
LEGACY_CHAMPION_FILE = "champion.json"
RUN_FILE = "data.parquet"


class NoChampion(SpotcastError):
    """No model has been promoted yet, or none by the instant asked for."""


class CorruptPromotions(CorruptFile):
    """The promotion history (`promotions.json`, or a legacy `champion.json`) cannot be read. No
    command rewrites it while it is unreadable (a promotion reads it first; `backfill --repair` sets
    series files aside only), and the run records do not say which runs were promoted: the remedy is
    to move it aside and name the champion again."""

    def __init__(self, path: str, reason: BaseException | str) -> None:
        super().__init__(path, reason)
        self.args = (
            f"corrupt lake file {path} ({self.reason}): the champion history. Move it aside (the "
            f"training runs in {RUNS}/ stay) and name the champion again: `spotcast models list`, then "
            "`spotcast models promote RUN_ID --as-of T` (T: the run's as_of), or `spotcast train`",
        )

    def __reduce__(self) -> tuple[type[CorruptPromotions], tuple[str, str]]:  # pickled with its fields
        return CorruptPromotions, (self.path, self.reason)


@dataclass(frozen=True)
class Champion:
    """One promotion: `model_id` (of run `run_id`) is the champion from `as_of` on (ISO UTC, the lake's
    as-of clock) until a later promotion; `promoted_at` is the wall-clock time it was made."""

    model_id: str
    run_id: str
    promoted_at: str
    reason: str
    as_of: str = ""


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


def artifact_dir(settings: Settings, model_id: str) -> str:
    """Where the artifact of `model_id` is: a local path, or a URL on an object store."""
    return ModelStore.of(settings).location(model_id)


def stored_artifact(settings: Settings, artifact: str | Path | None) -> str:
    """How a run records its artifact: relative to models_root (`deepar-…`), so the record stays
    right when the models folder moves; a folder outside it as it is; "" when none was kept."""
    if artifact is None:
        return ""
    relative = ModelStore.of(settings).relative(str(artifact))
    return str(artifact) if relative is None else relative


def artifact_location(settings: Settings, run: pd.Series) -> str | None:
    """Where run `run`'s artifact is now (a row of `list_runs`): its record under the configured
    models_root. Records of before relative ones (an absolute path as it was when trained) name the
    folder `artifact_dir` loads, when that path is gone (the models folder moved). None: not kept."""
    stored = str(run.get("artifact") or "")
    if not stored:
        return None
    if "://" in stored or Path(stored).is_absolute():  # an older record: where it was trained
        still_there = "://" not in stored and Path(stored).exists()
        return stored if still_there else artifact_dir(settings, str(run["model_id"]))
    return artifact_dir(settings, stored)


def save_artifact(settings: Settings, pipeline: DeepARPipeline) -> str:
    """Store the fitted pipeline under models_root, all or nothing (forecasting.model.store);
    returns its location. Same data and parameters → same model id: a new copy replaces the older."""
    return ModelStore.of(settings).save(pipeline)


def record_run(
    lake: LakeFS,
    settings: Settings,
    pipeline: DeepARPipeline,
    artifact: str | Path | None,
    metrics: dict[str, float],
    tags: dict[str, str],
    training_seconds: float,
    as_of: pd.Timestamp,
) -> str:
    """Append one training run to the registry (trained on what was published by `as_of`); returns
    its run id. `artifact` None: the model was not kept (a tuning trial's validation fit)."""
    trained_at = utc_now()
    run_id = f"{trained_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    row = {
        "run_id": run_id,
        "model_id": pipeline.model_id_,
        "trained_at": trained_at,
        "as_of": pd.Timestamp(as_of).tz_convert("UTC"),
        "code_version": code_version(),
        "config": settings.model_dump_json(exclude={"entsoe_token"}),
        "params": json.dumps(pipeline.get_params(), default=str, sort_keys=True),
        "zones": ",".join(pipeline.zones_),
        "train_start": pipeline.training_range_[0],
        "train_end": pipeline.training_range_[1],
        "data_hash": pipeline.training_data_hash_,
        "training_seconds": training_seconds,
        "artifact": stored_artifact(settings, artifact),  # relative to models_root
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
    if not files:
        return pd.DataFrame()
    frame = pd.concat([lake.read_table(p).to_pandas() for p in files], ignore_index=True)
    return frame.sort_values("trained_at").reset_index(drop=True)


def run_as_of(run: pd.Series) -> pd.Timestamp:
    """The instant whose published data trained `run` (a row of `list_runs`). Runs recorded before
    it was kept count from their wall-clock training time: never earlier than the truth."""
    value = run.get("as_of")
    return pd.Timestamp(value if value is not None and pd.notna(value) else run["trained_at"])


def _run(lake: LakeFS, run_id: str) -> pd.Series:
    runs = list_runs(lake)
    match = runs[runs["run_id"] == run_id] if len(runs) else runs
    if match.empty:
        raise UsageError(f"no training run {run_id!r} in the registry; see `spotcast models list`")
    return match.iloc[0]


def promotions(lake: LakeFS) -> list[Champion]:
    """Every promotion, oldest first (a lake of the single champion.json: that one)."""
    path = lake.path(RUNS, PROMOTIONS_FILE)
    if lake.exists(path):
        return _read_champions(lake, path, lambda entry: entry)
    legacy = lake.path(RUNS, LEGACY_CHAMPION_FILE)
    if not lake.exists(legacy):
        return []
    return _read_champions(lake, legacy, lambda entry: {"as_of": _legacy_as_of(lake, entry), **entry})


def _legacy_as_of(lake: LakeFS, entry: dict) -> str:
    """A champion.json of before the promotion history counts from its run's as-of, or from its
    promotion when the run is not in the registry."""
    runs = list_runs(lake)
    match = runs[runs["run_id"] == entry["run_id"]] if len(runs) else runs
    if len(match):
        return run_as_of(match.iloc[0]).isoformat()
    return as_utc(entry["promoted_at"]).isoformat()


def _read_champions(lake: LakeFS, path: str, complete: Callable[[dict], dict]) -> list[Champion]:
    """Promotion records of a JSON file (a list, or one legacy record); CorruptFile if unreadable."""
    try:
        content = json.loads(lake.fs.cat_file(path))
        return [Champion(**complete(entry)) for entry in (content if isinstance(content, list) else [content])]
    except (ValueError, TypeError, KeyError) as exc:  # not JSON, or not promotion records
        raise CorruptPromotions(path, exc) from exc


def promote(lake: LakeFS, run_id: str, reason: str, as_of: pd.Timestamp) -> Champion:
    """Make run `run_id`'s model the champion from the lake-clock instant `as_of` on (a training
    promotes at its own as-of; a promotion by hand at the lake's now). A model cannot be champion
    before the data it was trained on was published."""
    run = _run(lake, run_id)
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    trained_by = run_as_of(run)
    if as_of < trained_by:
        raise UsageError(
            f"run {run_id} was trained on data published up to {trained_by}: it cannot be champion at {as_of}"
        )
    entry = Champion(
        model_id=str(run["model_id"]),
        run_id=run_id,
        promoted_at=utc_now().isoformat(),
        reason=reason,
        as_of=as_of.isoformat(),
    )
    history = [*promotions(lake), entry]
    payload = json.dumps([p.__dict__ for p in history], indent=2).encode()
    lake.write_tables_atomic({lake.path(RUNS, PROMOTIONS_FILE): payload})  # readers see old or new
    return entry


def champion(lake: LakeFS, as_of: pd.Timestamp | None = None) -> Champion:
    """The champion at `as_of` (the newest promotion at or before it; the latest promoted of equals);
    None: the champion of the newest instant."""
    history = promotions(lake)
    if not history:
        raise NoChampion("no model has been promoted yet: run `spotcast train`")
    when = None if as_of is None else pd.Timestamp(as_of).tz_convert("UTC")
    eligible = [p for p in history if when is None or pd.Timestamp(p.as_of) <= when]
    if not eligible:
        first = min(pd.Timestamp(p.as_of) for p in history)
        raise NoChampion(
            f"no model was champion at {when:%Y-%m-%d %H:%M} UTC (the first promotion counts from "
            f"{first:%Y-%m-%d %H:%M} UTC): every model was trained on data published later. Train one "
            f"on what was published by then: spotcast train --as-of {when:%Y-%m-%dT%H:%M}Z"
        )
    return max(eligible, key=lambda p: (pd.Timestamp(p.as_of), p.promoted_at))


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


def load_champion(lake: LakeFS, settings: Settings, as_of: pd.Timestamp | None = None) -> DeepARPipeline:
    """The champion at `as_of` (see `champion`), checked against the configured zones (trusted
    artifacts only)."""
    from forecasting.model.artifact import ArtifactError, load_pipeline

    current = champion(lake, as_of)
    store = ModelStore.of(settings)
    where = store.location(current.model_id)
    if not store.exists(current.model_id):
        raise ArtifactError(
            f"champion {current.model_id} has no artifact at {where}; retrain or promote another"
        )
    try:
        # torch and GluonTS take seconds; from an object store, a checked download first
        with (
            progress.task(f"loading the model {current.model_id}"),
            store.local_copy(current.model_id) as path,
        ):
            return load_pipeline(path, zones=settings.zone_names, where=where)
    except ArtifactError:
        raise
    except UNREADABLE_ARTIFACT as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ArtifactError(
            f"champion {current.model_id}: the model artifact {where} is unreadable ({detail}); "
            "retrain (`spotcast train`) or promote another run (`spotcast models promote`)"
        ) from exc


_OPERATORS = {"<=": "le", ">=": "ge", "!=": "ne", "<": "lt", ">": "gt", "=": "eq"}


def _split_condition(text: str) -> tuple[str, str, str]:
    for symbol, method in _OPERATORS.items():  # two-character operators are tried first
        if symbol in text:
            name, value = (part.strip() for part in text.split(symbol, 1))
            return name, method, value
    raise UsageError(f"not a condition: {text!r} (use e.g. crps<5 or trigger=manual)")


def _tags(text: object) -> dict:
    try:
        tags = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return tags if isinstance(tags, dict) else {}


def _condition(runs: pd.DataFrame, text: str) -> pd.Series:
    """`crps<5`, `rmae<=0.9`, `model_id=deepar-…`, `trigger=manual`, `study=x`, `trial<10`: metrics
    need no `metric_` prefix; names that are neither metrics nor columns are looked up in the run's
    tags (compared as numbers when the value and every tag value present are numbers). A name that
    is none of these is a UsageError naming what there is."""
    name, method, value = _split_condition(text)
    column = f"metric_{name}" if f"metric_{name}" in runs.columns else name
    if column in runs.columns:
        values = runs[column]
    else:
        tags = (
            runs["tags"].map(_tags)
            if "tags" in runs.columns
            else pd.Series([{}] * len(runs), index=runs.index)
        )
        if len(runs) and not any(name in t for t in tags):
            metrics = sorted(c.removeprefix("metric_") for c in runs.columns if c.startswith("metric_"))
            known = sorted({k for t in tags for k in t})
            raise UsageError(
                f"--where {text!r}: no metric, column or tag {name!r} in the registry "
                f"(metrics: {', '.join(metrics) or 'none'}; tags: {', '.join(known) or 'none'})"
            )
        values = tags.map(lambda t: t.get(name))
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers[values.notna()].notna().all() and _is_number(value):
            values = numbers
    if pd.api.types.is_numeric_dtype(values):
        if not _is_number(value):
            raise UsageError(f"--where {text!r}: {name} is a number, {value!r} is not")
        return getattr(values, method)(float(value))
    return getattr(values.astype(str), method)(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def search_runs(
    runs: pd.DataFrame, where: list[str] | None = None, sort: str | None = None, descending: bool = False
) -> pd.DataFrame:
    """Filter runs by conditions on metrics, columns or tags (all must hold), and sort by any metric
    or column."""
    keep = pd.Series(True, index=runs.index)
    for text in where or []:
        keep &= _condition(runs, text).fillna(False).astype(bool)
    runs = runs[keep]
    if sort and len(runs):
        column = f"metric_{sort}" if f"metric_{sort}" in runs.columns else sort
        if column in runs.columns:
            runs = runs.sort_values(column, ascending=not descending, na_position="last")
        else:  # a tag (`--sort trial`): as numbers when they all are
            values = runs["tags"].map(lambda tags: _tags(tags).get(sort))
            if values.isna().all():
                raise UsageError(f"cannot sort by {sort!r}: no such metric, column or tag")
            numbers = pd.to_numeric(values, errors="coerce")
            key = numbers if numbers[values.notna()].notna().all() else values.astype("string")
            order = key.sort_values(ascending=not descending, na_position="last").index
            runs = runs.loc[order]
    return runs.reset_index(drop=True)
