"""The report bundle of a real NO1–NO5 forecast, and its Prefect artifacts."""

import re

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.evaluation.baselines import SeasonalNaiveEmpirical
from forecasting.feeds.replay import ReplayFeed
from forecasting.ingest.land import REPORT_COLUMNS
from forecasting.publication import known_at
from forecasting.reports import publish
from forecasting.reports.publish import ReportBundle, publish_prefect_artifacts, write_report_bundle

AS_OF = pd.Timestamp("2023-06-20 12:00", tz="UTC")
ARTIFACT_KEY = re.compile(r"^[a-z0-9-]+$")


@pytest.fixture(scope="module")
def default_settings():
    return load_settings()


@pytest.fixture(scope="module")
def timezones(default_settings) -> dict[str, str]:
    return {z.name: z.timezone for z in default_settings.zones}


@pytest.fixture(scope="module")
def known(default_settings) -> pd.DataFrame:
    return known_at(ReplayFeed.from_settings(default_settings).history, AS_OF)


@pytest.fixture(scope="module")
def forecast(known, timezones) -> pd.DataFrame:
    return SeasonalNaiveEmpirical(timezones).fit(known).predict(known, AS_OF)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, known, forecast, timezones) -> ReportBundle:
    recent = known[known["delivery_hour"] >= AS_OF - pd.Timedelta(days=21)]
    lake_newest = known.groupby(["zone", "series"], as_index=False)["delivery_hour"].max()
    lake_newest = lake_newest.rename(columns={"delivery_hour": "newest_hour"})
    ingest = lake_newest.assign(feed="replay", status="ok", attempts=1, rows=24, new_rows=24, error="")
    dest = tmp_path_factory.mktemp("bundle") / "2023-06-20"
    return write_report_bundle(dest, forecast, recent, ingest[REPORT_COLUMNS], None, lake_newest, timezones)


@pytest.fixture
def created(monkeypatch) -> list[dict]:
    """Records the artifacts publish_prefect_artifacts creates instead of sending them to a server."""
    calls: list[dict] = []

    def fake(kind: str):
        def create(data, key=None, description=None, **_):
            calls.append({"kind": kind, "data": data, "key": key})
            return key

        return create

    monkeypatch.setattr(publish, "create_markdown_artifact", fake("markdown"))
    monkeypatch.setattr(publish, "create_table_artifact", fake("table"))
    return calls


def test_bundle_writes_charts_tables_and_summary(bundle):
    names = {p.name for p in bundle.directory.iterdir()}

    assert names == {f"fan_NO{i}.png" for i in range(1, 6)} | {
        "daily.csv",
        "weekly.csv",
        "data_quality.csv",
        "summary.md",
    }
    assert all(path.stat().st_size > 0 for path in bundle.files)


def test_daily_csv_has_a_row_per_zone_and_local_day(bundle):
    daily = pd.read_csv(bundle.daily)

    assert daily.groupby("zone")["hours"].sum().to_dict() == {f"NO{i}": 672 for i in range(1, 6)}


def test_data_quality_csv_has_every_zone_and_series(bundle):
    quality = pd.read_csv(bundle.data_quality)

    recent = pd.to_datetime(quality["newest_hour"]) >= AS_OF - pd.Timedelta(days=7)

    assert len(quality) == 5 * 5
    assert (quality.loc[recent, "gap_hours"] == 0).all()


def test_summary_md_embeds_every_fan_chart_by_relative_link(bundle):
    text = bundle.summary.read_text()

    for zone, path in bundle.fan_charts.items():
        assert f"![{zone} fan chart]({path.name})" in text
        assert (bundle.directory / path.name).exists()


def test_summary_md_holds_the_summary_weekly_and_quality_tables(bundle):
    text = bundle.summary.read_text()

    for heading in ("## Four weeks ahead", "## ISO weeks", "## Last 7 days", "## Data quality"):
        assert heading in text
    assert "| NO5 | 2023-06-22 00:00 |" in text


def test_publish_outside_a_prefect_run_is_a_no_op(bundle, created):
    assert publish_prefect_artifacts(bundle) == []
    assert created == []


def test_publish_in_a_run_creates_summary_tables_and_chart_links(bundle, created, monkeypatch):
    monkeypatch.setattr(publish, "in_prefect_run", lambda: True)

    publish_prefect_artifacts(bundle)

    by_key = {call["key"]: call for call in created}
    assert all(ARTIFACT_KEY.match(key) for key in by_key)
    assert by_key[publish.SUMMARY_KEY]["data"].startswith("# Spotcast")
    assert "fan_NO1.png" not in by_key[publish.SUMMARY_KEY]["data"]
    assert len(by_key[publish.WEEKLY_KEY]["data"]) == len(pd.read_csv(bundle.weekly))
    assert len(by_key[publish.QUALITY_KEY]["data"]) == 25
    assert f"({bundle.fan_charts['NO1'].resolve().as_uri()})" in by_key[publish.CHARTS_KEY]["data"]


def test_publish_with_base_url_embeds_chart_images(bundle, created, monkeypatch):
    monkeypatch.setattr(publish, "in_prefect_run", lambda: True)

    publish_prefect_artifacts(bundle, base_url="https://reports.example/2023-06-20/")

    charts = next(c for c in created if c["key"] == publish.CHARTS_KEY)["data"]
    assert "![NO3 fan chart](https://reports.example/2023-06-20/fan_NO3.png)" in charts


@pytest.mark.slow
def test_publish_in_a_real_flow_run_stores_the_artifacts(bundle):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    @flow
    def report_flow() -> int:
        return len(publish_prefect_artifacts(bundle))

    with prefect_test_harness(server_startup_timeout=120):
        assert report_flow() == 4
        with get_client(sync_client=True) as client:
            stored = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="spotcast"))
            )
    assert {a.key for a in stored} == {
        publish.SUMMARY_KEY,
        publish.WEEKLY_KEY,
        publish.QUALITY_KEY,
        publish.CHARTS_KEY,
    }
