"""Honest evaluation: metrics, seasonal-naive baselines and the rolling-origin backtest."""

from forecasting.clock import weekly_origins
from forecasting.evaluation.backtest import BacktestResult, backtest, run_backtest
from forecasting.evaluation.baselines import SeasonalNaive, SeasonalNaiveEmpirical
from forecasting.evaluation.metrics import score
from forecasting.evaluation.report import render_markdown

__all__ = [
    "BacktestResult",
    "SeasonalNaive",
    "SeasonalNaiveEmpirical",
    "backtest",
    "render_markdown",
    "run_backtest",
    "score",
    "weekly_origins",
]
