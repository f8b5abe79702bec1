"""The daily run's report bundle as Prefect artifacts, created by the flow's report task.

The library writes the bundle and names its parts (`forecasting.reports.bundle`: the summary
without its charts, the tables as rows, each zone's charts as data URIs, the keys in reading order);
this module hands them to Prefect, so that `forecasting` stays free of the orchestrator. Each chart
travels inside its artifact, so the UI shows it wherever the worker that drew it ran.
"""

from __future__ import annotations

from uuid import UUID

from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError

from forecasting.reports.bundle import (
    PRODUCTS_KEY,
    QUALITY_KEY,
    SUMMARY_KEY,
    WEEKLY_KEY,
    ReportBundle,
    chart_description,
    chart_key,
    png_data_uri,
    quality_records,
    summary_body,
    table_records,
    zone_charts,
)
from forecasting.reports.data_quality import QUALITY_LEGEND


def in_prefect_run() -> bool:
    """Whether the caller runs inside a Prefect flow or task run."""
    try:
        get_run_context()
    except MissingContextError:
        return False
    return True


def publish_prefect_artifacts(bundle: ReportBundle) -> list[UUID]:
    """Mirror `bundle` as Prefect artifacts when called inside a flow or task run; elsewhere do
    nothing and return []. Creates the markdown summary first, then table artifacts of the weekly
    table, the data quality (`quality_records`: narrow enough for the page) and the products (when
    the bundle has them), then per zone an image artifact of its fan chart (`chart_key(zone)`, the
    PNG as a data URI) and of its product chart: in the order of `bundle.artifact_keys`."""
    if not in_prefect_run():
        return []
    # _sync: these helpers return an un-awaited coroutine when called from an async flow.
    created = [
        create_markdown_artifact(
            summary_body(bundle), key=SUMMARY_KEY, description="Forecast summary", _sync=True
        ),
        create_table_artifact(
            table_records(bundle.weekly), key=WEEKLY_KEY, description="ISO weeks", _sync=True
        ),
        create_table_artifact(
            quality_records(bundle),
            key=QUALITY_KEY,
            description=f"Data quality. {QUALITY_LEGEND}",
            _sync=True,
        ),
    ]
    if bundle.products is not None:
        created.append(
            create_table_artifact(
                table_records(bundle.products), key=PRODUCTS_KEY, description="Calendar products", _sync=True
            )
        )
    for zone, chart, path in zone_charts(bundle):
        created.append(
            create_image_artifact(
                png_data_uri(path), key=chart_key(zone, chart), description=chart_description(zone, chart)
            )
        )
    return created
