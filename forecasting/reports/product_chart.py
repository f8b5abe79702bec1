"""The per-zone product chart: each calendar product's settlement forecast as a p10–p90 band with its
median and mean, in delivery order, and the desk's forward where there is one.

Drawn from the `forward_view` frame on a bare Agg `Figure`, like the fan chart: no display, no global
backend switch, nothing left in pyplot's figure manager.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from forecasting.products import (
    BOM,
    BOW,
    CUSTOM,
    DELIVERY_END,
    DELIVERY_START,
    FORWARD,
    KIND,
    LOAD,
    MONTH,
    PRODUCT,
    SETTLED_SHARE,
    WEEK,
)
from forecasting.schema import ISSUED_AT, MEAN, PRICE, SERIES_UNITS, ZONE

# Days would add ~50 rows to a four-week chart: pass kinds=(DAY, …) to draw them too.
CHART_KINDS: tuple[str, ...] = (WEEK, BOW, MONTH, BOM, CUSTOM)
WIDTH = 10.0  # inches
ROW_HEIGHT = 0.3  # inches per product
FRAME_HEIGHT = 1.8  # inches for title, axis and legend
DPI = 100

BAND_COLOR = "#9ecae1"
MEDIAN_COLOR = "#08519c"
MEAN_COLOR = "black"
FORWARD_COLOR = "#d62728"
BAND_LABEL = "p10–p90 of the settlement"
MEDIAN_LABEL = "median (p50)"
MEAN_LABEL = "mean"
FORWARD_LABEL = "forward"
NO_FORWARD_LABEL = "no forward given"


def _delivery_order(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values([DELIVERY_START, DELIVERY_END, LOAD], kind="stable").reset_index(drop=True)


def _row_label(row: pd.Series) -> str:
    """The product name, with how much of it is already settled (a running week or month)."""
    share = row[SETTLED_SHARE]
    return f"{row[PRODUCT]} ({share:.0%} settled)" if share > 0 else row[PRODUCT]


def _draw_forwards(ax: Axes, rows: pd.DataFrame, y: np.ndarray) -> None:
    quoted = rows[FORWARD].notna().to_numpy()
    if quoted.any():
        ax.scatter(
            rows.loc[quoted, FORWARD],
            y[quoted],
            marker="D",
            s=36,
            color=FORWARD_COLOR,
            zorder=4,
            label=FORWARD_LABEL,
        )
    else:
        # An entry without a mark: the reader learns the forward is absent, not hidden behind the band.
        ax.plot([], [], linestyle="none", label=NO_FORWARD_LABEL)


def product_chart_figure(view: pd.DataFrame, zone: str, kinds: Sequence[str] = CHART_KINDS) -> Figure:
    """`zone`'s product chart as a figure (see `product_chart`)."""
    rows = _delivery_order(view[(view[ZONE] == zone) & view[KIND].isin(kinds)])
    if rows.empty:
        raise ValueError(f"the product view has no {'/'.join(kinds)} products of zone {zone}")
    y = np.arange(len(rows))

    figure = Figure(figsize=(WIDTH, FRAME_HEIGHT + ROW_HEIGHT * len(rows)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.barh(y, rows["p90"] - rows["p10"], left=rows["p10"], height=0.6, color=BAND_COLOR, label=BAND_LABEL)
    ax.scatter(rows["p50"], y, marker="|", s=160, color=MEDIAN_COLOR, zorder=3, label=MEDIAN_LABEL)
    ax.scatter(rows[MEAN], y, marker="o", s=16, color=MEAN_COLOR, zorder=3, label=MEAN_LABEL)
    _draw_forwards(ax, rows, y)

    ax.set_yticks(y, [_row_label(row) for _, row in rows.iterrows()], fontsize="small")
    ax.invert_yaxis()  # the nearest delivery on top
    ax.use_sticky_edges = False  # bars pin the x-limits to the widest band's ends otherwise
    ax.margins(x=0.03)
    ax.set_xlabel(f"settlement: mean day-ahead price over the delivery hours ({SERIES_UNITS[PRICE]})")
    ax.grid(True, axis="x", alpha=0.3)
    issued = pd.Timestamp(rows[ISSUED_AT].iloc[0]).tz_convert("UTC")
    ax.set_title(f"{zone} calendar products · issued {issued:%Y-%m-%d %H:%M} UTC")
    figure.legend(loc="outside lower center", ncols=4, fontsize="small", frameon=False)
    return figure


def product_chart(
    view: pd.DataFrame, zone: str, path: str | Path, kinds: Sequence[str] = CHART_KINDS
) -> Path:
    """Write `zone`'s product chart as a PNG at `path` and return the path.

    `view` is a `forward_view` frame (any zones). One row per product of `kinds` (default: weeks,
    balance-of-week, months, balance-of-month and custom periods, base and peak; days on request), in
    delivery order: the p10–p90 band of the settlement, the p50 and the mean, and the forward as a
    red diamond where the desk has one (the legend says "no forward given" when none has). The
    figure is WIDTH wide and grows ROW_HEIGHT per product.
    """
    path = Path(path)
    product_chart_figure(view, zone, kinds).savefig(path, format="png")
    return path
