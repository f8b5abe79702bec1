"""Planning pulls: the daily run's window and freshness expectations, and the chunked, resumable
backfill, against real lakes written by the replay of the bundled history."""

from __future__ import annotations

import itertools
from datetime import date

import pandas as pd
import pytest

from forecasting.config import Settings
from forecasting.feeds.base import SeriesRequest
from forecasting.feeds.replay import ReplayFeed
from forecasting.ingest.plan import DAILY_LOOKBACK, plan_backfill, plan_daily
from forecasting.ingest.pull import PullPlan
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import append_series, newest_hours

HOUR = pd.Timedelta(hours=1)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def by_pair(plans: list[PullPlan]) -> dict[tuple[str, str], list[PullPlan]]:
    pairs: dict[tuple[str, str], list[PullPlan]] = {}
    for plan in plans:
        pairs.setdefault((plan.request.zone.name, plan.request.series), []).append(plan)
    return pairs


@pytest.fixture
def lake(settings: Settings) -> LakeFS:
    return LakeFS.open(settings.lake_root)


def land(
    lake: LakeFS, replay: ReplayFeed, settings: Settings, zone: str, series: str, start: str, end: str
) -> None:
    frame = replay.fetch(SeriesRequest(settings.zone(zone), series, utc(start), utc(end)))
    append_series(lake, frame, "replay")


# --- backfill --------------------------------------------------------------------------------------


def test_backfill_on_an_empty_lake_covers_history_in_contiguous_chunks(make_settings, lake: LakeFS) -> None:
    settings = make_settings(history={"start": "2022-01-01", "backfill_chunk_days": 100})
    end = utc("2023-06-10 12:00")

    plans = plan_backfill(settings, newest_hours(lake), end)

    pairs = by_pair(plans)
    assert set(pairs) == {(z, s) for z in ("NO1", "NO2") for s in ("price_da", "load_actual")}
    for chunks in pairs.values():
        assert chunks[0].request.start == utc("2022-01-01") and chunks[-1].request.end == end
        assert all(a.request.end == b.request.start for a, b in itertools.pairwise(chunks))
        assert all(c.request.end - c.request.start <= pd.Timedelta(days=100) for c in chunks)
        assert all(c.expected_newest is None and c.feed == "replay" for c in chunks)
        # no chunk crosses the new year: each lands in one curated year file
        assert all(c.request.start.year == (c.request.end - pd.Timedelta(hours=1)).year for c in chunks)
        assert utc("2023-01-01") in {c.request.start for c in chunks}
    assert len(plans) == 4 * 6  # 365 days in chunks of 100 (4), then 160 days (2)


def test_resumed_backfill_starts_each_pair_after_its_newest_hour(
    settings: Settings, lake: LakeFS, replay: ReplayFeed
) -> None:
    land(lake, replay, settings, "NO1", "price_da", "2023-01-01", "2023-03-01")
    land(lake, replay, settings, "NO2", "price_da", "2023-01-01", "2023-02-01 05:00")
    end = utc("2023-06-10 12:00")

    pairs = by_pair(plan_backfill(settings, newest_hours(lake), end, resume=True))

    assert pairs[("NO1", "price_da")][0].request.start == utc("2023-03-01")
    assert pairs[("NO2", "price_da")][0].request.start == utc("2023-02-01 05:00")
    assert pairs[("NO1", "load_actual")][0].request.start == utc("2023-01-01")  # nothing landed yet
    assert all(chunks[-1].request.end == end for chunks in pairs.values())


def test_backfill_without_resume_ignores_the_lake(
    settings: Settings, lake: LakeFS, replay: ReplayFeed
) -> None:
    land(lake, replay, settings, "NO1", "price_da", "2023-01-01", "2023-03-01")

    pairs = by_pair(plan_backfill(settings, newest_hours(lake), utc("2023-06-10"), resume=False))

    assert pairs[("NO1", "price_da")][0].request.start == utc("2023-01-01")


def test_backfill_of_a_lake_that_holds_everything_plans_nothing_for_that_pair(
    settings: Settings, lake: LakeFS, replay: ReplayFeed
) -> None:
    land(lake, replay, settings, "NO1", "price_da", "2023-01-01", "2023-03-01")

    pairs = by_pair(plan_backfill(settings, newest_hours(lake), utc("2023-03-01")))

    assert ("NO1", "price_da") not in pairs and ("NO2", "price_da") in pairs


def test_backfill_start_argument_overrides_history_start(settings: Settings, lake: LakeFS) -> None:
    plans = plan_backfill(settings, newest_hours(lake), utc("2023-06-01"), start=date(2023, 5, 1))
    assert {p.request.start for p in plans} == {utc("2023-05-01")}


# --- daily -----------------------------------------------------------------------------------------


def test_daily_on_an_empty_lake_asks_for_a_week_up_to_the_due_hour(settings: Settings, lake: LakeFS) -> None:
    as_of = utc("2023-06-10 12:00")  # 14:00 in Oslo: prices for June 11 are out

    pairs = by_pair(plan_daily(settings, newest_hours(lake), as_of))

    (price,) = pairs[("NO1", "price_da")]
    assert price.expected_newest == utc("2023-06-11 21:00") and price.previous_newest is None
    assert price.request.end == utc("2023-06-11 22:00")
    assert price.request.start == utc("2023-06-04 21:00")
    (actual,) = pairs[("NO1", "load_actual")]
    assert actual.expected_newest == utc("2023-06-10 10:00")  # published an hour after it ends


def test_daily_before_the_auction_expects_only_today(settings: Settings, lake: LakeFS) -> None:
    pairs = by_pair(plan_daily(settings, newest_hours(lake), utc("2023-06-10 10:00")))  # 12:00 in Oslo
    assert pairs[("NO1", "price_da")][0].expected_newest == utc("2023-06-10 21:00")


def test_daily_rereads_the_lookback_before_the_newest_landed_hour(
    settings: Settings, lake: LakeFS, replay: ReplayFeed
) -> None:
    land(lake, replay, settings, "NO1", "price_da", "2023-06-01", "2023-06-10 22:00")

    (plan,) = by_pair(plan_daily(settings, newest_hours(lake), utc("2023-06-10 12:00")))[("NO1", "price_da")]

    assert plan.previous_newest == utc("2023-06-10 21:00")
    assert plan.request.start == utc("2023-06-10 22:00") - DAILY_LOOKBACK
    assert plan.request.end == plan.expected_newest + HOUR
