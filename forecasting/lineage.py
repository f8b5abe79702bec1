"""Lineage of a published number: forecast → model → training run → training data (range, hash) →
the feed pulls whose rows the forecast read. Answers "which model and which data produced this?"."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from forecasting.config import Settings
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import read_forecast, read_forecast_inputs
from forecasting.lake.series_store import FEED, read_series
from forecasting.model.pipeline import DeepARPipeline, history_needed
from forecasting.model.registry import artifact_location, list_runs
from forecasting.model.store import ModelStore
from forecasting.schema import DELIVERY_HOUR, ISSUED_AT, MODEL_ID, RETRIEVED_AT, SERIES_COL, ZONE


@dataclass(frozen=True)
class Lineage:
    issue_date: date
    zone: str
    issued_at: pd.Timestamp
    model_id: str
    runs: pd.DataFrame  # training runs that produced the model (normally one)
    inputs: pd.DataFrame  # feed status and covariate extension at issue time
    pulls: pd.DataFrame  # per series × feed × retrieval: rows read and the hours they cover

    def render(self) -> str:
        lines = [
            f"forecast   {self.zone} issued {self.issued_at:%Y-%m-%d %H:%M} UTC (issue date {self.issue_date})",
            f"  model    {self.model_id}",
        ]
        if self.runs.empty:
            lines.append("  run      (no training run recorded for this model)")
        for _, run in self.runs.iterrows():
            lines += [
                f"  run      {run['run_id']} trained {run['trained_at']:%Y-%m-%d %H:%M} UTC, code {run['code_version']}",
                f"  artifact {run['artifact']}",
                f"  data     {run['train_start']} … {run['train_end']}, sha256 {run['data_hash'][:16]}…",
            ]
        lines.append("  inputs at issue time:")
        lines += ["    " + line for line in self.inputs.to_string(index=False).splitlines()]
        lines.append("  feed pulls read by the forecast:")
        lines += ["    " + line for line in self.pulls.to_string(index=False).splitlines()]
        return "\n".join(lines)


def _calibration_weeks(runs: pd.DataFrame) -> int:
    """The forecasting model's calibration_weeks (what sets how far back its forecast read)."""
    default = DeepARPipeline().calibration_weeks
    return int(json.loads(runs["params"].iloc[0]).get("calibration_weeks", default)) if len(runs) else default


def _shown_artifact(settings: Settings, run: pd.Series) -> str:
    where = artifact_location(settings, run)
    if where is None:
        return "(not kept)"
    # A URL is in the models store (reached with its endpoint); a local path is looked at here.
    kept = ModelStore.of(settings).store.fs.exists(where) if "://" in where else Path(where).exists()
    return where if kept else f"{where} (missing: moved or deleted)"


def lineage(settings: Settings, issue_date: date, zone: str) -> Lineage:
    lake = LakeFS.of(settings)
    forecast = read_forecast(lake, issue_date, zones=[zone])
    issued_at = pd.Timestamp(forecast[ISSUED_AT].iloc[0])
    model_id = str(forecast[MODEL_ID].iloc[0])
    runs = list_runs(lake)
    runs = runs[runs["model_id"] == model_id] if len(runs) else runs
    if len(runs):  # where the artifact is now (records keep it relative to models_root)
        runs = runs.assign(artifact=[_shown_artifact(settings, run) for _, run in runs.iterrows()])
    inputs = read_forecast_inputs(lake, issue_date)
    inputs = inputs[inputs[ZONE] == zone].drop(columns=[ZONE])
    rows = read_series(
        lake,
        zones=[zone],
        start=issued_at - history_needed(_calibration_weeks(runs)),
        as_of=issued_at,
        with_feed=True,
    )
    pulls = (
        rows.groupby([SERIES_COL, FEED, RETRIEVED_AT])[DELIVERY_HOUR]
        .agg(rows="size", first_hour="min", last_hour="max")
        .reset_index()
        .sort_values([SERIES_COL, RETRIEVED_AT])
    )
    return Lineage(issue_date, zone, issued_at, model_id, runs, inputs, pulls)
