"""Tune job: run the configured Optuna study on the lake's history (each validation fit sees only
what was published before its origin), record every trial as a model run (trigger=tune), draw the
study's plots, and retrain the best trial's parameters with the configured ensemble: that model
enters through the champion/challenger rule of `train` (promoted only if it beats the champion)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import optuna
import pandas as pd

from forecasting.config import Settings
from forecasting.fanout import Fanout, in_process
from forecasting.jobs.backtest import model_history
from forecasting.jobs.ingest import resolve_as_of
from forecasting.jobs.train import TrainResult, train
from forecasting.lake.files import LakeFS
from forecasting.model import registry
from forecasting.tuning.report import render, write_plots
from forecasting.tuning.study import open_study, optimize
from forecasting.tuning.trial import TrialOutcome

log = logging.getLogger("spotcast.tune")

TRIGGER, BEST_TRIGGER = "tune", "tune-best"


@dataclass(frozen=True)
class TuneResult:
    study: str
    summary: str  # best trials and importances (what `tune --show` prints)
    plots: list[str]  # where the PNG files went (in the lake)
    best_params: dict[str, object] | None
    retrained: TrainResult | None


def reports_folder(lake: LakeFS, study: str) -> str:
    return lake.path("reports", "tune", study)


def tune(
    settings: Settings,
    fanout: Fanout = in_process,
    workers: int = 1,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    retrain: bool = True,
    as_of: pd.Timestamp | None = None,
) -> TuneResult:
    """Run (or resume) the study up to `n_trials` told trials ([tune] n_trials by default), `workers`
    trials at a time on `fanout`."""
    lake = LakeFS.of(settings)
    history = model_history(settings)
    study = open_study(settings)

    def record(trial: optuna.trial.FrozenTrial, outcome: TrialOutcome) -> None:
        record_trial(lake, settings, study.study_name, trial, outcome)

    optimize(settings, study, history, fanout, workers, n_trials or settings.tune.n_trials, timeout_s, record)
    plots = save_plots(lake, study, settings.tune.seed)
    summary = render(study, settings.tune.seed)
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return TuneResult(study.study_name, summary, plots, None, None)
    best = study.best_trial
    retrained = retrain_best(settings, study.study_name, best, as_of) if retrain else None
    return TuneResult(study.study_name, summary, plots, dict(best.params), retrained)


def record_trial(
    lake: LakeFS, settings: Settings, study: str, trial: optuna.trial.FrozenTrial, outcome: TrialOutcome
) -> str | None:
    """The trial as a model run: its last validation fit, params, metrics, tags trigger/study/trial."""
    if outcome.model is None:  # failed before anything was fitted
        log.warning("trial %d: %s (not recorded: nothing was fitted)", trial.number, outcome.error)
        return None
    tags = {"trigger": TRIGGER, "study": study, "trial": str(trial.number), "state": trial.state.name.lower()}
    metrics = {**outcome.metrics, "origins": float(len(outcome.curve))}
    return registry.record_run(lake, settings, outcome.model, None, metrics, tags, outcome.seconds, outcome.as_of)


def save_plots(lake: LakeFS, study: optuna.Study, seed: int) -> list[str]:
    """Optuna's history and importance plots into the lake's reports area."""
    folder = reports_folder(lake, study.study_name)
    with lake.staged(folder) as local:
        written = write_plots(study, local, seed)
    return [f"{folder}/{p.name}" for p in written]


def retrain_best(
    settings: Settings, study: str, best: optuna.trial.FrozenTrial, as_of: pd.Timestamp | None
) -> TrainResult:
    """The best trial's parameters over [model.params] (the configured ensemble), trained on what was
    published by `as_of` and promoted only if it beats the champion (see `train`)."""
    params = {**settings.model.params, **best.params}
    tuned = settings.model_copy(update={"model": settings.model.model_copy(update={"params": params})})
    log.info("retraining trial %d (mean validation CRPS %.3f): %s", best.number, best.value, best.params)
    tags = {"trigger": BEST_TRIGGER, "study": study, "trial": str(best.number)}
    return train(tuned, resolve_as_of(settings, as_of), tags=tags)
