"""The report bundle of a daily run: one folder with a fan chart per zone (fan_<zone>.png), daily.csv,
weekly.csv, data_quality.csv and summary.md (the tables in markdown, linking the charts); with the
issue's products also products.csv (the forward view, every product) and a product chart per zone
(products_<zone>.png); with the hydro balance in the lake also hydro.csv (each zone's reservoir
filling against its normal band) and hydro.png.

Also what of a bundle a publisher shows, and under which keys: the summary (markdown, first; the
hydro table is in it), the weekly, data-quality and product tables, and each zone's charts as images
that carry the PNG itself (a data URI), in reading order (`artifact_keys`). Pure: the flows publish
them as Prefect artifacts (flows/artifacts.py); the library never imports Prefect.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from forecasting.evaluation.metrics import ALL, HORIZON_WEEK, MODEL
from forecasting.evaluation.report import markdown_table
from forecasting.products import KIND
from forecasting.reports.data_quality import QUALITY_LEGEND, data_quality, quality_view, read_quality
from forecasting.reports.fan_chart import fan_chart
from forecasting.reports.hydro import HYDRO_HEADING, HYDRO_LEGEND, hydro_chart, hydro_table
from forecasting.reports.product_chart import CHART_KINDS, product_chart
from forecasting.reports.product_tables import (
    FORWARD_LEGEND,
    NO_FORWARD,
    PRODUCT_LEGEND,
    desk_table,
    has_forwards,
)
from forecasting.reports.tables import (
    ACTUAL_DAILY_MEAN,
    LAST_7_DAYS_LEGEND,
    LOCAL_DATE,
    SUMMARY_LEGEND,
    daily_table,
    last_week_actuals,
    summary_table,
    weekly_table,
)
from forecasting.schema import ISSUED_AT, MODEL_ID, PRICE, SERIES_UNITS, ZONE

CHARTS_HEADING = "## Fan charts"
CHARTS_NOTE = (
    "Shaded: 10–90 % (p10–p90) and 25–75 % (interpolated linearly between the deciles p20/p30 and "
    "p70/p80); line: median (p50); black: actual prices; dashed: forecast start; local time."
)
PRODUCTS_HEADING = "## Calendar products"
HYDRO_CHART_HEADING = "## Hydro balance chart"
HYDRO_CHART_NOTE = (
    "Per zone, the last year of weekly reservoir filling (line) against NVE's normal band for the same "
    "ISO week (shaded min–max, dashed median), at the end of each week."
)
PRODUCT_CHARTS_HEADING = "## Product charts"
PRODUCT_CHARTS_NOTE = (
    "Per product, the p10–p90 band of its settlement, the median (|) and the mean (•); the forward as a "
    "red diamond where the desk gave one."
)
# Prefect artifact keys: lowercase letters, digits and dashes only. Numbered in reading order, so
# that listed by key (`prefect artifact ls`, the UI's artifact search) the summary comes first, then
# the tables, then each zone's charts together: spotcast-5-no1-fan-chart, spotcast-5-no1-product-chart…
SUMMARY_KEY = "spotcast-1-summary"
WEEKLY_KEY = "spotcast-2-weekly"
QUALITY_KEY = "spotcast-3-data-quality"
PRODUCTS_KEY = "spotcast-4-products"
ZONE_KEY_PREFIX = "spotcast-5-"
FAN_CHART = "fan-chart"
PRODUCT_CHART = "product-chart"


@dataclass(frozen=True)
class ReportBundle:
    """Paths of one written bundle."""

    directory: Path
    fan_charts: dict[str, Path]  # zone → PNG
    daily: Path
    weekly: Path
    data_quality: Path
    summary: Path
    products: Path | None = None  # the forward view of every product, when the issue has products
    product_charts: dict[str, Path] = field(default_factory=dict)  # zone → PNG
    hydro: Path | None = None  # each zone's reservoir filling against its normal, when the lake has it
    hydro_chart: Path | None = None

    @property
    def files(self) -> list[Path]:
        tables = [self.daily, self.weekly, self.data_quality, self.summary]
        products = [self.products] if self.products is not None else []
        hydro = [path for path in (self.hydro, self.hydro_chart) if path is not None]
        return [*self.fan_charts.values(), *tables, *products, *self.product_charts.values(), *hydro]


def frame_markdown(frame: pd.DataFrame) -> str:
    """A frame as a markdown table: floats to 2 decimals, timestamps to the minute, NA empty."""

    def cell(value: object) -> str:
        if pd.isna(value):
            return ""
        if isinstance(value, pd.Timestamp):
            return f"{value:%Y-%m-%d %H:%M}"
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return markdown_table([str(c) for c in frame.columns], rows)


def charts_markdown(charts: Mapping[str, str]) -> str:
    """The fan-chart section from `charts` (zone → URL or relative path) as inline images."""
    entries = "\n\n".join(f"![{zone} fan chart]({link})" for zone, link in charts.items())
    return f"{CHARTS_HEADING}\n\n{CHARTS_NOTE}\n\n{entries}\n"


def png_data_uri(path: Path) -> str:
    """A PNG file as a data URI: the image travels inside the artifact."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def chart_key(zone: str, chart: str = FAN_CHART) -> str:
    """The artifact key of a zone's fan chart, or with PRODUCT_CHART its product chart, after the
    tables and next to the zone's other chart (keys: lowercase letters, digits and dashes)."""
    return f"{ZONE_KEY_PREFIX}{''.join(c if c.isalnum() else '-' for c in zone.lower())}-{chart}"


