"""The study: where it is stored, how trials are asked and told, how an interrupted one resumes.

    <lake>/tuning/<study>.journal    Optuna's journal storage (a file lock guards concurrent writers),
                                     unless [tune] storage names an Optuna RDB URL (sqlite:///…,
                                     postgresql://…): the choice for a lake on an object store

Trials run as workers free up, each told as soon as it is done, yet the study does not depend on
timing: the trial at position p (its place in the study's sequence) is asked once every trial at
positions ≤ p − lag is told (lag = workers × [tune] lag_per_worker), and TPE (seeded with seed + p)
and the pruner see exactly those trials, not whatever else has finished meanwhile. So the same seed,
configuration and worker count give the same trials and the same best trial, however the trials'
durations fall and however often the study is interrupted ([tune] constant_liar trades that for
sooner learning: a trial is asked as soon as a worker is free, from whatever has finished by then,
the running trials counted as bad). The first trial of a new study is the configured model, the
baseline on the same validation periods. A killed `tune` keeps its finished trials and leaves the
others RUNNING; the next `tune` marks those failed and runs their parameters again first, at their
old positions and judged against the same trials. One `tune` per study at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from forecasting import progress
from forecasting.config import ConfigError, ParamRange, Settings
from forecasting.fanout import Fanout
from forecasting.lake.files import LakeFS
from forecasting.model.pipeline import DeepARPipeline
from forecasting.tuning.trial import TrialOutcome, TrialSpec, run_trial

log = logging.getLogger("spotcast.tune")

TUNING = "tuning"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
NOT_TUNABLE = ("zones", "covariates", "random_state", "n_jobs", "model_id")
# User attributes of a trial: its place in the study's sequence (a retry keeps its first run's), and
# the finished trials TPE and the pruner saw for it.
POSITION, JUDGED_AGAINST = "position", "judged_against"


def distributions(space: dict[str, ParamRange]) -> dict[str, BaseDistribution]:
    """[tune.space] as Optuna distributions; names must be DeepARPipeline parameters."""
    tunable = set(DeepARPipeline().get_params()) - set(NOT_TUNABLE)
    unknown = sorted(set(space) - tunable)
    if unknown:
        raise ConfigError(f"[tune.space]: {unknown} are not tunable; tunable: {sorted(tunable)}")
    made: dict[str, BaseDistribution] = {}
    for name, bounds in space.items():
        try:
            if all(isinstance(v, int) for v in (bounds.low, bounds.high, bounds.step or 1)):
                made[name] = IntDistribution(
                    int(bounds.low), int(bounds.high), log=bounds.log, step=int(bounds.step or 1)
                )
            else:
                made[name] = FloatDistribution(bounds.low, bounds.high, log=bounds.log, step=bounds.step)
        except ValueError as exc:
            raise ConfigError(f"[tune.space] {name}: {exc}") from None
    return made


def journal_path(lake: LakeFS, study: str) -> str:
    return lake.path(TUNING, f"{study}.journal")


def storage_of(settings: Settings) -> optuna.storages.BaseStorage | str:
    """[tune] storage, else the journal file in the lake (which must then be a local folder)."""
    if settings.tune.storage:
        return settings.tune.storage
    lake = LakeFS.of(settings)
    if not lake.is_local:
        # Optuna's journal file needs a POSIX file lock, which no object store has.
        raise ConfigError(
            f"the lake {settings.lake_root} is not a local folder, so the study cannot be a journal file in "
            "it: set [tune] storage to an Optuna RDB URL (postgresql://… shared by hosts, or sqlite:////abs/"
            "path/study.db on one host)"
        )
    path = Path(journal_path(lake, settings.tune.study))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(settings: Settings, resume: bool = True) -> optuna.Study:
    """The configured study, created on first use; `resume`: trials a killed run left RUNNING are
    marked failed and their parameters queued to run again (a read-only look passes False)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=settings.tune.study,
        storage=storage_of(settings),
        direction="minimize",
        load_if_exists=True,
    )
    study.pruner = pruner_of(settings)
    if resume and not study.get_trials(deepcopy=False):
        enqueue_configured(settings, study)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if resume else []
    for trial in running:
        log.info("trial %d was interrupted: it runs again", trial.number)
        study.tell(trial.number, state=TrialState.FAIL)
        retry = {
            "retry_of": trial.number,
            POSITION: position_of(trial),
            JUDGED_AGAINST: trial.user_attrs.get(JUDGED_AGAINST),
        }
        study.enqueue_trial(trial.params, user_attrs=retry)
    return study


