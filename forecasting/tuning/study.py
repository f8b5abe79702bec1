"""The study: where it is stored, how trials are asked and told, how an interrupted one resumes.

    <lake>/tuning/<study>.journal    Optuna's journal storage (a file lock guards concurrent writers),
                                     unless [tune] storage names an Optuna RDB URL (sqlite:///…,
                                     postgresql://…): the choice for a lake on an object store

Trials run in batches of the cluster's size: every trial of a batch is asked, they run at once
(`Fanout`), and each is told as soon as it is done. The TPE sampler of the k-th finished trial is
seeded with seed + k, and a trial is judged (pruned) against the trials finished when its batch was
asked, so the parameters suggested depend only on the seed and the trials finished before, not on
timing or on how often the study was interrupted: the same seed gives the same trials and the same
best trial. The first trial of a new study is the configured model, the baseline on the same
validation periods. A `tune` killed mid-batch keeps the batch's finished trials and leaves the others
RUNNING; the next `tune` marks those failed and runs their parameters again first, alone in their
batch and judged against the same trials as before, as an uninterrupted study would have. One
`tune` per study at a time.
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
from forecasting.evaluation.fanout import Fanout
from forecasting.lake.files import LakeFS
from forecasting.model.pipeline import DeepARPipeline
from forecasting.tuning.trial import TrialOutcome, TrialSpec, run_trial

log = logging.getLogger("spotcast.tune")

TUNING = "tuning"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
NOT_TUNABLE = ("zones", "covariates", "random_state", "n_jobs", "model_id")
JUDGED_AGAINST = "judged_against"  # user attribute: the finished trials a trial's pruning compared with


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
        raise ConfigError(
            f"the lake {settings.lake_root} is not a local folder: set [tune] storage to an Optuna RDB URL"
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
        retry = {"retry_of": trial.number, JUDGED_AGAINST: trial.user_attrs.get(JUDGED_AGAINST)}
        study.enqueue_trial(trial.params, user_attrs=retry)
    return study


def enqueue_configured(settings: Settings, study: optuna.Study) -> None:
    """A new study's first trial is the configured model (with [tune.params]): the baseline every
    later trial is compared with on the same periods. Its values are used even where they lie
    outside the space (Optuna logs a warning), so that it is exactly that model."""
    params = DeepARPipeline(**{**settings.model.params, **settings.tune.params}).get_params()
    study.enqueue_trial({name: params[name] for name in settings.tune.space}, user_attrs={"configured": True})


def sampler_of(settings: Settings, position: int) -> optuna.samplers.TPESampler:
    """The sampler that asks the study's `position`-th trial: seeded by position, so what it suggests
    depends on the seed and the trials finished before, not on when it runs."""
    return optuna.samplers.TPESampler(
        seed=settings.tune.seed + position, n_startup_trials=settings.tune.sampler_startup_trials
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


def retries_waiting(study: optuna.Study) -> int:
    """Interrupted trials queued to run again."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return sum("retry_of" in t.user_attrs for t in waiting)


def _spec(settings: Settings, study: optuna.Study, trial: optuna.Trial) -> TrialSpec:
    """What a worker needs to run `trial`, judged against the trials finished when it was first asked
    (a retry keeps its interrupted run's); that list is recorded on the trial."""
    judged_against = trial.user_attrs.get(JUDGED_AGAINST)
    if judged_against is None:
        judged_against = [t.number for t in finished(study)]
        trial.set_user_attr(JUDGED_AGAINST, judged_against)
    everything = study.get_trials(deepcopy=False)
    snapshot = tuple(everything[number] for number in judged_against)
    params = {**settings.model.params, **settings.tune.params, **trial.params}
    return TrialSpec(
        number=trial.number,
        params=params,
        periods=tuple((p.start, p.end) for p in settings.tune.validation),
        timezones={z.name: z.timezone for z in settings.zones},
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
    batch_size: int,
    n_trials: int,
    timeout_s: float | None = None,
    on_told: Callable[[optuna.trial.FrozenTrial, TrialOutcome], Any] | None = None,
) -> None:
    """Run trials until the study holds `n_trials` told (complete, pruned or failed) ones, in batches of
    `batch_size`; no new batch starts after `timeout_s`. `on_told` sees each trial once told."""
    space = distributions(settings.tune.space)
    began = time.monotonic()
    with progress.task(f"study {study.study_name}", total=n_trials) as step:
        step.advance(min(told(study), n_trials))
        while (done := told(study)) < n_trials:
            if timeout_s is not None and time.monotonic() - began > timeout_s:
                log.info("timeout after %d finished trials: run `spotcast tune` again to go on", done)
                return
            # Retries run alone: a new trial asked beside them would see fewer finished trials than
            # it would have in the uninterrupted study.
            size = min(retries_waiting(study) or batch_size, batch_size, n_trials - done)
            batch = []
            for position in range(size):
                study.sampler = sampler_of(settings, done + position)
                batch.append(study.ask(space))
            specs = [_spec(settings, study, trial) for trial in batch]

            def tell(index: int, outcome: TrialOutcome, batch: list[optuna.Trial] = batch) -> None:
                _tell(study, batch[index], outcome)
                log.info("%s", describe(study, outcome))
                if on_told is not None:
                    on_told(study.get_trials(deepcopy=False)[outcome.number], outcome)
                step.advance()

            fanout(run_trial, history, specs, f"trials {batch[0].number}–{batch[-1].number}", on_result=tell)
