"""The library path a notebook or flow takes: backfill → train (registry, champion) → forecast →
lake, with a tiny real model on real bundled data."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from spotcast_testing import TINY_PARAMS

from forecasting.config import load_settings
from forecasting.jobs import ingest
from forecasting.jobs.forecast import issue_forecast
from forecasting.jobs.reporting import write_daily_report
from forecasting.jobs.train import train
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import issue_dates, read_forecast, read_product_forecast
from forecasting.lineage import lineage
from forecasting.model import registry
from forecasting.model.artifact import METADATA_FILE, ArtifactFormatError, ArtifactMismatchError
from forecasting.products import VIEW_COLUMNS
from forecasting.schema import FORECAST_COLUMNS, HORIZON_HOURS, QUANTILE_COLUMNS

AS_OF = pd.Timestamp("2019-03-05 13:30", tz="UTC")  # 14:30 Oslo: Wednesday's prices are out
SERIES = ["price_da", "load_da", "generation_da", "wind_onshore_da"]


def tiny_settings(root: Path):
    zones = [z.model_dump() for z in load_settings().zones if z.name in ("NO1", "NO2")]
    return load_settings(
        lake_root=str(root / "lake"),
        models_root=str(root / "models"),
        zones=zones,
        feeds={"replay": {"kind": "replay", "source": "data/bundled", "series": SERIES}},
        history={"start": "2018-06-01"},
        model={"params": TINY_PARAMS},
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return tiny_settings(tmp_path_factory.mktemp("spotcast"))


@pytest.fixture(scope="module")
def trained(settings):
    report = ingest.backfill(settings, as_of=AS_OF)
    assert report.ok
    return train(settings, AS_OF, tags={"purpose": "test"})


@pytest.fixture(scope="module")
def issued(settings, trained):
    model = registry.load_champion(LakeFS.open(settings.lake_root), settings)
    return issue_forecast(settings, model, AS_OF)


def test_first_model_is_recorded_and_promoted(settings, trained):
    lake = LakeFS.open(settings.lake_root)
    assert trained.promoted and trained.decision == "first model"
    assert registry.champion(lake).run_id == trained.run_id
    run = registry.list_runs(lake).iloc[-1]
    newest_published_price = pd.Timestamp("2019-03-06 22:00", tz="UTC")  # Wednesday 23:00 CET
    assert pd.Timestamp(run["train_end"]) <= newest_published_price and len(run["data_hash"]) == 64
    assert run["artifact"] == run["model_id"]  # relative to models_root: right after the folder moves
    assert Path(registry.artifact_location(settings, run)).is_dir()
    assert {"metric_crps", "metric_rmae", "metric_coverage_10_90"} <= set(run.index)


def test_forecast_has_672_hours_per_zone_in_the_lake(settings, issued):
    stored = read_forecast(LakeFS.open(settings.lake_root), issued.issue_date)
    assert list(stored.columns) == FORECAST_COLUMNS
    assert stored.groupby("zone").size().to_dict() == {"NO1": HORIZON_HOURS, "NO2": HORIZON_HOURS}
    assert stored["delivery_hour"].min() == pd.Timestamp("2019-03-06 23:00", tz="UTC")  # Thu 00:00 CET
    quantiles = stored[list(QUANTILE_COLUMNS)].to_numpy()
    assert (quantiles[:, 1:] >= quantiles[:, :-1]).all()


def test_input_status_names_every_covariate_and_its_feed_status(issued):
    inputs = issued.inputs
    assert set(inputs["covariate"]) == {"load_da", "generation_da", "wind_onshore_da"}
    assert {"hours_extended", "feed_status", "model_id"} <= set(inputs.columns)


def test_the_issue_stores_its_products_with_their_samples(settings, issued):
    stored = read_product_forecast(LakeFS.open(settings.lake_root), issued.issue_date)
    pd.testing.assert_frame_equal(stored.table, issued.view, check_dtype=False)
    assert stored.samples.shape == issued.products.samples.shape
    np.testing.assert_allclose(stored.samples, issued.products.samples, rtol=1e-6)  # float32 kept


def test_daily_report_has_a_products_section_and_a_product_chart_per_zone(settings, issued):
    folder = Path(write_daily_report(settings, issued, None))
    summary = (folder / "summary.md").read_text()
    assert "## Calendar products" in summary and "### NO1" in summary and "### NO2" in summary
    assert "| 2019-W11 base |" in summary and "no forward given" in summary
    for zone in ("NO1", "NO2"):
        chart = folder / f"products_{zone}.png"
        assert chart.read_bytes().startswith(b"\x89PNG")
        assert f"![{zone} product chart]({chart.name})" in summary
    products = pd.read_csv(folder / "products.csv")
    assert list(products.columns) == VIEW_COLUMNS and set(products["zone"]) == {"NO1", "NO2"}


def test_reissuing_the_same_date_replaces_not_duplicates(settings, trained, issued):
    model = registry.load_champion(LakeFS.open(settings.lake_root), settings)
    again = issue_forecast(settings, model, AS_OF + pd.Timedelta(minutes=30))
    stored = read_forecast(LakeFS.open(settings.lake_root), again.issue_date)
    assert len(stored) == 2 * HORIZON_HOURS
    assert issue_dates(LakeFS.open(settings.lake_root)) == [again.issue_date]


def test_forecast_export_to_csv_keeps_the_lake_schema(settings, trained, tmp_path):
    model = registry.load_champion(LakeFS.open(settings.lake_root), settings)
    out = tmp_path / "forecast.csv"
    issue_forecast(settings, model, AS_OF, out=out)
    exported = pd.read_csv(out)
    assert list(exported.columns) == FORECAST_COLUMNS and len(exported) == 2 * HORIZON_HOURS


def test_retraining_on_the_same_data_is_recorded_but_not_promoted(settings, trained):
    again = train(settings, AS_OF, tags={"purpose": "test"})
    lake = LakeFS.open(settings.lake_root)
    assert not again.promoted and "does not beat champion" in again.decision
    assert registry.champion(lake).run_id == trained.run_id
    assert len(registry.list_runs(lake)) == 2


def test_a_champion_of_an_older_model_format_is_replaced_by_the_next_training(tmp_path):
    settings = tiny_settings(tmp_path)
    assert ingest.backfill(settings, as_of=AS_OF).ok
    first = train(settings, AS_OF)
    metadata = Path(first.artifact) / METADATA_FILE
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "format_version": 1}))
    lake = LakeFS.open(settings.lake_root)
    with pytest.raises(ArtifactFormatError, match="format 1"):
        registry.load_champion(lake, settings)
    next_day = AS_OF + pd.Timedelta(days=1)
    assert all(report.ok for report in ingest.daily(settings, as_of=next_day))  # new data: a new model id
    second = train(settings, next_day)
    assert second.promoted and "cannot forecast here" in second.decision
    assert registry.load_champion(lake, settings).model_id_ == second.model_id


def test_runs_can_be_filtered_by_tag_and_sorted_by_metric(settings, trained):
    runs_table = registry.list_runs(LakeFS.open(settings.lake_root))
    found = registry.search_runs(runs_table, where=["purpose=test", "crps>0"], sort="crps")
    assert len(found) >= 1 and found["metric_crps"].is_monotonic_increasing
    assert registry.search_runs(runs_table, where=["purpose=other"]).empty


def test_champion_trained_for_other_zones_is_refused(settings, trained):
    three = settings.model_copy(update={"zones": (*settings.zones, load_settings().zone("NO3"))})
    with pytest.raises(ArtifactMismatchError):
        registry.load_champion(LakeFS.open(settings.lake_root), three)


def test_lineage_chains_forecast_model_run_data_and_pulls(settings, trained, issued):
    chain = lineage(settings, issued.issue_date, "NO1")
    text = chain.render()
    assert chain.model_id == trained.model_id
    assert trained.run_id in text and "sha256" in text
    assert set(chain.pulls["series"]) >= {"price_da", "load_da"}
    assert (chain.pulls["feed"] == "replay").all()


def test_default_covariates_that_no_feed_supplies_are_named_when_the_model_is_built(tmp_path, caplog):
    """Named covariates are checked when the configuration loads (tests/test_config.py); the
    defaults, when the feeds lack some, are said when a model is built."""
    from forecasting.jobs.train import build_pipeline

    feeds = {"replay": {"kind": "replay", "source": "data/bundled", "series": ["price_da", "load_da"]}}
    with caplog.at_level("WARNING", logger="spotcast.train"):
        build_pipeline(load_settings(lake_root=str(tmp_path / "lake"), feeds=feeds))
        build_pipeline(load_settings(lake_root=str(tmp_path / "lake"), feeds=feeds, model={"params": {"covariates": ["load_da"]}}))
    assert [r.getMessage() for r in caplog.records] == [
        "the default covariates ['load_da', 'generation_da', 'wind_onshore_da'] include ['generation_da', "
        "'wind_onshore_da'], which no enabled feed supplies: the model learns without them; set covariates = "
        "['load_da'] under [model.params], or add them to an enabled feed's series"
    ]


@pytest.mark.parametrize("ensemble_size", [0, 201])
def test_an_ensemble_size_outside_1_to_num_samples_is_a_configuration_error(tmp_path, ensemble_size):
    """Refused like an unknown [model.params] name, when the model is built: not a ValueError from fit."""
    from forecasting.config import ConfigError
    from forecasting.jobs.train import build_pipeline

    params = {"ensemble_size": ensemble_size, "num_samples": 200}
    settings = load_settings(lake_root=str(tmp_path / "lake"), model={"params": params})
    with pytest.raises(ConfigError, match=rf"^\[model\.params\]: ensemble_size = {ensemble_size} must be 1…num_samples \(200\)"):
        build_pipeline(settings)


def test_forecast_export_to_xlsx_is_the_issue_as_a_workbook_a_trader_opens(settings, trained, tmp_path):
    """A sheet per zone (local hours across the March DST change), Weekly, Products, About: headers
    with units, real Excel date-times, frozen headers, values equal to the issue's."""
    model = registry.load_champion(LakeFS.open(settings.lake_root), settings)
    out = tmp_path / "desk" / "forecast.xlsx"
    issued = issue_forecast(settings, model, AS_OF, out=out)
    assert str(out) in issued.files
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["NO1", "NO2", "Weekly", "Products", "About"]

    sheet = book["NO1"]
    deciles = [f"{q} (EUR/MWh)" for q in QUANTILE_COLUMNS]
    assert [c.value for c in sheet[1]] == [
        "local time (Europe/Oslo)",
        "UTC offset",
        "delivery hour (UTC)",
        "horizon hour",
        "mean (EUR/MWh)",
        *deciles,
    ]
    assert sheet.freeze_panes == "B2"
    assert (sheet["A2"].number_format, sheet["E2"].number_format) == ("yyyy-mm-dd hh:mm", "0.00")
    assert sheet.column_dimensions["A"].width >= len("local time (Europe/Oslo)")
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    frame = issued.forecast[issued.forecast["zone"] == "NO1"].sort_values("delivery_hour")
    assert len(rows) == HORIZON_HOURS
    assert rows[0][:4] == (datetime(2019, 3, 7, 0, 0), "+01:00", datetime(2019, 3, 6, 23, 0), 1)
    np.testing.assert_allclose(
        np.array([r[4:] for r in rows]), frame[["mean", *QUANTILE_COLUMNS]].to_numpy(), rtol=1e-15
    )
    # Sunday 31 March 2019: 01:00 CET is followed by 03:00 CEST, one UTC hour later.
    local = [r[0] for r in rows]
    at = local.index(datetime(2019, 3, 31, 1, 0))
    assert local[at + 1] == datetime(2019, 3, 31, 3, 0) and datetime(2019, 3, 31, 2, 0) not in local
    assert (rows[at][1], rows[at + 1][1]) == ("+01:00", "+02:00")
    assert rows[at + 1][2] - rows[at][2] == timedelta(hours=1)
    assert all(isinstance(t, datetime) and t.tzinfo is None for t in local)

    weekly = list(book["Weekly"].iter_rows(values_only=True))
    assert weekly[0][:5] == ("zone", "horizon week", "first hour (local)", "last hour (local)", "hours")
    assert weekly[0][5:] == tuple(f"mean of hourly {c}" for c in ("mean (EUR/MWh)", *deciles))
    assert [(r[0], r[1], r[4]) for r in weekly[1:]] == [
        (zone, week, 168) for zone in ("NO1", "NO2") for week in (1, 2, 3, 4)
    ]
    week4 = frame[frame["horizon_hour"] > 3 * 168]
    assert weekly[4][2:4] == (datetime(2019, 3, 28, 0, 0), datetime(2019, 4, 4, 0, 0))  # 167 h + DST
    np.testing.assert_allclose(weekly[4][5:], week4[["mean", *QUANTILE_COLUMNS]].mean().to_numpy())

    products = list(book["Products"].iter_rows(values_only=True))
    headers = products[0]
    assert headers[:8] == (
        "zone",
        "product",
        "kind",
        "load",
        "first delivery day",
        "last delivery day",
        "delivery hours",
        "settled share",
    )
    assert {"mean (EUR/MWh)", "p10 (EUR/MWh)", "forward (EUR/MWh)", "P(settle > forward)"} <= set(headers)
    assert len(products) - 1 == len(issued.view)
    view = issued.view
    column = {h: i for i, h in enumerate(headers)}
    assert [r[column["product"]] for r in products[1:]] == list(view["product"])
    np.testing.assert_allclose([r[column["mean (EUR/MWh)"]] for r in products[1:]], view["mean"], rtol=1e-15)
    assert [r[column["first delivery day"]].date() for r in products[1:]] == list(view["delivery_start"])
    assert all(r[column["forward (EUR/MWh)"]] is None for r in products[1:])  # no forward: empty cells
    assert book["Products"].freeze_panes == "C2"

    about = dict(book["About"].iter_rows(min_row=2, values_only=True))
    assert about["model"] == model.model_id_ and about["issued at (UTC)"] == datetime(2019, 3, 5, 13, 30)
