"""What a study found: its best trials, parameter importances, and Optuna's history and importance
plots as PNG files (<lake>/reports/tune/<study>/)."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from forecasting.tuning.trial import METRICS

HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importance.png"


def best_trials(study: optuna.Study, top: int = 10) -> pd.DataFrame:
    """The `top` complete trials by objective (mean CRPS per origin), with their metrics and params."""
    complete = sorted(_complete(study), key=lambda t: t.value)
    rows = [
        {
            "trial": t.number,
            "crps": t.value,
            **{name: t.user_attrs.get(name) for name in METRICS if name != "crps"},
            "seconds": t.user_attrs.get("seconds"),
            **t.params,
        }
        for t in complete[:top]
    ]
    return pd.DataFrame(rows)


# fANOVA fits a random forest of the objective over the parameters: from fewer trials than about
# one per parameter its ranking is noise, so none is shown before this many.
IMPORTANCE_MIN_TRIALS = 10


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _enough_for_importances(study: optuna.Study) -> bool:
    return len(_complete(study)) >= IMPORTANCE_MIN_TRIALS


def importances(study: optuna.Study, seed: int = 0) -> dict[str, float]:
    """fANOVA importance of each parameter for the objective ({} before IMPORTANCE_MIN_TRIALS
    complete trials)."""
    if not _enough_for_importances(study):
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return optuna.importance.get_param_importances(study, evaluator=evaluator)


def against_configured(study: optuna.Study) -> list[str]:
    """The best trial next to the configured model's trial (the study's first), when both completed."""
    complete = _complete(study)
    configured = [t for t in complete if t.user_attrs.get("configured")]
    if not configured:
        return []
    base, best = configured[0], min(complete, key=lambda t: t.value)
    change = best.value / base.value - 1
    return ["", f"configured model (trial {base.number}): CRPS {base.value:.4g}; best trial {best.number}: "
            f"{best.value:.4g} ({change:+.1%})"]


def counts(study: optuna.Study) -> dict[str, int]:
    states = pd.Series([t.state.name.lower() for t in study.get_trials(deepcopy=False)])
    return states.value_counts().to_dict()


def render(study: optuna.Study, seed: int = 0, top: int = 10) -> str:
    """The text `spotcast tune --show` prints."""
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts(study).items())) or "no trials"
    lines = [f"study {study.study_name}: {states}"]
    table = best_trials(study, top)
    if table.empty:
        return "\n".join([*lines, "no complete trial yet"])
    lines += ["", "best trials (objective: mean CRPS per validation origin):", table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    lines += against_configured(study)
    weights = importances(study, seed)
    if weights:
        lines += ["", "parameter importances (fANOVA):"]
        lines += [f"  {name:<22} {weight:.3f}" for name, weight in weights.items()]
    else:
        lines += ["", f"parameter importances: from {IMPORTANCE_MIN_TRIALS} complete trials ({len(_complete(study))} so far)"]
    return "\n".join(lines)


def write_plots(study: optuna.Study, folder: Path, seed: int = 0) -> list[Path]:
    """Optimisation history and (from IMPORTANCE_MIN_TRIALS complete trials) parameter importances
    as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    figures = {HISTORY_PNG: lambda: plots.plot_optimization_history(study)}
    if _enough_for_importances(study):  # the plot computes them: not twice
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        figures[IMPORTANCE_PNG] = lambda: plots.plot_param_importances(study, evaluator=evaluator)
    for name, draw in figures.items():
        with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = draw()
        axes.figure.tight_layout()
        axes.figure.savefig(folder / name, dpi=100)
        plt.close(axes.figure)
        written.append(folder / name)
    return written
