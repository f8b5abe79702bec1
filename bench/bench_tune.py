"""Cost of tuning and of the cluster backtest on this machine: trials per hour, and the wall time of
one rolling backtest with 1 and with N Dask workers (their ratio, measured in the same run).

    .venv/bin/python bench/bench_tune.py [--zones NO1 … NO5] [--trials 4] [--workers 1 2]
                                         [--validation 2018-01-01 2018-03-01] [--backtest 2019-01-07 2019-03-04]
                                         [--retrain-every 4] [--set PARAM=VALUE ...] [--tiny]

Trials: a fresh study (journal in a temporary lake) of --trials trials per worker count, [tune]
space and [tune.params] of configs/spotcast.toml, validation origins in --validation. Backtest: the
configured model (or --set) over the --backtest origins, refitted every --retrain-every origins, through
the same fan-out as `spotcast backtest --workers N`. --tiny runs a seconds-sized model (a smoke test
of the script, not a measurement).

Caveat: on a shared machine other processes inflate the times; compare numbers measured together.
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pandas as pd
from measure import machine

from flows.defaults import apply_prefect_defaults

apply_prefect_defaults()  # before Prefect loads, as the spotcast command does

from prefect import flow  # noqa: E402

from flows.cluster import cluster_size, current_fanout, run_on_cluster  # noqa: E402
from forecasting.config import Settings, load_settings  # noqa: E402
from forecasting.evaluation.backtest import run_backtest  # noqa: E402
from forecasting.feeds.replay import ReplayFeed  # noqa: E402
from forecasting.jobs.train import build_pipeline, forecaster_of  # noqa: E402
from forecasting.tuning.study import open_study, optimize  # noqa: E402

TINY_SPACE = {"hidden_size": {"low": 4, "high": 8}, "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}


def settings_for(args: argparse.Namespace, lake: Path, study: str) -> Settings:
    base = load_settings()
    params = {**base.model.params, **args.set}
    tune = base.tune.model_dump()
    tune.update(study=study, validation=[{"start": args.validation[0], "end": args.validation[1]}], storage=None)
    if args.tiny:
        from spotcast_testing import TINY_PARAMS

        params = {**TINY_PARAMS, **args.set}
        tune.update(space=TINY_SPACE)
    zones = [z.model_dump() for z in base.zones if z.name in args.zones]
    return load_settings(lake_root=str(lake), zones=zones, model={"params": params}, tune=tune)


def history_of(settings: Settings) -> pd.DataFrame:
    history = ReplayFeed.from_settings(settings).history
    return history[history["zone"].isin(settings.zone_names)]


@flow(name="bench-tune", validate_parameters=False)
def trials_flow(settings: Settings, trials: int) -> float:
    """Seconds for `trials` trials of a fresh study, as many at once as the cluster has workers."""
    history = history_of(settings)
    began = time.perf_counter()
    optimize(settings, open_study(settings), history, current_fanout(), cluster_size(), trials)
    return time.perf_counter() - began


@flow(name="bench-backtest", validate_parameters=False)
def backtest_flow(settings: Settings, start: str, end: str, retrain_every: int) -> float:
    history = history_of(settings)
    timezones = settings.zone_timezones
    began = time.perf_counter()
    run_backtest(
        history, lambda: forecaster_of(settings, build_pipeline(settings)), start, end, timezones=timezones,
        retrain_every=retrain_every, model_name="deepar", fanout=current_fanout(), origin_tasks=cluster_size(),
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zones", nargs="+", default=["NO1", "NO2", "NO3", "NO4", "NO5"])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--validation", nargs=2, default=["2018-01-01", "2018-03-01"], metavar=("START", "END"))
    parser.add_argument("--backtest", nargs=2, default=["2019-01-07", "2019-03-04"], metavar=("START", "END"))
    parser.add_argument("--retrain-every", type=int, default=4)
    parser.add_argument("--set", nargs="*", default=[], metavar="PARAM=VALUE")
    parser.add_argument("--tiny", action="store_true", help="a seconds-sized model: checks the script")
    args = parser.parse_args()
    args.set = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    logging.basicConfig(level=logging.WARNING)

    rows = []
    with tempfile.TemporaryDirectory(prefix="spotcast-bench-tune-") as tmp:
        for workers in args.workers:
            settings = settings_for(args, Path(tmp) / f"lake-{workers}", f"bench-{workers}")
            trial_s = run_on_cluster(trials_flow, workers, None, settings, args.trials)
            backtest_s = run_on_cluster(backtest_flow, workers, None, settings, *args.backtest, args.retrain_every)
            rows.append({"workers": workers, "trials": args.trials, "trial_wall_s": trial_s,
                         "trials_per_hour": 3600 * args.trials / trial_s, "backtest_wall_s": backtest_s})
    table = pd.DataFrame(rows)
    table["backtest_speedup"] = table["backtest_wall_s"].iloc[0] / table["backtest_wall_s"]
    table["trials_speedup"] = table["trials_per_hour"] / table["trials_per_hour"].iloc[0]
    origins = len(pd.date_range(*args.backtest, freq="W-MON", inclusive="left"))
    print(f"zones {' '.join(args.zones)}; {args.trials} trials on {args.validation[0]}…{args.validation[1]};"
          f" backtest {origins} origins {args.backtest[0]}…{args.backtest[1]}, refit every {args.retrain_every}")
    print(f"machine: {machine()}{' (--tiny: not a measurement)' if args.tiny else ''}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
