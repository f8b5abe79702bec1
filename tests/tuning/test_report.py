"""What `spotcast tune --show` prints of a study, on an in-memory Optuna study of told trials (the
report reads only the study: no model is needed)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from forecasting.tuning.report import IMPORTANCE_MIN_TRIALS, IMPORTANCE_PNG, render, write_plots


def study_of(count: int) -> optuna.Study:
    """Trials whose CRPS depends on the learning rate only: the importances must say so."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=1))
    for number in range(count):
        trial = study.ask(
            {
                "learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                "dropout_rate": optuna.distributions.FloatDistribution(0.05, 0.2),
            }
        )
        trial.set_user_attr("configured", number == 0)
        study.tell(trial, 3.0 + 1000 * trial.params["learning_rate"])
    return study


def test_importances_are_shown_once_enough_trials_completed(tmp_path: Path) -> None:
    shown = render(study_of(IMPORTANCE_MIN_TRIALS))

    lines = shown.splitlines()
    ranked = lines[lines.index("parameter importances (fANOVA):") + 1 :]
    assert ranked[0].split()[0] == "learning_rate" and float(ranked[0].split()[1]) > 0.8
    assert (tmp_path / IMPORTANCE_PNG) in write_plots(study_of(IMPORTANCE_MIN_TRIALS), tmp_path)


@pytest.mark.parametrize("count", [2, IMPORTANCE_MIN_TRIALS - 1])
def test_fewer_trials_show_no_importances_and_say_how_many_are_needed(tmp_path: Path, count: int) -> None:
    shown = render(study_of(count))

    assert "parameter importances (fANOVA)" not in shown
    assert f"parameter importances: from {IMPORTANCE_MIN_TRIALS} complete trials ({count} so far)" in shown
    assert "configured model (trial 0): CRPS" in shown
    assert (tmp_path / IMPORTANCE_PNG) not in write_plots(study_of(count), tmp_path)
