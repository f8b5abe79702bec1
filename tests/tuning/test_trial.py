"""Which errors of a trial fail only that trial (the study goes on) and which stop the study: the
backtest is replaced by one that raises, the error itself is real where it comes from torch."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
import torch

from forecasting.errors import MissingData
from forecasting.tuning import trial
from forecasting.tuning.trial import TrialSpec, run_trial

SPEC = TrialSpec(
    number=3,
    params={},
    periods=(),
    timezones={"NO1": "Europe/Oslo"},
    origin_timezone="Europe/Oslo",
    threads=1,
    pruner=optuna.pruners.NopPruner(),
)


def diverged_fit_error() -> ValueError:
    """What torch raises when a diverged network hands NaN parameters to GluonTS's StudentT."""
    try:
        torch.distributions.StudentT(df=torch.tensor([float("nan")]), validate_args=True)
    except ValueError as exc:
        return exc
    raise AssertionError("torch accepted a NaN degree of freedom")


def backtest_raising(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def backtest(history: pd.DataFrame, spec: TrialSpec) -> trial.TrialOutcome:
        raise error

    monkeypatch.setattr(trial, "_backtest", backtest)


@pytest.mark.parametrize(
    "error",
    [diverged_fit_error(), MissingData("no prices of NO1 published by then"), FloatingPointError("overflow")],
    ids=["diverged fit", "project error", "floating point"],
)
def test_a_parameter_set_that_cannot_be_trained_fails_its_trial_only(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    backtest_raising(monkeypatch, error)

    outcome = run_trial(pd.DataFrame(), SPEC)

    assert outcome.number == 3 and outcome.value is None
    assert outcome.error == f"{type(error).__name__}: {error}"


@pytest.mark.parametrize("error", [ValueError("bad shape"), RuntimeError("bug")], ids=["value", "runtime"])
def test_any_other_value_or_runtime_error_is_a_bug_and_stops_the_study(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    backtest_raising(monkeypatch, error)

    with pytest.raises(type(error), match=str(error)):
        run_trial(pd.DataFrame(), SPEC)
