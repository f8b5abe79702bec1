"""One trial of the study: a rolling weekly backtest of one parameter set on the validation periods.

A trial is a pure function of its `TrialSpec` and the history, so it runs the same in this process or
on a cluster worker, which needs no access to the study's storage: the spec carries a snapshot of the
study's finished trials, and the pruning rule (Optuna's pruner) is applied against that snapshot in
an in-memory study. Trials asked together are judged against the same snapshot, so the outcome does
not depend on which of them finished first (same seed, same study).

Per validation period the model is fitted once, at the first origin, on what was published by then
(like the report backtest); every origin is forecast from what was published by its issue, next to
the seasonal naive (for rMAE). The intermediate value after each origin is the mean CRPS of the
origins so far; the objective is that mean over every origin.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import optuna
import pandas as pd

from forecasting import progress
from forecasting.clock import weekly_origins
from forecasting.errors import ConfigError, SpotcastError
from forecasting.evaluation.backtest import OriginJob, fit_forecasters, forecast_origins
from forecasting.evaluation.baselines import SEASONAL_NAIVE, SeasonalNaive
from forecasting.evaluation.metrics import ALL, HORIZON_WEEK, MODEL, score
from forecasting.model.forecaster import CalibratedForecaster
from forecasting.model.pipeline import DeepARPipeline
from forecasting.schema import PRICE, SERIES_COL

log = logging.getLogger("spotcast.tune")

CANDIDATE = "candidate"
# Recorded per trial (registry metrics, Optuna user attributes): the names of `score`'s columns.
METRICS = ("crps", "rmse", "rmae", "mae", "wql", "coverage_10_90", "width_10_90")
# What a parameter set that cannot be trained or scored raises: the trial fails, the study goes on.
# The project's own errors (a period without the data it needs), and numeric failures: numpy's
# FloatingPointError, and a fit that diverges. A diverging fit's loss turns the network's weights
# into NaN or inf, and the next StudentT it makes (with its Chi2) fails torch's argument check
# (`Distribution.__init__`, on while training) with a ValueError of DIVERGED_FIT's wording. Any
# other ValueError or RuntimeError is a bug, and stops the study with its traceback.
TRIAL_ERRORS = (SpotcastError, FloatingPointError)
DIVERGED_FIT = "Expected parameter "


def diverged(exc: ValueError) -> bool:
    """Whether `exc` is torch's refusal of a distribution made from a diverged fit's NaN or inf
    outputs (also when it comes back from a training process: its message travels with it)."""
    return str(exc).startswith(DIVERGED_FIT)


@dataclass(frozen=True)
class TrialSpec:
    number: int
    params: dict[str, Any]  # DeepARPipeline parameters: fixed ones and the sampled ones
    periods: tuple[tuple[date, date], ...]
    timezones: dict[str, str]
    origin_timezone: str
    threads: int  # torch threads of this trial
    pruner: optuna.pruners.BasePruner
    finished: tuple[optuna.trial.FrozenTrial, ...] = ()  # the study's finished trials when asked


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    curve: list[float] = field(default_factory=list)  # mean CRPS after each origin
    pruned: bool = False
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    model: DeepARPipeline | None = None  # the last fitted model (recorded in the registry)
    as_of: pd.Timestamp | None = None  # the last fit's training origin
    seconds: float = 0.0

    @property
    def value(self) -> float | None:
        return self.curve[-1] if self.curve and self.error is None else None


class PruneJudge:
    """Optuna's pruner applied to one running trial against a snapshot of finished trials."""

    def __init__(self, pruner: optuna.pruners.BasePruner, finished: tuple[optuna.trial.FrozenTrial, ...]) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="minimize", pruner=pruner)  # in memory
        study.add_trials(finished)
        self.trial = study.ask()

    def should_prune(self, step: int, value: float) -> bool:
        self.trial.report(value, step)
        return self.trial.should_prune()


def run_trial(history: pd.DataFrame, spec: TrialSpec) -> TrialOutcome:
    """Fit and forecast the spec's parameters over the validation periods, stopping early when the
    pruner says so; errors of the parameter set (a diverging fit) fail the trial, not the study."""
    import torch  # only where a trial runs

    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    began = time.perf_counter()
    try:
        outcome = _backtest(history, spec)
    except (*TRIAL_ERRORS, ValueError) as exc:
        if isinstance(exc, ValueError) and not diverged(exc):
            raise
        log.warning("trial %d failed: %s", spec.number, exc)
        return TrialOutcome(spec.number, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)  # a trial run in-process leaves the caller's setting alone
    return replace(outcome, seconds=time.perf_counter() - began)


def _backtest(history: pd.DataFrame, spec: TrialSpec) -> TrialOutcome:
    """The trial's rolling weekly backtest over its validation periods (see the module docstring),
    pruned as the judge says."""
    judge = PruneJudge(spec.pruner, spec.finished)
    factories = {
        CANDIDATE: lambda: CalibratedForecaster(
            DeepARPipeline(zones=spec.timezones, **spec.params), clock=spec.origin_timezone
        ),
        SEASONAL_NAIVE: lambda: SeasonalNaive(spec.timezones),
    }
    actuals = history[history[SERIES_COL] == PRICE]
    origins = [weekly_origins(start, end, timezone=spec.origin_timezone) for start, end in spec.periods]
    frames: list[pd.DataFrame] = []
    crps: list[float] = []
    curve: list[float] = []
    model, as_of = None, None
    with progress.task(f"trial {spec.number} origins", total=sum(map(len, origins))) as step:
        for period in origins:
            if period.empty:
                continue
            fitted = fit_forecasters(history, (factories, period[0]))
            model, as_of = fitted[CANDIDATE].pipeline, period[0]
            for origin in period:
                frame = forecast_origins(history, OriginJob(fitted, (origin,))).forecasts
                frames.append(frame)
                crps.append(_overall(score(frame, actuals, model_col=MODEL))["crps"])
                curve.append(float(np.mean(crps)))
                step.advance(detail=f"{origin:%Y-%m-%d} mean CRPS {curve[-1]:.3f}")
                if judge.should_prune(len(curve) - 1, curve[-1]):
                    log.info("trial %d pruned after %d origins (mean CRPS %.3f)", spec.number, len(curve), curve[-1])
                    return _outcome(spec, frames, actuals, curve, model, as_of, pruned=True)
    if not curve:
        raise ConfigError(f"[tune.validation]: no weekly origins in the validation periods {spec.periods}")
    return _outcome(spec, frames, actuals, curve, model, as_of, pruned=False)


def _overall(table: pd.DataFrame) -> dict[str, float]:
    row = table[(table[MODEL] == CANDIDATE) & (table[HORIZON_WEEK] == ALL)].iloc[0]
    return {name: float(row[name]) for name in METRICS}


def _outcome(
    spec: TrialSpec,
    frames: list[pd.DataFrame],
    actuals: pd.DataFrame,
    curve: list[float],
    model: DeepARPipeline | None,
    as_of: pd.Timestamp | None,
    pruned: bool,
) -> TrialOutcome:
    """Metrics over every origin forecast (the objective: the mean CRPS per origin)."""
    metrics = _overall(score(pd.concat(frames, ignore_index=True), actuals, model_col=MODEL))
    metrics["crps"] = curve[-1]
    return TrialOutcome(spec.number, curve, pruned, None, metrics, model, as_of)
