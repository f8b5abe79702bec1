"""Benchmark of the forecasting core: training of the CONFIGURED DeepARPipeline ([model.params] of
configs/spotcast.toml) on the five bundled zones, then one issue's forecast (all zones) the two ways a
daily run pays it:

  cold   load the artifact, forecast the 16 calibration issues (nothing in the track record yet: the
         first forecast of a new model on this weekday), then the issue itself
  daily  load the artifact, read the 16 calibration forecasts from the track record, forecast the
         issue (the steady state: each day adds one issue)

    .venv/bin/python bench/bench_train.py [--train-repeats 1] [--forecast-repeats 3] [--set PARAM=VALUE]

Prints medians over the repeats and the peak RSS of each step (this process; and the largest worker
process, where the members train). Caveat: numbers are for THIS machine (printed first); on a shared
machine other processes inflate them.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import children_peak_mb, machine, param, peak_mb, reset_peak, timed

from forecasting.config import load_settings
from forecasting.feeds.replay import ReplayFeed
from forecasting.jobs.train import build_pipeline
from forecasting.lake.track_record import MemoryTrackRecord
from forecasting.model.artifact import load_pipeline, save_pipeline
from forecasting.model.forecaster import CalibratedForecaster
from forecasting.publication import known_at

TRAIN_END = pd.Timestamp("2023-05-01", tz="UTC")
ISSUED = pd.Timestamp("2023-06-12 12:00", tz="UTC")  # 14:00 in Oslo, after the auction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-repeats", type=int, default=1)
    parser.add_argument("--forecast-repeats", type=int, default=3)
    parser.add_argument("--set", type=param, action="append", default=[], metavar="PARAM=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    settings = load_settings()
    history = ReplayFeed.from_settings(settings).history
    training = known_at(history, TRAIN_END)
    pipeline = build_pipeline(settings).set_params(**dict(args.set))
    print(f"machine: {machine()}")
    print(f"training rows: {len(training)}, params: {pipeline.get_params()}", flush=True)

    reset_peak()
    train_times = [timed(lambda: pipeline.fit(training))[0] for _ in range(args.train_repeats)]
    train_peak, worker_peak = peak_mb(), children_peak_mb()
    known = known_at(history, ISSUED)
    with tempfile.TemporaryDirectory() as folder:
        artifact = save_pipeline(pipeline, Path(folder) / "model")
        reset_peak()
        cold = [
            timed(lambda: CalibratedForecaster(load_pipeline(artifact)).predict(known, ISSUED))[0]
            for _ in range(args.forecast_repeats)
        ]
        cold_peak = peak_mb()
        model = load_pipeline(artifact)
        issues = CalibratedForecaster(model).raw_issues(pd.DatetimeIndex([ISSUED])).drop(ISSUED)
        calibration = model.raw_forecasts(known, issues)

        def record_of_past_issues() -> MemoryTrackRecord:
            """A track record holding the calibration issues but not the issue itself (a new day)."""
            record = MemoryTrackRecord()
            for paths in calibration:
                record.put(model.model_id_, paths)
            return record

        reset_peak()
        daily = [
            timed(lambda: CalibratedForecaster(load_pipeline(artifact), record_of_past_issues()).predict(known, ISSUED))[0]
            for _ in range(args.forecast_repeats)
        ]
        daily_peak = peak_mb()
    print(f"train    median {statistics.median(train_times):7.1f} s over {len(train_times)} run(s); "
          f"peak RSS {train_peak:.0f} MB (largest worker {worker_peak:.0f} MB)")
    print(f"cold     median {statistics.median(cold):7.1f} s over {len(cold)} run(s); peak RSS {cold_peak:.0f} MB "
          "(load + 16 calibration issues + forecast)")
    print(f"daily    median {statistics.median(daily):7.1f} s over {len(daily)} run(s); peak RSS {daily_peak:.0f} MB "
          "(load + calibration from the track record + forecast)")
    print("(this machine only; compare numbers measured on the same machine)")


if __name__ == "__main__":
    main()
