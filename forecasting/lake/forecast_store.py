"""Forecasts in the lake, partitioned by issue date, with the input status they were made from.

    forecasts/issue_date=<YYYY-MM-DD>/zone=<zone>/data.parquet      the hourly view (forecast frame)
    forecast_inputs/issue_date=<YYYY-MM-DD>/data.parquet            per zone × series: feed status,
                                                                     newest published hour, extension
    paths/issue_date=<YYYY-MM-DD>/data.parquet                      the calibrated sample paths, one
                                                                     row per zone × hour (track-record
                                                                     layout: a float32 list of paths)
    products/issue_date=<YYYY-MM-DD>/data.parquet                   the calendar products with the
                                                                     forward view (VIEW_COLUMNS) and
                                                                     `product_samples`: each path's
                                                                     settlement (a float32 list)
Re-issuing a date replaces its files (one atomic rename each, after all of them are written, so a
failed write leaves the previous issue whole), never duplicates rows. The issue date is the local
date of the issue instant in the schedule's time zone (the desk's "today").
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from forecasting.errors import MissingData
from forecasting.lake.files import LakeFS
from forecasting.lake.forward_store import read_forwards
from forecasting.lake.track_record import paths_of_table, paths_table
from forecasting.paths import PATH_DTYPE, IssuePaths
from forecasting.products import ProductForecast, forward_view
from forecasting.schema import FORECAST_COLUMNS, ISSUED_AT, ZONE

FORECASTS = "forecasts"
FORECAST_INPUTS = "forecast_inputs"
PATHS_AREA = "paths"
PRODUCTS_AREA = "products"
ISSUE_DATE = "issue_date"
DATA_FILE = "data.parquet"
# The product samples are stored so that any P(settle > x) can be read off the issue later, exactly
# (~75 products × 200 paths × 5 zones × 4 bytes ≈ 0.3 MB an issue).
PRODUCT_SAMPLES = "product_samples"


def issue_date_of(issued_at: pd.Timestamp, timezone: str) -> date:
    return pd.Timestamp(issued_at).tz_convert(timezone).date()


def _folder(lake: LakeFS, area: str, issue_date: date) -> str:
    return lake.path(area, f"{ISSUE_DATE}={issue_date.isoformat()}")


def write_forecast(
    lake: LakeFS,
    forecast: pd.DataFrame,
    inputs: pd.DataFrame,
    issue_date: date,
    paths: IssuePaths | None = None,
    products: ProductForecast | None = None,
) -> list[str]:
    """Store one issue (all zones): its hourly view, input status and, when given, its calibrated
    paths and products (a ProductForecast whose table is the forward view), in one atomic write;
    returns the files written."""
    missing = [c for c in FORECAST_COLUMNS if c not in forecast.columns]
    if missing:
        raise ValueError(f"forecast frame lacks columns {missing}")
    if forecast[ISSUED_AT].nunique() != 1:
        raise ValueError("a forecast write holds exactly one issue instant")
    folder = _folder(lake, FORECASTS, issue_date)
    files: dict[str, pa.Table | bytes] = {
        f"{folder}/{ZONE}={zone}/{DATA_FILE}": pa.Table.from_pandas(
            rows[FORECAST_COLUMNS].drop(columns=[ZONE]), preserve_index=False
        )
        for zone, rows in forecast.groupby(ZONE, sort=True)
    }
    inputs_path = f"{_folder(lake, FORECAST_INPUTS, issue_date)}/{DATA_FILE}"
    files[inputs_path] = pa.Table.from_pandas(inputs, preserve_index=False)
    if paths is not None:
        files[f"{_folder(lake, PATHS_AREA, issue_date)}/{DATA_FILE}"] = paths_table(paths)
    if products is not None:
        files[f"{_folder(lake, PRODUCTS_AREA, issue_date)}/{DATA_FILE}"] = products_table(products)
    lake.write_tables_atomic(files)
    return list(files)


def issue_dates(lake: LakeFS) -> list[date]:
    return sorted(date.fromisoformat(day) for day in lake.partitions(lake.path(FORECASTS), ISSUE_DATE))


def read_forecast(
    lake: LakeFS, issue_date: date | None = None, zones: list[str] | None = None
) -> pd.DataFrame:
    """The forecast issued on `issue_date` (default: the latest) as a forecast frame."""
    issue_date = issue_date or _latest(lake)
    folder = _folder(lake, FORECASTS, issue_date)
    if not lake.exists(folder):
        raise MissingData(f"no forecast issued on {issue_date} in {lake.root}")
    frames = []
    for zone_folder in sorted(lake.fs.ls(folder, detail=False)):
        zone = zone_folder.rsplit("=", 1)[-1]
        if zones and zone not in zones:
            continue
        frame = lake.read_table(f"{zone_folder}/{DATA_FILE}").to_pandas()
        frames.append(frame.assign(**{ZONE: zone}))
    if not frames:
        raise MissingData(f"no forecast of zones {zones} issued on {issue_date}")
    return pd.concat(frames, ignore_index=True)[FORECAST_COLUMNS]


def products_table(products: ProductForecast) -> pa.Table:
    """Products as stored: their table, and each row's samples as a fixed-size float32 list."""
    table = pa.Table.from_pandas(products.table.reset_index(drop=True), preserve_index=False)
    samples = np.asarray(products.samples, dtype=PATH_DTYPE)
    values = pa.array(samples.ravel(), type=pa.float32())
    width = max(samples.shape[1], 1)  # Arrow's lists need a positive size; an issue without products has none
    return table.append_column(PRODUCT_SAMPLES, pa.FixedSizeListArray.from_arrays(values, width))


