"""The study `spotcast tune` writes is a plain Optuna study: Optuna's own tools (optuna.load_study,
optuna-dashboard) open its journal file with nothing of Spotcast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from spotcast_testing import tiny_config

from forecasting.config import load_settings
from forecasting.jobs import ingest
from forecasting.lake.files import LakeFS
from forecasting.tuning.study import journal_path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2019-03-15 13:30", tz="UTC")
SPACE = {"hidden_size": {"low": 4, "high": 8}, "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}
TUNE = {
    "study": "plain",
    "seed": 3,
    "validation": [{"start": "2019-02-04", "end": "2019-02-12"}],  # two Monday origins
    "space": SPACE,
    "params": {"ensemble_size": 1, "n_jobs": 1},
}


def test_optuna_load_study_reads_the_journal_spotcast_tune_wrote(tmp_path: Path):
    config = tiny_config(tmp_path, ["NO1"], "2018-06-01", tune=TUNE)
    settings = load_settings(config)
    assert ingest.backfill(settings, as_of=AS_OF).ok
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false"
    )
    done = subprocess.run(
        [sys.executable, "-m", "forecasting.cli", "tune", "--config", str(config), "--workers", "1",
         "--trials", "2", "--no-retrain", "--as-of", str(AS_OF)],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    path = journal_path(LakeFS.of(settings), "plain")
    storage = JournalStorage(JournalFileBackend(path))
    assert optuna.get_all_study_names(storage) == ["plain"]
    study = optuna.load_study(study_name="plain", storage=storage)

    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert all(set(t.params) == set(SPACE) for t in trials)
    assert all(len(t.intermediate_values) == 2 for t in trials)  # the mean CRPS after each origin
    assert trials[0].user_attrs["configured"] and "coverage_10_90" in trials[1].user_attrs
    assert f"best so far trial {study.best_trial.number}, {study.best_value:.3f}" in done.stderr
