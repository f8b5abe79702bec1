"""Markdown rendering of the metric table."""

import pandas as pd

from forecasting.evaluation.metrics import METRIC_COLUMNS
from forecasting.evaluation.report import render_markdown


def metrics_table(zones: list[str]) -> pd.DataFrame:
    rows = [
        {"model": model, "zone": zone, "horizon_week": week}
        for zone in zones
        for week in ("all", "days 1-7")
        for model in ("model", "seasonal_naive")
    ]
    values = dict.fromkeys(METRIC_COLUMNS, 0.5) | {"hours": 168, "mae": 12.345}
    return pd.DataFrame(rows).assign(**values)


def test_report_has_a_row_per_horizon_week_and_model():
    lines = render_markdown(metrics_table(["all"]), title="2019").splitlines()
    rows = [line for line in lines if line.startswith("| all") or line.startswith("| days")]
    assert rows[0] == "| all | model | 168 | 0.500 | 12.35 | 0.50 | 0.500 | 0.50 | 0.500 | 0.50 |"
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| all", "model"],
        ["| all", "seasonal_naive"],
        ["| days 1-7", "model"],
        ["| days 1-7", "seasonal_naive"],
    ]


def test_report_header_names_every_metric():
    header = render_markdown(metrics_table(["all"])).splitlines()[0]
    for label in ("rMAE", "MAE", "RMSE", "wQL", "CRPS", "cover 10–90", "width 10–90"):
        assert f"| {label} |" in header


def test_report_shows_zone_column_only_when_split_by_zone():
    assert render_markdown(metrics_table(["all"])).startswith("| horizon_week |")
    assert render_markdown(metrics_table(["all", "NO1"])).startswith("| zone | horizon_week |")
