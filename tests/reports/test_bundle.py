"""The report bundle of a real NO1–NO5 forecast, and its Prefect artifacts."""

import base64
import json
import re

import pandas as pd
import pytest

from flows.artifacts import publish_prefect_artifacts
from forecasting.config import load_settings
from forecasting.evaluation.baselines import SeasonalNaiveEmpirical
from forecasting.feeds.replay import ReplayFeed
from forecasting.ingest.land import REPORT_COLUMNS
from forecasting.publication import known_at
from forecasting.reports import bundle as report_bundle
from forecasting.reports.bundle import (
    PRODUCT_CHART,
    ReportBundle,
    artifact_keys,
    chart_key,
    write_report_bundle,
)
from forecasting.reports.data_quality import due_hours
from forecasting.schema import WEEKLY_SERIES

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
def bundle(tmp_path_factory, default_settings, known, forecast, timezones) -> ReportBundle:
    recent = known[known["delivery_hour"] >= AS_OF - pd.Timedelta(days=21)]
    lake_newest = known.groupby(["zone", "series"], as_index=False)["delivery_hour"].max()
    lake_newest = lake_newest.rename(columns={"delivery_hour": "newest_hour"})
    ingest = lake_newest.assign(feed="replay", status="ok", attempts=1, rows=24, new_rows=24, error="")
    dest = tmp_path_factory.mktemp("bundle") / "2023-06-20"
    due = due_hours(default_settings.series, timezones, AS_OF)  # as the daily run's report has it
    year = known["delivery_hour"] >= AS_OF - pd.Timedelta(weeks=53)
    hydro = known[known["series"].isin(WEEKLY_SERIES) & year]  # as the daily run's report reads it
    return write_report_bundle(
        dest, forecast, recent, ingest[REPORT_COLUMNS], None, lake_newest, timezones, due=due, hydro=hydro
    )


def test_bundle_writes_charts_tables_and_summary(bundle):
    names = {p.name for p in bundle.directory.iterdir()}

    assert names == {f"fan_NO{i}.png" for i in range(1, 6)} | {
        "daily.csv",
        "weekly.csv",
        "data_quality.csv",
        "summary.md",
        "hydro.csv",
        "hydro.png",
    }
    assert all(path.stat().st_size > 0 for path in bundle.files)


def test_daily_csv_has_a_row_per_zone_and_local_day(bundle):
    daily = pd.read_csv(bundle.daily)

    assert daily.groupby("zone")["hours"].sum().to_dict() == {f"NO{i}": 672 for i in range(1, 6)}


def test_data_quality_csv_has_every_zone_and_series(bundle):
    quality = pd.read_csv(bundle.data_quality)

    recent = pd.to_datetime(quality["newest_hour"]) >= AS_OF - pd.Timedelta(days=7)

    assert len(quality) == 5 * 9  # five hourly series and the four weekly ones of the hydro balance
    assert (quality.loc[recent, "gap_hours"] == 0).all()
    weekly = quality[quality["series"].isin(WEEKLY_SERIES)]
    assert (weekly["state"] == "ok").all() and weekly["gap_hours"].isna().all()  # weeks: no gap count


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


def test_summary_md_shows_the_hydro_balance_of_every_zone_with_its_chart(bundle):
    text = bundle.summary.read_text()
    section = text.split("## Hydro balance\n")[1].split("\n## ")[0]
    rows = [line.split(" | ")[:3] for line in section.splitlines() if line.startswith("| NO")]

    # as of 2023-06-20 the newest published week is 2023-W23 (out on Wednesday 2023-06-14)
    assert rows == [[f"| NO{i}", "2023-W23", "2023-06-11"] for i in range(1, 6)]
    assert "deviation = filling − median" in section
    assert "![hydro balance](hydro.png)" in text
    hydro = pd.read_csv(bundle.hydro)
    assert list(hydro["zone"]) == [f"NO{i}" for i in range(1, 6)]
    deviation = hydro["filling_twh"] - hydro["normal_median_twh"]
    assert hydro["deviation_twh"].to_numpy() == pytest.approx(deviation.to_numpy(), abs=2e-3)