def products_markdown(view: pd.DataFrame) -> str:
    """The products section: per zone, the desk table of the weeks, balances, months and custom
    periods (every product, days too, is in products.csv)."""
    shown = view[view[KIND].isin(CHART_KINDS)]
    parts = [
        PRODUCTS_HEADING,
        PRODUCT_LEGEND + " " + (FORWARD_LEGEND if has_forwards(view) else NO_FORWARD + "."),
    ]
    for zone, rows in shown.groupby(ZONE, sort=True):
        parts += [f"### {zone}", frame_markdown(desk_table(rows))]
    parts.append("Every product, day products too: [products.csv](products.csv).")
    return "\n\n".join(parts)


def product_charts_markdown(charts: Mapping[str, str]) -> str:
    """The product-chart section from `charts` (zone → URL or relative path) as inline images."""
    entries = "\n\n".join(f"![{zone} product chart]({link})" for zone, link in charts.items())
    return f"{PRODUCT_CHARTS_HEADING}\n\n{PRODUCT_CHARTS_NOTE}\n\n{entries}\n"


def hydro_chart_markdown(link: str) -> str:
    """The hydro-balance chart section, the image at `link` (URL or relative path)."""
    return f"{HYDRO_CHART_HEADING}\n\n{HYDRO_CHART_NOTE}\n\n![hydro balance]({link})\n"


def summary_markdown(
    forecast: pd.DataFrame,
    summary: pd.DataFrame,
    weekly: pd.DataFrame,
    last_week: pd.DataFrame,
    quality: pd.DataFrame,
    track_record: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    hydro: pd.DataFrame | None = None,
) -> str:
    """summary.md without its chart sections: headline, four-week summary, the calendar products
    (`products`, a forward view, when given), ISO weeks, last week's actual daily means, the hydro
    balance (`hydro`, a `reports.hydro.hydro_table`, when given), data
    quality (`quality_view`: short columns, those no input filled left out) and the model's track record
    (`forecasting.evaluation.record_scores`), when it has delivered issues."""
    issued = pd.Timestamp(forecast[ISSUED_AT].max())
    models = ", ".join(sorted(forecast[MODEL_ID].unique()))
    unit = SERIES_UNITS[PRICE]
    last_days = last_week.pivot(index=ZONE, columns=LOCAL_DATE, values=ACTUAL_DAILY_MEAN).reset_index()
    parts = [
        "# Spotcast day-ahead price forecast",
        f"Issued {issued:%Y-%m-%d %H:%M} UTC · model {models} · prices in {unit}",
        "## Four weeks ahead",
        markdown_table(list(summary.columns), summary.to_numpy().tolist()),
        SUMMARY_LEGEND + LAST_7_DAYS_LEGEND,
        *([products_markdown(products)] if products is not None else []),
        "## ISO weeks (local delivery days; means of hourly values)",
        frame_markdown(weekly),
        "Daily values: [daily.csv](daily.csv).",
        f"## Last 7 days, actual daily mean ({unit})",
        frame_markdown(last_days),
        *([HYDRO_HEADING, frame_markdown(hydro), HYDRO_LEGEND] if hydro is not None else []),
        "## Data quality",
        frame_markdown(quality_view(quality)),
        QUALITY_LEGEND,
    ]
    if track_record is not None:
        columns = [MODEL, HORIZON_WEEK, "issues", "rmae", "mae", "crps", "coverage_10_90", "width_10_90"]
        parts += [
            f"## Track record of the model: {int(track_record['issues'].iloc[0])} delivered past issues",
            "Its raw forecasts of past issues (kept in the lake's track record), scored on the realised "
            "prices next to the seasonal naive of the same issues; raw deciles, before the spread "
            "calibration that these same forecasts fit (nominal p10–p90 coverage 0.80).",
            frame_markdown(track_record[track_record[ZONE] == ALL][columns]),
        ]
    return "\n\n".join(parts) + "\n"


