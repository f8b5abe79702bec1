"""`spotcast tune` and the cluster backtest, with a tiny real model on two zones of the bundled
history: a study on a 2-worker LocalCluster (a real Prefect run), resume after a killed study, a
pruned trial, and a backtest on the cluster that equals the serial one number for number."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from spotcast_testing import detached_env, tiny_config

from forecasting.config import Settings, load_settings
from forecasting.fanout import InProcess
from forecasting.jobs import ingest
from forecasting.jobs.backtest import run_configured_backtest
from forecasting.jobs.tune import tune
from forecasting.lake.files import LakeFS
from forecasting.model import registry
from forecasting.model.pipeline import DeepARPipeline
from forecasting.tuning.study import distributions, open_study

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2019-03-15 13:30", tz="UTC")
TWO_ORIGINS = {"start": "2019-02-04", "end": "2019-02-12"}  # Mondays 4 and 11 February
ONE_ORIGIN = {"start": "2019-02-04", "end": "2019-02-05"}
SPACE = {
    "hidden_size": {"low": 4, "high": 8},
    "embedding_dimension": {"low": 2, "high": 4},
    "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
}


# Pruning from the first finished trial on, and on two workers a trial sees those two places back or
# older: what each trial sees matters within four trials.
VIEW_MATTERS = {
    "validation": [TWO_ORIGINS], "pruner_startup_trials": 1, "pruner_warmup_origins": 0, "lag_per_worker": 1,
}  # fmt: skip


def tune_table(**VIEW_MATTERS: object) -> dict:
    return {
        "study": "tiny",
        "seed": 7,
        "n_trials": 2,
        "validation": [TWO_ORIGINS],
        "space": SPACE,
        "params": {"ensemble_size": 1, "n_jobs": 1},
        "pruner_startup_trials": 5,
        "pruner_warmup_origins": 0,
        **VIEW_MATTERS,
    }


@pytest.fixture(scope="module")
def lake_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of NO1/NO2 (prices and covariates) from June 2018, as published by AS_OF."""
    folder = tmp_path_factory.mktemp("tune")
    config = tiny_config(folder, ["NO1", "NO2"], "2018-06-01", tune=tune_table())
    assert ingest.backfill(load_settings(config), as_of=AS_OF).ok
    return folder


def settings_in(folder: Path, **tune_changes: object) -> Settings:
    """Settings of `folder`'s lake (a copy of the module's lake) with [tune] changed."""
    return load_settings(tiny_config(folder, ["NO1", "NO2"], "2018-06-01", tune=tune_table(**tune_changes)))


@pytest.fixture
def own_lake(lake_folder: Path, tmp_path: Path) -> Path:
    """A copy of the module's lake, so each test starts from the same history and no study."""
    subprocess.run(["cp", "-r", str(lake_folder / "lake"), str(tmp_path / "lake")], check=True)
    return tmp_path


@pytest.fixture
def prefect_env(tmp_path: Path) -> dict[str, str]:
    return detached_env(tmp_path / "prefect", PYTHONPATH=str(PROJECT_ROOT))


def spotcast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "forecasting.cli", *args], env=env, cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def tune_runs(settings: Settings) -> pd.DataFrame:
    return registry.search_runs(registry.list_runs(LakeFS.open(settings.lake_root)), ["trigger=tune"])


