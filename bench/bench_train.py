"""Benchmark of the forecasting core: training time of the CONFIGURED DeepARPipeline ([model.params]
of configs/spotcast.toml) on the five bundled zones, and forecast time of one issue (all zones) the
way the daily run pays it: load the artifact, re-forecast the 16 calibration issues, forecast. Prints
medians over the repeats.

    .venv/bin/python bench/bench_train.py [--train-repeats 1] [--forecast-repeats 5]

Caveat: numbers are for THIS machine (printed first: CPU cores, torch threads, GPU). Training time
grows with the horizon (672 steps), context, lags and epochs × batches; on a shared machine, other
processes inflate it.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from forecasting.config import load_settings
from forecasting.feeds.replay import ReplayFeed
from forecasting.jobs.train import build_pipeline
from forecasting.model.pipeline import DeepARPipeline
from forecasting.publication import known_at

TRAIN_END = pd.Timestamp("2023-05-01", tz="UTC")
ISSUED = pd.Timestamp("2023-05-15 12:00", tz="UTC")


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"cpu cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, gpu {gpu}"


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-repeats", type=int, default=1)
    parser.add_argument("--forecast-repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    settings = load_settings()
    history = ReplayFeed.from_settings(settings).history
    training = known_at(history, TRAIN_END)
    print(f"machine: {machine()}")
    print(f"training rows: {len(training)}, params: {build_pipeline(settings).get_params()}")

    train_times = []
    for _ in range(args.train_repeats):
        seconds, pipeline = timed(lambda: build_pipeline(settings).fit(training))
        train_times.append(seconds)
    with tempfile.TemporaryDirectory() as folder:
        artifact = pipeline.save(Path(folder) / "model")
        forecast_times = [
            timed(lambda: DeepARPipeline.load(artifact).predict(history, ISSUED))[0]
            for _ in range(args.forecast_repeats)
        ]
    print(f"train    median {statistics.median(train_times):7.1f} s over {len(train_times)} run(s)")
    print(f"forecast median {statistics.median(forecast_times):7.1f} s over {len(forecast_times)} run(s) "
          "(load + calibration + forecast, as each daily run)")
    print("(this machine only; compare numbers measured on the same machine)")


if __name__ == "__main__":
    main()