def write_report_bundle(
    dest_dir: str | Path,
    forecast: pd.DataFrame,
    actuals: pd.DataFrame,
    ingest_table: pd.DataFrame | None,
    input_status: pd.DataFrame | None,
    lake_newest: pd.DataFrame,
    timezones: Mapping[str, str],
    as_of: pd.Timestamp | None = None,
    due: pd.DataFrame | None = None,
    track_record: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    hydro: pd.DataFrame | None = None,
) -> ReportBundle:
    """Write the bundle of `forecast` into the local folder `dest_dir` (created if needed).

    `actuals` is a tidy series frame of recent curated history (at least the two weeks before the
    forecast start): its prices are drawn and summarised, and every series in it is gap-counted.
    `as_of` (UTC) is the run's instant for the data-quality table; default the forecast's issue time.
    `lake_newest` and `due` are its views of the lake and the publication rules at that instant
    (`forecasting.lake.series_store.scan_lake(lake, as_of=…)`, `data_quality.due_hours`); `track_record` the model's
    scored past forecasts (`forecasting.evaluation.record_scores.score_track_record`); `products` the
    issue's forward view (`forecasting.products.forward_view`): products.csv, a products section and
    a product chart per zone; `hydro` a tidy series frame of the weekly hydro series as known at the
    issue (a year of weeks draws a year): hydro.csv, a hydro-balance section and hydro.png.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    as_of = pd.Timestamp(forecast[ISSUED_AT].max()) if as_of is None else pd.Timestamp(as_of)
    zones = sorted(forecast[ZONE].unique())
    charts = {z: fan_chart(forecast, actuals, z, timezones[z], dest / f"fan_{z}.png") for z in zones}
    weekly = weekly_table(forecast)
    last_week = last_week_actuals(actuals, forecast, timezones)
    quality = data_quality(ingest_table, lake_newest, input_status, as_of, recent=actuals, due=due)
    product_charts = {}
    if products is not None:
        product_zones = sorted(products.loc[products[KIND].isin(CHART_KINDS), ZONE].unique())
        product_charts = {z: product_chart(products, z, dest / f"products_{z}.png") for z in product_zones}
    balance = hydro_table(hydro, timezones) if hydro is not None else None
    if balance is not None and balance.empty:
        balance = None  # the lake holds no filling of these zones (yet)
    bundle = ReportBundle(
        directory=dest,
        fan_charts=charts,
        daily=dest / "daily.csv",
        weekly=dest / "weekly.csv",
        data_quality=dest / "data_quality.csv",
        summary=dest / "summary.md",
        products=None if products is None else dest / "products.csv",
        product_charts=product_charts,
        hydro=None if balance is None else dest / "hydro.csv",
        hydro_chart=None if balance is None else hydro_chart(hydro, timezones, dest / "hydro.png"),
    )
    daily_table(forecast).to_csv(bundle.daily, index=False, float_format="%.2f")
    weekly.to_csv(bundle.weekly, index=False, float_format="%.2f")
    quality.to_csv(bundle.data_quality, index=False, float_format="%.2f")
    if bundle.products is not None:
        products.to_csv(bundle.products, index=False, float_format="%.4f", date_format="%Y-%m-%dT%H:%M:%SZ")
    if balance is not None:
        balance.to_csv(bundle.hydro, index=False, float_format="%.3f")
    summary = summary_table(forecast, last_week)
    body = summary_markdown(forecast, summary, weekly, last_week, quality, track_record, products, balance)
    sections = [charts_markdown({zone: path.name for zone, path in charts.items()})]
    if product_charts:
        sections.append(product_charts_markdown({zone: path.name for zone, path in product_charts.items()}))
    if bundle.hydro_chart is not None:
        sections.append(hydro_chart_markdown(bundle.hydro_chart.name))
    bundle.summary.write_text(body + "\n" + "\n".join(sections))
    return bundle


def zone_charts(bundle: ReportBundle) -> list[tuple[str, str, Path]]:
    """(zone, FAN_CHART or PRODUCT_CHART, PNG) per zone in order, its fan chart first."""
    charts = {FAN_CHART: bundle.fan_charts, PRODUCT_CHART: bundle.product_charts}
    zones = sorted(set(bundle.fan_charts) | set(bundle.product_charts))
    return [(z, chart, paths[z]) for z in zones for chart, paths in charts.items() if z in paths]


def chart_description(zone: str, chart: str) -> str:
    """What a zone's chart artifact says under it: the zone, the chart and how to read it."""
    note = CHARTS_NOTE if chart == FAN_CHART else PRODUCT_CHARTS_NOTE
    return f"{zone} {chart.replace('-', ' ')}. {note}"


def artifact_keys(bundle: ReportBundle) -> list[str]:
    """The keys of the bundle's artifacts in the order a publisher creates them (flows/artifacts.py):
    also their order by key (the summary, the tables, then zone by zone its charts)."""
    tables = [SUMMARY_KEY, WEEKLY_KEY, QUALITY_KEY] + ([PRODUCTS_KEY] if bundle.products is not None else [])
    return tables + [chart_key(zone, chart) for zone, chart, _ in zone_charts(bundle)]


def summary_body(bundle: ReportBundle) -> str:
    """summary.md without its chart sections: the charts are artifacts of their own."""
    return bundle.summary.read_text().partition(CHARTS_HEADING)[0]


def table_records(csv: Path) -> list[dict[str, object]]:
    """A written CSV as table rows (a table artifact shows exactly what the bundle holds)."""
    return pd.read_csv(csv).to_dict("records")


def quality_records(bundle: ReportBundle) -> list[dict[str, object]]:
    """The data-quality table as rows, narrow enough for a page (`data_quality.quality_view`)."""
    return quality_view(read_quality(bundle.data_quality)).to_dict("records")