def test_a_study_on_a_two_worker_cluster_records_every_trial_and_retrains_the_best(own_lake, prefect_env):
    settings = settings_in(own_lake)
    config = str(own_lake / "spotcast.toml")
    done = spotcast("tune", "--config", config, "--workers", "2", "--as-of", str(AS_OF), env=prefect_env)
    assert "best trials" in done.stdout and "best trial retrained as run" in done.stdout
    # The workers report to the command's own temporary server (none of their own) and print no
    # line per task: the command shows the trials' progress.
    assert "Starting temporary server" not in done.stderr and "| INFO" not in done.stderr
    assert "trial 1: mean CRPS" in done.stderr and "best so far trial" in done.stderr  # one line a trial

    study = open_study(settings, resume=False)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2 and all(len(t.intermediate_values) == 2 for t in trials)
    assert {"rmse", "rmae", "coverage_10_90"} <= set(trials[0].user_attrs)
    # A plain Optuna study: Optuna's own tools (optuna.load_study, optuna-dashboard) open the
    # journal with nothing of Spotcast.
    storage = JournalStorage(JournalFileBackend(str(Path(settings.lake_root, "tuning", "tiny.journal"))))
    assert optuna.get_all_study_names(storage) == ["tiny"]
    plain = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.state for t in plain] == [TrialState.COMPLETE] * 2 and all(set(t.params) == set(SPACE) for t in plain)
    assert [t.values for t in plain] == [t.values for t in trials]

    recorded = tune_runs(settings)
    assert sorted(json.loads(t)["trial"] for t in recorded["tags"]) == ["0", "1"]
    assert recorded[["metric_crps", "metric_rmse", "metric_rmae", "metric_coverage_10_90"]].notna().all().all()
    best = recorded.sort_values("metric_crps").iloc[0]
    assert best["metric_crps"] == pytest.approx(study.best_value)

    retrained = registry.search_runs(registry.list_runs(LakeFS.open(settings.lake_root)), ["trigger=tune-best"])
    assert len(retrained) == 1 and json.loads(retrained["params"][0])["hidden_size"] == study.best_params["hidden_size"]
    assert registry.champion(LakeFS.open(settings.lake_root)).run_id == retrained["run_id"][0]  # the first model
    assert Path(settings.lake_root, "reports", "tune", "tiny", "history.png").stat().st_size > 0

    model = DeepARPipeline(**{**settings.model.params, **settings.tune.params}).get_params()
    configured = {name: model[name] for name in settings.tune.space}
    assert trials[0].params == configured and trials[0].user_attrs["configured"]  # the baseline trial

    logs = set(Path(settings.lake_root, "logs").rglob("*.log"))
    showing = spotcast("tune", "--config", config, "--show", env=prefect_env)
    shown = showing.stdout
    assert set(Path(settings.lake_root, "logs").rglob("*.log")) == logs and "full log" not in showing.stderr
    assert f"{study.best_trial.number}" in shown
    assert "parameter importances: from 10 complete trials (2 so far)" in shown  # none from 2 trials
    assert f"configured model (trial 0): CRPS {trials[0].value:.4g}" in shown


class Killed(InProcess):
    """Trials run in this process, interrupted (Ctrl-C, a killed process) once `survivors` were told."""

    def __init__(self, survivors: int) -> None:
        self.survivors = survivors

    def _first_done(self, pending: list) -> object:
        if self.survivors == 0:
            raise KeyboardInterrupt
        self.survivors -= 1
        return super()._first_done(pending)


def test_a_killed_study_resumes_with_the_trials_an_uninterrupted_one_runs(own_lake: Path):
    settings = settings_in(own_lake, validation=[ONE_ORIGIN])
    tune(settings, n_trials=1, retrain=False)
    with pytest.raises(KeyboardInterrupt):
        tune(settings, fanout=Killed(0), n_trials=2, retrain=False)
    interrupted = open_study(settings, resume=False).trials[-1]
    assert interrupted.state == TrialState.RUNNING

    tune(settings, n_trials=2, retrain=False)
    resumed = open_study(settings, resume=False)
    assert [t.state for t in resumed.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert resumed.trials[2].params == interrupted.params

    fresh = settings_in(own_lake, validation=[ONE_ORIGIN], study="fresh")
    tune(fresh, n_trials=2, retrain=False)
    uninterrupted = open_study(fresh, resume=False)
    assert [t.params for t in uninterrupted.trials] == [resumed.trials[0].params, resumed.trials[2].params]
    assert uninterrupted.best_params == resumed.best_params
    assert uninterrupted.best_value == resumed.best_value


def test_a_batch_killed_after_one_trial_keeps_it_and_resumes_as_if_uninterrupted(own_lake: Path):
    settings = settings_in(own_lake, **VIEW_MATTERS)
    with pytest.raises(KeyboardInterrupt):
        tune(settings, fanout=Killed(1), workers=2, n_trials=2, retrain=False)
    kept = open_study(settings, resume=False).trials
    assert [t.state for t in kept] == [TrialState.COMPLETE, TrialState.RUNNING]  # trial 0 was told at once
    assert [json.loads(t)["trial"] for t in tune_runs(settings)["tags"]] == ["0"]  # and recorded

    tune(settings, workers=2, n_trials=4, retrain=False)
    resumed = open_study(settings, resume=False).trials
    assert [t.state for t in resumed[:3]] == [TrialState.COMPLETE, TrialState.FAIL, resumed[2].state]
    assert resumed[2].params == kept[1].params and resumed[2].user_attrs["judged_against"] == []
    # Trial 3 was asked once trial 0 was told, trial 4 once the retry was: as in a study never killed.
    assert resumed[3].user_attrs["judged_against"] == [0] and resumed[4].user_attrs["judged_against"] == [0, 2]

    fresh = settings_in(own_lake, **VIEW_MATTERS, study="fresh")
    tune(fresh, workers=2, n_trials=4, retrain=False)
    uninterrupted = open_study(fresh, resume=False).trials
    retried = [resumed[0], *resumed[2:]]
    assert [t.params for t in uninterrupted] == [t.params for t in retried]
    assert [(t.state, t.value) for t in uninterrupted] == [(t.state, t.value) for t in retried]


@pytest.mark.filterwarnings("ignore:Fixed parameter gbm_weight with value 0.0 is out of range")  # trial 0: as configured
def test_the_members_weight_is_chosen_like_any_parameter_and_its_trials_train_the_member(own_lake: Path):
    """Issue 18's honest selection: the LightGBM member's weight is a dimension of the study, scored on
    the validation periods like any other; a trial with the member forecasts differently from the
    configured DeepAR alone (trial 0), and its run records the weight it was trained with."""
    member_space = {"gbm_weight": {"low": 0.5, "high": 1.0, "step": 0.5}}
    settings = settings_in(own_lake, validation=[ONE_ORIGIN], space=member_space)
    tune(settings, n_trials=2, retrain=False)

    trials = open_study(settings, resume=False).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].params == {"gbm_weight": 0.0} and trials[1].params["gbm_weight"] in (0.5, 1.0)
    assert trials[1].value != trials[0].value
    recorded = tune_runs(settings)
    weights = {
        json.loads(tags)["trial"]: json.loads(params).get("gbm_weight", 0.0)
        for tags, params in zip(recorded["tags"], recorded["params"], strict=True)
    }
    assert weights == {"0": 0.0, "1": trials[1].params["gbm_weight"]}