def test_publish_outside_a_prefect_run_is_a_no_op(bundle):
    assert publish_prefect_artifacts(bundle) == []


def test_summary_md_data_quality_is_a_narrow_table_with_its_legend(bundle):
    section = bundle.summary.read_text().split("## Data quality")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("|")]

    assert table[0] == "| zone | series | state | newest (UTC) | ahead | gaps | pull |"
    assert len(table) == 2 + 45 and max(len(line) for line in table) <= 100
    assert "| NO5 | wind_onshore_da | absent since 2016-" in section  # not "late, -64,093 hours ahead"
    assert "absent since DATE" in section  # the legend


def test_chart_keys_are_valid_artifact_keys():
    assert chart_key("NO1") == "spotcast-5-no1-fan-chart"
    assert chart_key("DE-LU", PRODUCT_CHART) == "spotcast-5-de-lu-product-chart"
    assert ARTIFACT_KEY.match(chart_key("IT-Calabria_2"))


def test_artifact_keys_sort_summary_first_then_tables_then_zone_by_zone(bundle):
    fields = {**bundle.__dict__, "products": bundle.directory / "products.csv"}
    fields["product_charts"] = {zone: bundle.directory / f"products_{zone}.png" for zone in ("NO2", "NO1")}
    with_products = ReportBundle(**fields)

    keys = artifact_keys(with_products)

    assert keys == sorted(keys)  # created in the order a listing by key shows them
    assert keys[:4] == [report_bundle.SUMMARY_KEY, report_bundle.WEEKLY_KEY, report_bundle.QUALITY_KEY, report_bundle.PRODUCTS_KEY]
    assert keys[4:8] == [
        "spotcast-5-no1-fan-chart",
        "spotcast-5-no1-product-chart",
        "spotcast-5-no2-fan-chart",
        "spotcast-5-no2-product-chart",
    ]
    assert keys[8:] == [chart_key(f"NO{i}") for i in range(3, 6)]
    assert all(ARTIFACT_KEY.match(key) for key in keys)


@pytest.mark.slow
def test_publish_in_a_real_flow_run_stores_summary_tables_and_chart_images(bundle):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    @flow
    def report_flow() -> int:
        return len(publish_prefect_artifacts(bundle))

    with prefect_test_harness(server_startup_timeout=120):
        assert report_flow() == 3 + 5
        with get_client(sync_client=True) as client:
            stored = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="spotcast"))
            )
    by_key = {a.key: a for a in stored}
    charts = {chart_key(f"NO{i}") for i in range(1, 6)}
    assert set(by_key) == {report_bundle.SUMMARY_KEY, report_bundle.WEEKLY_KEY, report_bundle.QUALITY_KEY} | charts
    assert sorted(by_key) == artifact_keys(bundle)  # by key: the summary first, then zone by zone
    assert by_key[report_bundle.SUMMARY_KEY].data.startswith("# Spotcast")
    assert "fan_NO1.png" not in by_key[report_bundle.SUMMARY_KEY].data  # the charts are their own artifacts
    quality = json.loads(by_key[report_bundle.QUALITY_KEY].data)
    assert len(quality) == 45 and len(quality[0]) <= 8  # the narrow view, not the CSV's 15 columns
    assert "absent since" in by_key[report_bundle.QUALITY_KEY].description  # its legend
    no3 = by_key[chart_key("NO3")]
    assert no3.type == "image"
    prefix = "data:image/png;base64,"
    assert no3.data.startswith(prefix)  # the image itself, not a file:// link on the worker
    assert base64.b64decode(no3.data.removeprefix(prefix)) == bundle.fan_charts["NO3"].read_bytes()
