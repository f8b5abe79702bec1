"""How a backtest splits its work for a fan-out: runs of consecutive origins per fit."""

import pandas as pd

from forecasting.evaluation.backtest import origin_jobs


def test_the_origins_of_each_fit_go_in_runs_of_consecutive_origins_at_most_one_per_task():
    origins = pd.date_range("2019-01-07 11:00", periods=5, freq="7D", tz="UTC")
    fits = [{"model": "fit at 1st"}, {"model": "fit at 4th"}]
    jobs = origin_jobs(origins, [True, False, False, True, False], fits, tasks=2)
    assert [(job.fitted["model"], len(job.origins)) for job in jobs] == [
        ("fit at 1st", 2),
        ("fit at 1st", 1),
        ("fit at 4th", 1),
        ("fit at 4th", 1),
    ]
    assert [o for job in jobs for o in job.origins] == list(origins)
