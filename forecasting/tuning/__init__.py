"""Hyperparameter search: an Optuna study whose trials are rolling weekly validation backtests."""
