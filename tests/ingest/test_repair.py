"""Repair planning: holes found against the publication rules, merged into few pulls, chunked like a
backfill."""

from __future__ import annotations

import pandas as pd

from forecasting.config import Settings
from forecasting.ingest.repair import Hole, describe_holes, find_holes, plan_repair
from forecasting.jobs.ingest import backfill
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import curated_file


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_holes_of_a_series_closer_than_a_week_share_one_pull(make_settings) -> None:
    settings: Settings = make_settings(history={"start": "2023-01-01", "backfill_chunk_days": 30})
    holes = [
        Hole("NO1", "price_da", utc("2023-01-02"), utc("2023-01-03")),
        Hole("NO1", "price_da", utc("2023-01-05"), utc("2023-01-06")),  # 2 days later: merged
        Hole("NO1", "price_da", utc("2023-03-01"), utc("2023-05-01")),  # far: its own, in 30-day chunks
        Hole("NO2", "price_da", utc("2023-01-06"), utc("2023-01-07")),  # another zone: its own
    ]

    plans = plan_repair(settings, holes)

    ranges = [(p.request.zone.name, p.request.start, p.request.end) for p in plans]
    assert ranges == [
        ("NO1", utc("2023-01-02"), utc("2023-01-06")),
        ("NO1", utc("2023-03-01"), utc("2023-03-31")),
        ("NO1", utc("2023-03-31"), utc("2023-04-30")),
        ("NO1", utc("2023-04-30"), utc("2023-05-01")),
        ("NO2", utc("2023-01-06"), utc("2023-01-07")),
    ]
    assert all(p.feed == "replay" and p.expected_newest is None for p in plans)


def test_a_deleted_month_is_one_new_hole(settings: Settings, as_of: pd.Timestamp) -> None:
    backfill(settings, as_of=as_of)
    lake = LakeFS.open(settings.lake_root)
    recorded, unreadable = find_holes(settings, lake, as_of)  # the recording's own gaps (0 = missing)
    assert unreadable == []

    path = curated_file(lake, "load_actual", "NO2", 2023)
    rows = pd.read_parquet(path)
    rows[~rows["delivery_hour"].between(utc("2023-02-01"), utc("2023-02-28 23:00"))].to_parquet(
        path, index=False
    )

    holes, _ = find_holes(settings, lake, as_of)
    (new,) = set(holes) - set(recorded)
    assert new == Hole("NO2", "load_actual", utc("2023-02-01"), utc("2023-03-01"))
    assert new.describe() == "load_actual NO2: 672 hour(s) missing, [2023-02-01 00:00, 2023-03-01 00:00) UTC"


def test_holes_are_described_one_line_per_series() -> None:
    holes = [
        Hole("NO1", "price_da", utc("2023-01-02"), utc("2023-01-03")),
        Hole("NO1", "price_da", utc("2023-02-01 05:00"), utc("2023-02-01 06:00")),
        Hole("NO2", "price_da", utc("2023-01-06"), utc("2023-01-07")),
    ]
    assert describe_holes(holes) == [
        "price_da NO1: 25 hour(s) missing in 2 holes, the largest [2023-01-02 00:00, 2023-01-03 00:00) UTC",
        "price_da NO2: 24 hour(s) missing, [2023-01-06 00:00, 2023-01-07 00:00) UTC",
    ]
