"""The product tables the desk reads (`spotcast products`, the forecast summary, the report): one
issue's forward view (`forecasting.products.forward_view`) in the desk's language — product, settled
share, mean and p10/p50/p90 of the settlement, and where a forward was given its percentile in our
distribution, P(settle > forward) and the premium per MWh and per MW over the period.

Cells are text, formatted once here, so the terminal and the markdown report read the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.forwards import TRADE_DATE
from forecasting.products import (
    DELIVERY_START,
    FORWARD,
    FORWARD_PERCENTILE,
    KIND,
    LOAD,
    P_SETTLE_ABOVE_FORWARD,
    PREMIUM,
    PREMIUM_EUR_PER_MW,
    PRODUCT,
    SETTLED_SHARE,
    WEEK,
)
from forecasting.schema import MEAN, ZONE

STATS = (MEAN, "p10", "p50", "p90")
FORWARD_COLUMNS = ("forward", "trade date", "fwd pctl", "P(>fwd)", "premium", "EUR/MW")
NO_FORWARD = (
    "no forward given: land the desk's settlement file with `spotcast forwards land FILE` "
    "(or list it under [forwards] files for the daily run)"
)
PRODUCT_LEGEND = (
    "EUR/MWh. mean, p10/p50/p90: of the settlement (the average price over the product's delivery "
    "hours; base every hour, peak the configured peak hours) across the sample paths; settled: share "
    "of the hours already published."
)
FORWARD_LEGEND = (
    "forward: the newest settlement published by the issue (its trade date); fwd pctl: where it lies "
    "in our distribution; P(>fwd): P(settle > forward); premium: forward − mean, EUR/MWh; EUR/MW: "
    "premium × delivery hours."
)
WEEK_LEGEND = (
    "Week products (ISO weeks of local days), mean [p10–p90] of the week's average price: quantiles of "
    "the average itself, narrower than the means of hourly values above."
)


def has_forwards(view: pd.DataFrame) -> bool:
    return bool(view[FORWARD].notna().any())


def _number(value: float, signed: bool = False, digits: int = 2) -> str:
    if pd.isna(value):
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _share(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.0%}"


def above_label(level: float) -> str:
    return f"P(>{level:g})"


def desk_table(
    view: pd.DataFrame, above: float | None = None, p_above: np.ndarray | None = None
) -> pd.DataFrame:
    """`view`'s rows as text columns: product, settled, mean, p10, p50, p90; the forward columns
    when any row has a forward; and `above_label(above)` with `p_above` (P(settle > above) per row)."""
    table = pd.DataFrame(
        {PRODUCT: view[PRODUCT].to_numpy(), "settled": view[SETTLED_SHARE].map(_share).to_numpy()}
    )
    for stat in STATS:
        table[stat] = view[stat].map(_number).to_numpy()
    if has_forwards(view):
        quoted = view[FORWARD].notna().to_numpy()
        table["forward"] = view[FORWARD].map(_number).to_numpy()
        table["trade date"] = np.where(quoted, view[TRADE_DATE].astype(str), "")
        table["fwd pctl"] = view[FORWARD_PERCENTILE].map(lambda v: _number(v, digits=0)).to_numpy()
        table["P(>fwd)"] = view[P_SETTLE_ABOVE_FORWARD].map(_share).to_numpy()
        table["premium"] = view[PREMIUM].map(lambda v: _number(v, signed=True)).to_numpy()
        table["EUR/MW"] = view[PREMIUM_EUR_PER_MW].map(lambda v: _number(v, signed=True, digits=0)).to_numpy()
    if above is not None and p_above is not None:
        table[above_label(above)] = [_share(p) for p in p_above]
    return table


def render_zone(
    view: pd.DataFrame, zone: str, above: float | None = None, p_above: np.ndarray | None = None
) -> str:
    """One zone's desk table as aligned text, headed by the zone."""
    rows = (view[ZONE] == zone).to_numpy()
    table = desk_table(view[rows], above, None if p_above is None else p_above[rows])
    return f"{zone}\n" + table.to_string(index=False)


def week_products(view: pd.DataFrame) -> pd.DataFrame:
    """Per zone × load, each ISO week product as "mean [p10–p90]" (columns in delivery order)."""
    weeks = view[view[KIND] == WEEK].sort_values(DELIVERY_START, kind="stable")
    cells = weeks.assign(
        week=weeks[PRODUCT].str.rsplit(" ", n=1).str[0],
        cell=[
            f"{m:.1f} [{lo:.1f}–{hi:.1f}]"
            for m, lo, hi in zip(weeks[MEAN], weeks["p10"], weeks["p90"], strict=True)
        ],
    )
    table = cells.pivot(index=[ZONE, LOAD], columns="week", values="cell")
    return table[list(dict.fromkeys(cells["week"]))].fillna("").reset_index().rename_axis(columns=None)


def forward_lines(view: pd.DataFrame) -> list[str]:
    """One line per product with a forward: the forward, where it lies in our distribution, the premium."""
    return [
        f"{row[ZONE]} {row[PRODUCT]}: forward {row[FORWARD]:.2f} (traded {row[TRADE_DATE]}) at our "
        f"p{row[FORWARD_PERCENTILE]:.0f}, P(settle > forward) {row[P_SETTLE_ABOVE_FORWARD]:.0%}, premium "
        f"{row[PREMIUM]:+.2f} EUR/MWh = {row[PREMIUM_EUR_PER_MW]:+,.0f} EUR/MW"
        for _, row in view[view[FORWARD].notna()].iterrows()
    ]


def render_product_summary(view: pd.DataFrame) -> str:
    """The short product part of the forecast summary: the week products, then the forward view
    lines (or the one line saying no forward was given)."""
    weeks = week_products(view)
    parts = [weeks.to_string(index=False) if len(weeks) else "(no week product in the horizon)", WEEK_LEGEND]
    lines = forward_lines(view)
    parts.append("\n".join(lines) if lines else NO_FORWARD)
    return "\n\n".join(parts)
