"""[tune] in the configuration: the search space as Optuna distributions, and clear errors."""

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from forecasting.config import ConfigError, load_settings
from forecasting.tuning.study import distributions


def test_the_shipped_space_is_the_designs_plus_what_matters_here():
    space = distributions(load_settings().tune.space)
    assert space["num_layers"] == IntDistribution(1, 4)
    assert space["dropout_rate"] == FloatDistribution(0.05, 0.2)
    assert space["embedding_dimension"] == IntDistribution(5, 50)
    assert space["context_length"] == IntDistribution(168, 672, step=168)  # whole weeks
    assert space["learning_rate"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert {"hidden_size", "max_epochs", "n_components", "calibration_weeks"} <= set(space)


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
