"""Markdown rendering of a metric table (`forecasting.evaluation.metrics.score`): per zone and horizon
week, the model next to the seasonal-naive baselines."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from forecasting.evaluation.metrics import ALL, HORIZON_WEEK, MODEL
from forecasting.schema import ZONE

# column → (header, format); prices in EUR/MWh, wQL and rMAE are ratios.
COLUMNS: dict[str, tuple[str, str]] = {
    "hours": ("hours", "{:d}"),
    "rmae": ("rMAE", "{:.3f}"),
    "mae": ("MAE", "{:.2f}"),
    "rmse": ("RMSE", "{:.2f}"),
    "wql": ("wQL", "{:.3f}"),
    "crps": ("CRPS", "{:.2f}"),
    "coverage_10_90": ("cover 10–90", "{:.3f}"),
    "width_10_90": ("width 10–90", "{:.2f}"),
}
LEGEND = (
    "MAE/RMSE of p50, CRPS (from the deciles) and interval width in EUR/MWh; rMAE = MAE / MAE of "
    "seasonal_naive on the same hours; wQL = GluonTS mean weighted quantile loss; "
    "cover = share of prices inside [p10, p90] (nominal 0.80)."
)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def render_markdown(metrics: pd.DataFrame, title: str | None = None) -> str:
    """The metric table as markdown; a zone column appears only when the table is split by zone."""
    keys = [ZONE, HORIZON_WEEK, MODEL] if (metrics[ZONE] != ALL).any() else [HORIZON_WEEK, MODEL]
    header = [*keys, *(label for label, _ in COLUMNS.values())]
    rows = [
        [str(row[k]) for k in keys] + [fmt.format(row[col]) for col, (_, fmt) in COLUMNS.items()]
        for row in metrics.to_dict("records")
    ]
    parts = [f"## {title}"] if title else []
    parts += [markdown_table(header, rows), LEGEND]
    return "\n\n".join(parts) + "\n"


PRODUCT_LEGEND = (
    "Products: CRPS of the settlement (the period's mean day-ahead price, from the deciles) and MAE "
    "of the forecast mean in EUR/MWh; cover = share of settlements inside [p10, p90] (nominal 0.80); "
    "vs no_change / vs hourly = CRPS relative to the product baselines on the same products "
    "(forecasting/evaluation/product_scores.py)."
)
BASELINES = ("no_change", "mean_of_hourly_deciles")


def render_product_markdown(metrics: pd.DataFrame, title: str | None = None) -> str:
    """The product metric table (`product_scores.score_products`) as markdown: per kind, load and
    horizon week, every model with its CRPS relative to the two product baselines."""
    keys = ["kind", "load", HORIZON_WEEK]
    baseline = {
        name: metrics[metrics[MODEL] == name].set_index(keys)["crps"] for name in BASELINES
    }
    header = [*keys, MODEL, "products", "CRPS", "vs no_change", "vs hourly", "MAE", "cover 10–90", "width 10–90"]
    rows = []
    for row in metrics.to_dict("records"):
        key = tuple(row[k] for k in keys)
        relative = [_relative(row["crps"], baseline[name].get(key)) for name in BASELINES]
        rows.append([
            *(str(row[k]) for k in keys), str(row[MODEL]), f"{int(row['products']):d}", f"{row['crps']:.2f}",
            *relative, f"{row['mae']:.2f}", f"{row['coverage_10_90']:.3f}", f"{row['width_10_90']:.2f}",
        ])
    parts = [f"## {title}"] if title else []
    parts += [markdown_table(header, rows), PRODUCT_LEGEND]
    return "\n\n".join(parts) + "\n"


def _relative(crps: float, reference: float | None) -> str:
    if reference is None or not reference:
        return "n/a"
    return f"{100 * (crps / reference - 1):+.1f} %"
