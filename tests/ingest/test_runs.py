"""The backfill and daily runs end to end: replay of the real bundled history into a tmp lake, and an
ENTSO-E feed on a local HTTP server that is down."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from forwards_testing import HEADER, write_csv
from pytest_httpserver import HTTPServer

from forecasting.config import TOKEN_ENV, Settings
from forecasting.ingest.pull import pull_planned
from forecasting.jobs.ingest import backfill, daily, default_as_of
from forecasting.lake.files import LakeFS
from forecasting.lake.forward_store import read_forwards
from forecasting.lake.series_store import newest_hours, read_series
from forecasting.schema import DELIVERY_HOUR, KEY_COLUMNS, PUBLISHED_AT, SERIES_COL, ZONE

DAY = pd.Timedelta(days=1)
PAIRS = {(z, s) for z in ("NO1", "NO2") for s in ("price_da", "load_actual")}


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def lake_of(settings: Settings) -> LakeFS:
    return LakeFS.open(settings.lake_root)


def curated_mtimes(settings: Settings) -> dict[str, int]:
    root = Path(settings.lake_root)
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.parquet")}


def test_backfill_twice_gives_identical_rows_and_the_second_adds_nothing(
    settings: Settings, as_of: pd.Timestamp
) -> None:
    first = backfill(settings, as_of=as_of)
    rows = read_series(lake_of(settings))
    files = curated_mtimes(settings)

    second = backfill(settings, as_of=as_of, resume=False)  # pulls the same history again

    assert first.ok and second.ok and len(second.outcomes) == len(first.outcomes)
    assert first.new_rows == len(rows) > 0
    assert second.new_rows == 0
    pd.testing.assert_frame_equal(read_series(lake_of(settings)), rows)
    assert curated_mtimes(settings) == files
    assert not rows.duplicated(KEY_COLUMNS).any()


def test_daily_on_an_empty_lake_runs_the_backfill_first(settings: Settings, as_of: pd.Timestamp) -> None:
    reports = daily(settings, as_of=as_of)

    assert len(reports) == 2 and all(r.ok for r in reports)
    backfilled, daily_run = reports
    assert all(o.plan.expected_newest is None for o in backfilled.outcomes)  # history chunks
    assert all(o.plan.expected_newest is not None for o in daily_run.outcomes)
    newest = newest_hours(lake_of(settings)).set_index([ZONE, SERIES_COL])
    assert set(newest.index) == PAIRS
    assert (newest["first_hour"] == utc("2023-01-01")).all()
    assert newest.loc[("NO1", "price_da"), "newest_hour"] == utc("2023-06-11 21:00")  # tomorrow's prices
    assert newest.loc[("NO1", "load_actual"), "newest_hour"] == utc("2023-06-10 10:00")


def test_daily_lands_the_configured_forwards_files(make_settings, tmp_path: Path, as_of: pd.Timestamp) -> None:
    write_csv(tmp_path, "settlement-2023-06-09.csv", HEADER, "2023-06-09,NO1,2023-W24,base,80.5")
    settings = make_settings(forwards={"files": [str(tmp_path / "settlement-*.csv")]})

    daily(settings, as_of=as_of)

    landed = read_forwards(lake_of(settings), as_of=as_of)
    assert landed[["zone", "load", "price", "source"]].values.tolist() == [
        ["NO1", "base", 80.5, "settlement-2023-06-09.csv"]
    ]


def test_a_refused_forwards_file_is_logged_in_one_line_and_the_daily_run_carries_on(
    make_settings, tmp_path: Path, as_of: pd.Timestamp, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_csv(tmp_path, "settlement.csv", HEADER, "2023-06-09,NO1,2023-W24,base,eighty")
    settings = make_settings(forwards={"files": [str(path)]})

    reports = daily(settings, as_of=as_of)

    assert all(r.ok for r in reports)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0]
    assert f"{path}:2: price 'eighty'" in refusals[0]
    assert "the forecast uses the forwards landed before" in refusals[0]
    assert read_forwards(lake_of(settings)).empty


def test_daily_without_a_forwards_file_says_so(
    settings: Settings, as_of: pd.Timestamp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="spotcast")
    daily(settings, as_of=as_of)
    assert "no forwards file configured" in caplog.text


def test_daily_on_a_filled_lake_does_not_backfill(settings: Settings, as_of: pd.Timestamp) -> None:
    backfill(settings, as_of=as_of)
    reports = daily(settings, as_of=as_of)
    assert len(reports) == 1
    assert all(o.plan.expected_newest is not None for o in reports[0].outcomes)


def test_daily_for_the_next_day_adds_exactly_that_days_hours(settings: Settings, as_of: pd.Timestamp) -> None:
    daily(settings, as_of=as_of)
    lake = lake_of(settings)
    before = read_series(lake)

    (report,) = daily(settings, as_of=as_of + DAY)

    after = read_series(lake)
    added = after.merge(before[KEY_COLUMNS], on=KEY_COLUMNS, how="left", indicator=True)
    added = added[added["_merge"] == "left_only"]
    assert report.ok and report.new_rows == len(added) == 24 * len(PAIRS)
    prices = added[(added[ZONE] == "NO1") & (added[SERIES_COL] == "price_da")][DELIVERY_HOUR]
    oslo_june_12 = pd.date_range(utc("2023-06-11 22:00"), periods=24, freq="h")  # local day June 12
    assert list(prices) == list(oslo_june_12)
    actuals = added[(added[ZONE] == "NO1") & (added[SERIES_COL] == "load_actual")][DELIVERY_HOUR]
    assert list(actuals) == list(pd.date_range(utc("2023-06-10 11:00"), periods=24, freq="h"))
    assert len(after) == len(before) + len(added)
    assert (added[PUBLISHED_AT] <= as_of + DAY).all()


def test_unavailable_feed_leaves_the_others_landed_and_is_named_in_the_report(
    make_settings,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    replay_source: Path,
    as_of: pd.Timestamp,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "test-token-0000")  # the token comes from the environment only
    httpserver.expect_request("/api").respond_with_data(
        "Service Unavailable", status=503, content_type="text/plain"
    )
    settings = make_settings(
        feeds={
            "replay": {"kind": "replay", "source": str(replay_source), "series": ["price_da"]},
            "entsoe": {"kind": "entsoe", "base_url": httpserver.url_for("/api"), "series": ["load_actual"]},
        }
    )

    report = backfill(settings, as_of=as_of)

    assert not report.ok
    table = report.table()
    failed = table[table["status"] != "ok"]
    assert set(zip(failed["feed"], failed["zone"], failed["series"], strict=True)) == {
        ("entsoe", "NO1", "load_actual"),
        ("entsoe", "NO2", "load_actual"),
    }
    assert (failed["status"] == "unavailable").all() and (failed["attempts"] == 3).all()
    assert failed["error"].str.contains("HTTP 503").all()
    problems = [o.plan.describe() for o in report.problems()]
    assert len(problems) == 2
    for zone, described in zip(("NO1", "NO2"), problems, strict=True):
        assert described.startswith(f"entsoe load_actual {zone} [2023-01-01 00:00, ")
    landed = newest_hours(lake_of(settings))
    assert set(zip(landed[ZONE], landed[SERIES_COL], strict=True)) == {
        ("NO1", "price_da"),
        ("NO2", "price_da"),
    }
    assert (table.loc[table["feed"] == "replay", "new_rows"] > 0).all()
    assert len(httpserver.log) == 2 * 3


def test_resumed_backfill_continues_after_what_the_lake_holds(
    make_settings, tmp_path: Path, as_of: pd.Timestamp
) -> None:
    settings = make_settings()
    first = backfill(settings, as_of=as_of - 30 * DAY)
    newest = newest_hours(lake_of(settings)).set_index([ZONE, SERIES_COL])["newest_hour"]

    resumed = backfill(settings, as_of=as_of)

    assert first.ok and resumed.ok
    starts: dict[tuple[str, str], pd.Timestamp] = {}
    for o in resumed.outcomes:  # the first chunk of each pair
        starts.setdefault((o.plan.request.zone.name, o.plan.request.series), o.plan.request.start)
    assert starts == {pair: newest[pair] + pd.Timedelta(hours=1) for pair in PAIRS}
    one_go = make_settings(lake_root=str(tmp_path / "one-go"))
    backfill(one_go, as_of=as_of)
    pd.testing.assert_frame_equal(
        read_series(lake_of(settings)).drop(columns="retrieved_at"),
        read_series(lake_of(one_go)).drop(columns="retrieved_at"),
    )


def test_default_as_of_of_a_replay_setup_is_the_end_of_the_recording(settings: Settings) -> None:
    # Prices for June 30 were published on June 29 at 13:00 in Oslo; every other pair ends later.
    assert default_as_of(settings) == utc("2023-06-29 11:00")


def test_daily_for_a_date_the_lake_is_already_past_lands_nothing(
    settings: Settings, as_of: pd.Timestamp
) -> None:
    backfill(settings, as_of=as_of)

    reports = daily(settings, as_of=as_of - 30 * DAY)  # e.g. replaying an old day on a filled lake

    assert len(reports) == 1 and reports[0].ok
    assert reports[0].new_rows == 0


def test_pulls_run_through_the_submit_hook_given_and_land_in_plan_order(
    settings: Settings, as_of: pd.Timestamp
) -> None:
    # The Prefect flows pass their task's `.submit` here; this hook is a one-thread pool.
    submitted = []
    with ThreadPoolExecutor(max_workers=1) as pool:

        def submit(feeds, plan, settings):
            submitted.append(plan)
            return pool.submit(pull_planned, feeds, plan, settings)

        report = backfill(settings, as_of=as_of, submit=submit)

    assert report.ok and len(submitted) == len(report.outcomes) > 0
    assert [o.plan for o in report.outcomes] == submitted
