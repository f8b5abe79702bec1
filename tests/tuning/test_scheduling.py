"""What each trial's sampler sees: by default the trials a lag of workers × lag_per_worker back (the
figures of docs/scaling.md), with [tune] constant_liar whatever has finished, the running trials as
liars."""

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from forecasting.config import Settings, load_settings
from forecasting.tuning import study as study_module
from forecasting.tuning.study import ask_next, distributions, sampler_of

DROPOUT = {"dropout_rate": {"low": 0.05, "high": 0.2}}


def results_seen(settings: Settings, workers: int, n_trials: int) -> list[int]:
    """For each of `n_trials` trials, how many results its sampler saw: `workers` trials at a time,
    each freed worker asking the next one, trials finishing in the order they started."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = distributions(settings.tune.space)
    study = optuna.create_study(direction="minimize")  # in memory: only the asking is tested
    running: list[optuna.Trial] = []
    seen: list[int] = []
    while len(seen) < n_trials:
        while len(running) < workers and len(seen) < n_trials:
            trial = ask_next(settings, study, space, workers)
            if trial is None:  # its turn has not come: a worker idles
                break
            seen.append(len(trial.user_attrs["judged_against"]))
            running.append(trial)
        study.tell(running.pop(0), 1.0)
    return seen


@pytest.mark.parametrize(("workers", "lag_per_worker"), [(3, 2), (4, 1)])
def test_the_trial_at_position_p_sees_the_results_of_positions_up_to_p_minus_the_lag(
    workers: int, lag_per_worker: int
):
    settings = load_settings(tune={"space": DROPOUT, "lag_per_worker": lag_per_worker})
    lag = workers * lag_per_worker

    seen = results_seen(settings, workers, n_trials=20)

    assert seen == [max(0, p - lag + 1) for p in range(20)]
    # So the sampler has seen k results from the (lag + k)-th trial on: lag + k - 1 trials before.
    assert seen.index(10) == lag + 10 - 1


def test_with_constant_liar_a_trial_sees_every_result_in_before_a_worker_freed_up():
    settings = load_settings(tune={"space": DROPOUT, "constant_liar": True})

    seen = results_seen(settings, workers=3, n_trials=20)

    assert seen == [max(0, p - 3 + 1) for p in range(20)]  # the lag is the workers, not twice them


def _suggested(settings: Settings, trials: list[optuna.trial.FrozenTrial]) -> float:
    space = {"dropout_rate": FloatDistribution(0.05, 0.2)}
    study = optuna.create_study(direction="minimize", sampler=sampler_of(settings, 3))
    study.add_trials(trials)
    return study.ask(space).params["dropout_rate"]


@pytest.mark.parametrize("constant_liar", [False, True])
def test_the_constant_liar_option_reaches_the_sampler(constant_liar: bool):
    settings = load_settings(tune={"constant_liar": constant_liar, "sampler_startup_trials": 2})
    space = {"dropout_rate": FloatDistribution(0.05, 0.2)}
    finished = [
        create_trial(params={"dropout_rate": x}, distributions=space, value=x) for x in (0.06, 0.1, 0.19)
    ]
    running = [  # where TPE would sample next: the best trial's neighbourhood
        create_trial(params={"dropout_rate": x}, distributions=space, state=TrialState.RUNNING)
        for x in (0.055, 0.06, 0.065, 0.07)
    ]

    moved = _suggested(settings, finished + running) != _suggested(settings, finished)

    assert moved == constant_liar  # running trials count (as bad ones) only for a constant liar


def test_a_constant_liar_asks_at_once_from_the_finished_trials_and_the_running_ones(
    monkeypatch: pytest.MonkeyPatch,
):
    """No wait for the trial a lag back, and the sampler sees what runs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampled_from: list[list[str]] = []

    def recording_sampler(settings: Settings, position: int) -> optuna.samplers.BaseSampler:
        sampler = sampler_of(settings, position)
        before_trial = sampler.before_trial

        def noting(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            others = study.get_trials(deepcopy=False)[:-1]  # the last one is being asked
            sampled_from.append([t.state.name for t in others])
            before_trial(study, trial)

        sampler.before_trial = noting
        return sampler

    monkeypatch.setattr(study_module, "sampler_of", recording_sampler)
    settings = load_settings(tune={"space": DROPOUT, "constant_liar": True, "lag_per_worker": 1})
    space = distributions(settings.tune.space)
    study = optuna.create_study(direction="minimize")
    first, second = (ask_next(settings, study, space, workers=1) for _ in range(2))  # no waiting
    study.tell(first, 1.0)

    third = ask_next(settings, study, space, workers=1)

    assert second is not None and third is not None
    assert third.user_attrs["judged_against"] == [first.number]  # the pruner's and TPE's finished trials
    assert sampled_from[-1] == ["COMPLETE", "RUNNING"]  # the second trial, still running, as a liar

    plain = settings.model_copy(update={"tune": settings.tune.model_copy(update={"constant_liar": False})})
    assert ask_next(plain, study, space, workers=1) is None  # without: the next one waits for those running