def enqueue_configured(settings: Settings, study: optuna.Study) -> None:
    """A new study's first trial is the configured model (with [tune.params]): the baseline every
    later trial is compared with on the same periods. Its values are used even where they lie
    outside the space (Optuna logs a warning), so that it is exactly that model."""
    params = DeepARPipeline(**{**settings.model.params, **settings.tune.params}).get_params()
    configured = {"configured": True, POSITION: 0}
    study.enqueue_trial({name: params[name] for name in settings.tune.space}, user_attrs=configured)


def sampler_of(settings: Settings, position: int) -> optuna.samplers.TPESampler:
    """The sampler that asks the study's `position`-th trial: seeded by position, so what it suggests
    depends on the seed and the trials finished before, not on when it runs."""
    return optuna.samplers.TPESampler(
        seed=settings.tune.seed + position,
        n_startup_trials=settings.tune.sampler_startup_trials,
        constant_liar=settings.tune.constant_liar,  # explicit: Optuna 4 and 5 default differently
    )


def pruner_of(settings: Settings) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=settings.tune.pruner_startup_trials,
        n_warmup_steps=settings.tune.pruner_warmup_origins,
    )


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Complete and pruned trials: what the pruner compares with."""
    return study.get_trials(deepcopy=False, states=FINISHED)


def told(study: optuna.Study) -> int:
    """Trials that count against n_trials: finished ones and those whose parameters failed (not the
    ones an interruption failed: they run again)."""
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return len(finished(study)) + sum("error" in t.user_attrs for t in failed)


def position_of(trial: optuna.trial.FrozenTrial) -> int:
    # A trial without one (added by hand, or from before positions were recorded): its number.
    return trial.user_attrs.get(POSITION, trial.number)


def _sees(trial: optuna.trial.FrozenTrial, position: int, lag: int) -> bool:
    """Whether the trial at `position` sees `trial`: one `lag` places before it or earlier; a trial
    without a recorded position was finished before any trial was asked by position."""
    return POSITION not in trial.user_attrs or trial.user_attrs[POSITION] <= position - lag


def _interrupted(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


def ask_next(
    settings: Settings, study: optuna.Study, space: dict[str, BaseDistribution], workers: int
) -> optuna.Trial | None:
    """The next trial to run, or None while its turn has not come (a trial it must see is still
    running). Queued trials (a new study's configured model, interrupted trials) first."""
    trials = study.get_trials(deepcopy=False)
    queued = [t for t in trials if t.state == TrialState.WAITING]
    counted = [t for t in trials if not _interrupted(t) and t.state != TrialState.WAITING]
    if queued:
        position = position_of(queued[0])
        judged_against = queued[0].user_attrs.get(JUDGED_AGAINST)
    else:
        position = max(map(position_of, counted), default=-1) + 1
        judged_against = None
    if settings.tune.constant_liar:  # whatever has finished by now: timing decides
        seen = [t for t in counted if t.state != TrialState.RUNNING]
    else:
        seen = [t for t in counted if _sees(t, position, workers * settings.tune.lag_per_worker)]
    if judged_against is None:  # a new trial, the configured one, or a retry from before this was recorded
        if any(t.state == TrialState.RUNNING for t in seen):
            return None
        judged_against = [t.number for t in seen if t.state in FINISHED]
    if not queued:
        liars = [t for t in counted if t.state == TrialState.RUNNING] if settings.tune.constant_liar else []
        params = _suggest(settings, [*(trials[number] for number in judged_against), *liars], position, space)
        study.enqueue_trial(params)
    trial = study.ask(space)  # the oldest queued trial: fixed parameters
    trial.set_user_attr(POSITION, position)
    trial.set_user_attr(JUDGED_AGAINST, judged_against)
    return trial


def _suggest(
    settings: Settings,
    seen: list[optuna.trial.FrozenTrial],
    position: int,
    space: dict[str, BaseDistribution],
) -> dict[str, Any]:
    """TPE's parameters for the trial at `position`, from the finished trials it may see (an in-memory
    copy of them), not from whatever else has finished by now; running ones seen ([tune]
    constant_liar) count as bad, so that TPE suggests elsewhere."""
    copy = optuna.create_study(direction="minimize", sampler=sampler_of(settings, position))
    copy.add_trials(seen)
    return copy.ask(space).params


def _spec(settings: Settings, study: optuna.Study, trial: optuna.Trial) -> TrialSpec:
    """What a worker needs to run `trial`: the pruner judges it against the trials TPE saw for it."""
    everything = study.get_trials(deepcopy=False)
    snapshot = tuple(everything[number] for number in trial.user_attrs[JUDGED_AGAINST])
    params = {**settings.model.params, **settings.tune.params, **trial.params}
    return TrialSpec(
        number=trial.number,
        params=params,
        periods=tuple((p.start, p.end) for p in settings.tune.validation),
        timezones=settings.zone_timezones,
        origin_timezone=settings.schedule.timezone,
        threads=settings.tune.trial_threads,
        pruner=study.pruner,
        finished=snapshot,
    )


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
    for step, value in enumerate(outcome.curve):
        trial.report(value, step)
    for name, value in outcome.metrics.items():
        trial.set_user_attr(name, value)
    trial.set_user_attr("seconds", outcome.seconds)
    if outcome.error:
        trial.set_user_attr("error", outcome.error)
        study.tell(trial, state=TrialState.FAIL)
    elif outcome.pruned:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, outcome.value)