class LastFirst(InProcess):
    """Trials run in this process, the one started last finishing first."""

    def _first_done(self, pending: list) -> object:
        return pending[-1]


def test_the_study_does_not_depend_on_which_trial_finishes_first(own_lake: Path):
    in_order = settings_in(own_lake, **VIEW_MATTERS)
    tune(in_order, workers=2, n_trials=4, retrain=False)
    reversed_ = settings_in(own_lake, **VIEW_MATTERS, study="reversed")
    tune(reversed_, fanout=LastFirst(), workers=2, n_trials=4, retrain=False)

    first, second = (open_study(s, resume=False).trials for s in (in_order, reversed_))
    assert [t.datetime_complete for t in second] != sorted(t.datetime_complete for t in second)  # told out of order
    assert [(t.params, t.state, t.value) for t in first] == [(t.params, t.state, t.value) for t in second]
    assert [t.user_attrs["judged_against"] for t in second] == [[], [], [0], [0, 1]]


def test_a_trial_worse_than_the_median_at_its_first_origin_is_pruned(own_lake: Path):
    settings = settings_in(own_lake, pruner_startup_trials=1, pruner_warmup_origins=0)
    study = open_study(settings)
    excellent = optuna.trial.create_trial(  # as if an earlier trial had scored 0.001 at each origin
        params={"hidden_size": 8, "embedding_dimension": 3, "learning_rate": 1e-3},
        distributions=distributions(settings.tune.space),
        value=0.001,
        intermediate_values={0: 0.001, 1: 0.001},
    )
    study.add_trial(excellent)
    tune(settings, n_trials=2, retrain=False)

    ran = [t for t in open_study(settings, resume=False).trials if t.value != excellent.value]
    assert len(ran) == 1 and ran[0].user_attrs["configured"]  # a new study runs the configured model first
    pruned = ran[0]
    assert pruned.state == TrialState.PRUNED
    assert list(pruned.intermediate_values) == [0]  # stopped after its first origin
    run = tune_runs(settings).iloc[0]
    assert json.loads(run["tags"])["state"] == "pruned" and run["metric_origins"] == 1


def test_a_backtest_on_a_two_worker_cluster_equals_the_serial_one(own_lake, prefect_env):
    settings = settings_in(own_lake)
    start, end = pd.Timestamp("2019-02-04").date(), pd.Timestamp("2019-02-19").date()
    serial = run_configured_backtest(settings, start, end, retrain_every=2)

    config = str(own_lake / "spotcast.toml")
    spotcast(
        "backtest", "--config", config, "--start", "2019-02-04", "--end", "2019-02-19",
        "--retrain-every", "2", "--workers", "2", env=prefect_env,
    )
    stored = pd.read_parquet(Path(settings.lake_root, "backtests", "forecasts"))
    stored = stored.astype({"model": str, "period": str})
    columns = list(serial.forecasts.columns)
    key = ["model", "zone", "issued_at", "delivery_hour"]
    cluster = stored[columns].sort_values(key).reset_index(drop=True)
    expected = serial.forecasts.sort_values(key).reset_index(drop=True)
    # Two fits, fanned out too; the first fit's two origins in two tasks, each making its own
    # calibration forecasts (the same values as the serial run's shared track record).
    assert len(serial.training_origins) == 2 and len(serial.origins) == 3
    # Equal up to the float32 rounding of the paths: torch's CPU kernels may round a sample's last
    # bit differently in another process (memory alignment, instruction set), which moves an hourly
    # mean by ~1e-9 of itself; a different draw, model or calibration moves it by far more.
    pd.testing.assert_frame_equal(cluster, expected, check_dtype=False, check_exact=False, rtol=1e-6, atol=1e-4)
