"""[tune] in the configuration: the search space as Optuna distributions, and clear errors."""

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from forecasting.config import ConfigError, load_settings
from forecasting.tuning.study import ask_next, distributions, sampler_of


def test_the_shipped_space_is_the_designs_plus_what_matters_here():
    space = distributions(load_settings().tune.space)
    assert space["num_layers"] == IntDistribution(1, 4)
    assert space["dropout_rate"] == FloatDistribution(0.05, 0.2)
    assert space["embedding_dimension"] == IntDistribution(5, 50)
    assert space["context_length"] == IntDistribution(168, 672, step=168)  # whole weeks
    assert space["learning_rate"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert {"hidden_size", "max_epochs", "n_components", "calibration_weeks"} <= set(space)
    assert space["gbm_weight"] == FloatDistribution(0.0, 1.0, step=0.25)  # the member's weight, 0 = none


def test_the_validation_periods_are_neither_report_period():
    periods = load_settings().tune.validation
    assert [(p.start.isoformat(), p.end.isoformat()) for p in periods] == [
        ("2018-01-01", "2019-01-01"),
        ("2021-07-01", "2022-01-01"),
    ]


def test_a_parameter_the_model_does_not_have_is_named():
    settings = load_settings(tune={"space": {"num_layer": {"low": 1, "high": 4}}})
    with pytest.raises(ConfigError, match=r"\['num_layer'\] are not tunable"):
        distributions(settings.tune.space)


def test_a_range_whose_high_is_below_its_low_is_refused():
    with pytest.raises(ConfigError, match=r"tune.space.hidden_size.high = 8: .*below low 16"):
        load_settings(tune={"space": {"hidden_size": {"low": 16, "high": 8}}})


def _next_learning_rate(sampler: optuna.samplers.BaseSampler, finished: int) -> float:
    """The learning rate `sampler` suggests after `finished` told trials whose CRPS grows with it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True)}
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(finished):
        trial = study.ask(space)
        study.tell(trial, 1000 * trial.params["learning_rate"])
    study.sampler = sampler
    return study.ask(space).params["learning_rate"]


@pytest.mark.parametrize("startup", [3, 6])
def test_tpe_models_the_finished_trials_once_the_configured_startup_count_is_reached(startup: int):
    settings = load_settings(tune={"seed": 5, "sampler_startup_trials": startup})
    position = startup - 1
    random_draw = optuna.samplers.RandomSampler(seed=settings.tune.seed + position)

    before = _next_learning_rate(sampler_of(settings, position), finished=startup - 1)
    assert before == _next_learning_rate(random_draw, finished=startup - 1)

    position = startup
    random_draw = optuna.samplers.RandomSampler(seed=settings.tune.seed + position)
    after = _next_learning_rate(sampler_of(settings, position), finished=startup)
    assert after != _next_learning_rate(random_draw, finished=startup)


def test_the_sampler_starts_modelling_after_optunas_default_unless_configured():
    assert load_settings().tune.sampler_startup_trials == 10


def test_a_new_trial_sees_the_trials_a_lag_of_workers_times_lag_per_worker_back():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = load_settings(
        tune={"space": {"dropout_rate": {"low": 0.05, "high": 0.2}}, "lag_per_worker": 2}
    )
    space = distributions(settings.tune.space)
    study = optuna.create_study(direction="minimize")  # in memory: only the asking is tested
    trials = [ask_next(settings, study, space, workers=2) for _ in range(4)]  # lag 4: all start at once
    for trial in trials[1:]:
        study.tell(trial, 1.0)

    assert ask_next(settings, study, space, workers=2) is None  # position 4 must see trial 0, still running
    study.tell(trials[0], 2.0)
    fifth, sixth = (ask_next(settings, study, space, workers=2) for _ in range(2))
    seen = [t.user_attrs["judged_against"] for t in study.get_trials()]
    assert seen == [[], [], [], [], [0], [0, 1]]
    assert (fifth.user_attrs["position"], sixth.user_attrs["position"]) == (4, 5)