def read_product_forecast(
    lake: LakeFS, issue_date: date | None = None, zones: list[str] | None = None
) -> ProductForecast:
    """The products issued on `issue_date` (default: the latest issue): the forward view as the
    table, the samples beside it (none, 0 columns, for an issue stored before they were kept)."""
    issue_date = issue_date or _latest(lake)
    path = f"{_folder(lake, PRODUCTS_AREA, issue_date)}/{DATA_FILE}"
    if not lake.exists(path):
        raise MissingData(f"no products of an issue on {issue_date} in {lake.root}")
    stored = lake.read_table(path)
    if PRODUCT_SAMPLES in stored.column_names:
        column = stored.column(PRODUCT_SAMPLES).combine_chunks()
        flat = column.flatten().to_numpy(zero_copy_only=False)
        samples = flat.astype(np.float64).reshape(len(stored), column.type.list_size)
        stored = stored.drop_columns([PRODUCT_SAMPLES])
    else:
        samples = np.zeros((len(stored), 0))
    table = stored.to_pandas()
    keep = table[ZONE].isin(zones).to_numpy() if zones else np.ones(len(table), dtype=bool)
    return ProductForecast(table[keep].reset_index(drop=True), samples[keep])


def read_products(
    lake: LakeFS, issue_date: date | None = None, zones: list[str] | None = None
) -> pd.DataFrame:
    """The product table (the forward view) issued on `issue_date` (default: the latest issue)."""
    return read_product_forecast(lake, issue_date, zones).table


def read_issued_products(
    lake: LakeFS, issue_date: date, issued_at: pd.Timestamp, zones: list[str] | None = None
) -> ProductForecast:
    """The products issued on `issue_date` as `spotcast products` and the API show them: the forward
    view recomputed from the stored samples against the forwards the lake holds published by
    `issued_at`, the issue instant (a file landed after the forecast counts when its trade date
    settled before it); an issue stored without samples keeps the view it was stored with.
    MissingData when the issue was stored without products."""
    products = read_product_forecast(lake, issue_date, zones)
    if products.samples.shape[1] == 0:
        return products
    forwards = read_forwards(lake, as_of=issued_at, zones=zones)
    return ProductForecast(forward_view(products, forwards), products.samples)


def read_paths(lake: LakeFS, issue_date: date | None = None) -> IssuePaths:
    """The calibrated sample paths issued on `issue_date` (default: the latest issue)."""
    issue_date = issue_date or _latest(lake)
    path = f"{_folder(lake, PATHS_AREA, issue_date)}/{DATA_FILE}"
    if not lake.exists(path):
        raise MissingData(f"no sample paths of an issue on {issue_date} in {lake.root}")
    return paths_of_table(lake.read_table(path))


def _latest(lake: LakeFS) -> date:
    dates = issue_dates(lake)
    if not dates:
        raise MissingData(f"the lake {lake.root} holds no forecast yet")
    return dates[-1]


def read_forecast_inputs(lake: LakeFS, issue_date: date) -> pd.DataFrame:
    return lake.read_table(f"{_folder(lake, FORECAST_INPUTS, issue_date)}/{DATA_FILE}").to_pandas()


def issued_at_of(lake: LakeFS, issue_date: date) -> pd.Timestamp:
    """The instant of the issue of `issue_date`: its input status rows' `issued_at`, or its forecast
    rows' for a model without covariates (which has no input rows)."""
    inputs = read_forecast_inputs(lake, issue_date)
    rows = inputs if len(inputs) else read_forecast(lake, issue_date)
    return pd.Timestamp(rows[ISSUED_AT].iloc[0])