def describe(study: optuna.Study, outcome: TrialOutcome) -> str:
    """One line on a told trial: its result next to the study's best."""
    took = f"{outcome.seconds / 60:.0f} min"
    if outcome.error:
        return f"trial {outcome.number} failed after {took}: {outcome.error}"
    if outcome.pruned:
        return (
            f"trial {outcome.number} pruned after {len(outcome.curve)} origins ({took}): "
            f"mean CRPS {outcome.curve[-1]:.3f}"
        )
    best = study.best_trial
    metrics = outcome.metrics
    return (
        f"trial {outcome.number}: mean CRPS {outcome.value:.3f}, rMAE {metrics['rmae']:.3f}, "
        f"cover {metrics['coverage_10_90']:.2f} ({took}); best so far trial {best.number}, {best.value:.3f}"
    )


def optimize(
    settings: Settings,
    study: optuna.Study,
    history: pd.DataFrame,
    fanout: Fanout,
    workers: int,
    n_trials: int,
    timeout_s: float | None = None,
    on_told: Callable[[optuna.trial.FrozenTrial, TrialOutcome], Any] | None = None,
) -> None:
    """Run trials, `workers` at a time, until the study holds `n_trials` told (complete, pruned or
    failed) ones; no new trial starts after `timeout_s`. `on_told` sees each trial once told."""
    space = distributions(settings.tune.space)
    began = time.monotonic()
    started: list[optuna.Trial] = []
    running: set[int] = set()
    with progress.task(f"study {study.study_name}", total=n_trials) as step:
        step.advance(min(told(study), n_trials))

        def next_trial() -> TrialSpec | None:
            timed_out = timeout_s is not None and time.monotonic() - began > timeout_s
            if told(study) + len(running) >= n_trials or timed_out:
                return None
            trial = ask_next(settings, study, space, workers)
            if trial is None:
                return None
            started.append(trial)
            running.add(trial.number)
            return _spec(settings, study, trial)

        def tell(index: int, outcome: TrialOutcome) -> None:
            trial = started[index]
            running.discard(trial.number)
            _tell(study, trial, outcome)
            log.info("%s", describe(study, outcome))
            if on_told is not None:
                on_told(study.get_trials(deepcopy=False)[trial.number], outcome)
            step.advance()

        fanout.stream(run_trial, history, next_trial, tell, workers, lambda _, spec: f"trial {spec.number}")
    if told(study) < n_trials:  # the stream ends early only when no trial may start after the timeout
        log.info("timeout after %d told trials: run `spotcast tune` again to go on", told(study))
