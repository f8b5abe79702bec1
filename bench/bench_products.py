"""Benchmark of what the calendar products add to a daily issue, with a trained model: the products
of the calibrated paths and the product spread stage (fitted on the 16 calibration issues), the
forward view, and the paths + products written to the lake — against the hourly part of the same
forecast (raw paths from the track record, hourly stage, deciles) in the same process.

    .venv/bin/python bench/bench_products.py [--repeats 5]

Needs a lake with a champion whose track record holds the issue and its calibration issues (a
`spotcast daily` leaves one). Works on a copy of the lake's newest issue; prints medians, the ratio to
the hourly part, the extra peak RSS and the bytes the paths and products take per issue.
Caveat: THIS machine only; run with nothing else heavy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
from measure import machine, peak_mb, reset_peak, timed

from forecasting.config import load_settings
from forecasting.jobs import ingest
from forecasting.jobs.forecast import PRODUCT_LOOKBACK
from forecasting.jobs.train import forecaster_of
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import write_forecast
from forecasting.lake.forward_store import read_forwards
from forecasting.lake.series_store import read_series
from forecasting.lake.track_record import LakeTrackRecord, MemoryTrackRecord
from forecasting.model import registry
from forecasting.model.calibration import SpreadCalibration
from forecasting.products import ProductForecast, forward_view
from forecasting.publication import known_at
from forecasting.schema import PRICE, SERIES_COL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings()
    lake = LakeFS.of(settings)
    as_of = ingest.resolve_as_of(settings, None)
    model = registry.load_champion(lake, settings, as_of)
    history = read_series(
        lake, zones=list(model.zones_), start=as_of - model.history_needed - PRODUCT_LOOKBACK, as_of=as_of
    )
    stored, memory = LakeTrackRecord(lake), MemoryTrackRecord()
    forecaster = forecaster_of(settings, model, memory)
    for issue in forecaster.raw_issues([as_of]):
        if (paths := stored.get(model.model_id_, issue)) is None:
            sys.exit(f"the track record lacks the issue {issue}: run `spotcast daily` first")
        memory.put(model.model_id_, paths)
    raw = memory.get(model.model_id_, as_of)
    past = [memory.get(model.model_id_, issue) for issue in model.calibration_issues(as_of, forecaster.clock)]
    prices = known_at(history[history[SERIES_COL] == PRICE], as_of)
    forwards = read_forwards(lake, as_of=as_of, zones=list(model.zones_))
    print(f"machine: {machine()}; issue {as_of}, {len(past)} calibration issues, model {model.model_id_}")

    def hourly() -> tuple:
        stage = SpreadCalibration().fit(pd.concat([p.forecast_frame() for p in past], ignore_index=True), prices)
        calibrated = raw.map(stage.apply)
        return stage, calibrated, calibrated.forecast_frame()

    stage, calibrated, frame = hourly()
    hourly_times = [timed(hourly)[0] for _ in range(args.repeats)]
    base = peak_mb()
    product_times, peaks = [], []
    for _ in range(args.repeats):
        reset_peak()
        seconds, (products, view) = timed(lambda: products_and_view(forecaster, calibrated, past, stage, prices, forwards))
        product_times.append(seconds)
        peaks.append(peak_mb())
    with tempfile.TemporaryDirectory(prefix="spotcast-bench-") as folder:
        target = LakeFS.open(folder)
        inputs = history.iloc[:0]
        write_seconds, files = timed(
            lambda: write_forecast(
                target, frame, inputs, as_of.date(), paths=calibrated, products=ProductForecast(view, products.samples)
            )
        )
        sizes: dict[str, int] = {}
        for file in files:  # per lake area: forecasts, forecast_inputs, paths, products
            area = Path(file).relative_to(Path(folder).resolve()).parts[0]
            sizes[area] = sizes.get(area, 0) + Path(file).stat().st_size
    h, p = statistics.median(hourly_times), statistics.median(product_times)
    print(f"hourly part (stage + deciles)      median {h:6.2f} s  {[round(t, 2) for t in hourly_times]}")
    print(f"products + product stage + view    median {p:6.2f} s  {[round(t, 2) for t in product_times]}  = {p / h:.1f}× hourly")
    print(f"{len(products.table)} products; write of the whole issue {write_seconds:.2f} s")
    print(f"peak RSS {max(peaks):.0f} MB during products vs {base:.0f} MB before them (+{max(peaks) - base:.0f} MB)")
    print("bytes per issue: " + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sorted(sizes.items())))
    print("(this machine only)")


def products_and_view(forecaster, calibrated, past, stage, prices, forwards) -> tuple:
    products, _ = forecaster.calibrated_products(calibrated, past, stage, prices)
    return products, forward_view(products, forwards)


if __name__ == "__main__":
    main()
