"""The hydro balance beside the forecast: each zone's reservoir filling against NVE's normal band
for the same ISO week (min / median / max of NVE's reference years), as a table and a small chart.

Input: a tidy series frame holding the weekly series (`schema.WEEKLY_SERIES`), as read from the lake
as of the issue (so only weeks published by then): one row per zone × series × ISO week, at the
week's start hour (`forecasting.weekly`). The filling is the stored energy at the end of the week.

It is shown, not used: the hydro balance is not a model covariate (docs/hydro.md says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from forecasting.reports.fan_chart import ACTUAL_COLOR, MEDIAN_COLOR, OUTER_COLOR
from forecasting.schema import (
    DELIVERY_HOUR,
    RESERVOIR_FILLING,
    RESERVOIR_NORMAL,
    SERIES_COL,
    SERIES_UNITS,
    VALUE,
    ZONE,
)

NORMAL_MIN, NORMAL_MEDIAN, NORMAL_MAX = RESERVOIR_NORMAL
UNIT = SERIES_UNITS[RESERVOIR_FILLING]  # TWh

ISO_WEEK = "iso_week"
WEEK_ENDING = "week_ending"
FILLING = "filling_twh"
MIN = "normal_min_twh"
MEDIAN = "normal_median_twh"
MAX = "normal_max_twh"
DEVIATION = "deviation_twh"
CHANGE = "change_twh"
VS_NORMAL = "vs_normal"
HYDRO_COLUMNS = [ZONE, ISO_WEEK, WEEK_ENDING, FILLING, MIN, MEDIAN, MAX, DEVIATION, CHANGE, VS_NORMAL]
# series → table column
COLUMN_OF = {RESERVOIR_FILLING: FILLING, NORMAL_MIN: MIN, NORMAL_MEDIAN: MEDIAN, NORMAL_MAX: MAX}
BELOW, INSIDE, ABOVE = "below min", "inside", "above max"

HYDRO_HEADING = "## Hydro balance"
HYDRO_LEGEND = (
    f"{UNIT} stored in the zone's reservoirs at the end of the ISO week (NVE, published the Wednesday "
    "after it); normal: min / median / max of NVE's reference years for that ISO week; deviation = "
    "filling − median; change = against the week before. Shown beside the forecast, not a model input."
)
CHART_WEEKS = 52
FIGSIZE_PER_ZONE = (2.8, 3.2)  # inches; five zones → 1400 × 320 px at DPI
DPI = 100


def weekly_view(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per zone × week start hour: the filling and the normal band (table columns), sorted."""
    weekly = rows[rows[SERIES_COL].isin(list(COLUMN_OF))]
    wide = weekly.pivot_table(index=[ZONE, DELIVERY_HOUR], columns=SERIES_COL, values=VALUE, aggfunc="last")
    wide = wide.reindex(columns=list(COLUMN_OF)).rename(columns=COLUMN_OF)
    wide.columns.name = None
    return wide.reset_index().sort_values([ZONE, DELIVERY_HOUR]).reset_index(drop=True)


def _vs_normal(row: pd.Series) -> str:
    if pd.isna(row[MIN]) or pd.isna(row[MAX]):
        return ""
    if row[FILLING] < row[MIN]:
        return BELOW
    return ABOVE if row[FILLING] > row[MAX] else INSIDE


def hydro_table(rows: pd.DataFrame, timezones: Mapping[str, str]) -> pd.DataFrame:
    """Per zone, its newest week with a filling (HYDRO_COLUMNS): the ISO week and its last local day,
    the filling, the normal band, the deviation from the median, the change against the week before
    (when that week is in `rows`) and where the filling lies against the band. Zones without a
    filling are left out."""
    view = weekly_view(rows).dropna(subset=[FILLING])
    if view.empty:
        return pd.DataFrame(columns=HYDRO_COLUMNS)
    view[CHANGE] = view[FILLING] - view.groupby(ZONE)[FILLING].shift()
    gap = view[DELIVERY_HOUR] - view.groupby(ZONE)[DELIVERY_HOUR].shift()
    view.loc[gap > pd.Timedelta(days=8), CHANGE] = np.nan  # not the week before: a week is missing
    newest = view.groupby(ZONE).tail(1).copy()
    local = [
        hour.tz_convert(timezones[zone])
        for zone, hour in zip(newest[ZONE], newest[DELIVERY_HOUR], strict=True)
    ]
    calendar = [stamp.isocalendar() for stamp in local]
    newest[ISO_WEEK] = [f"{year}-W{week:02d}" for year, week, _ in calendar]
    newest[WEEK_ENDING] = [(stamp + pd.Timedelta(days=6)).strftime("%Y-%m-%d") for stamp in local]
    newest[DEVIATION] = newest[FILLING] - newest[MEDIAN]
    newest[VS_NORMAL] = newest.apply(_vs_normal, axis=1)
    return newest[HYDRO_COLUMNS].reset_index(drop=True)


def hydro_chart_figure(rows: pd.DataFrame, timezones: Mapping[str, str], weeks: int = CHART_WEEKS) -> Figure:
    """One small panel per zone: the last `weeks` weeks of filling (line) against the normal band
    (shaded min–max, dashed median), on the zone's local week-ending dates."""
    view = weekly_view(rows).dropna(subset=[FILLING])
    zones = sorted(view[ZONE].unique())
    if not zones:
        raise ValueError("no reservoir filling to draw")
    width, height = FIGSIZE_PER_ZONE
    figure = Figure(figsize=(width * len(zones), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(1, len(zones), sharey=False))
    for ax, zone in zip(axes, zones, strict=True):
        one = view[view[ZONE] == zone].tail(weeks)
        tz = ZoneInfo(timezones[zone])
        # plotted at the end of each week (the filling is the week's closing level)
        ends = pd.DatetimeIndex(one[DELIVERY_HOUR]) + pd.Timedelta(days=7)
        ax.fill_between(ends, one[MIN], one[MAX], color=OUTER_COLOR, label="normal min–max")
        ax.plot(ends, one[MEDIAN], color=MEDIAN_COLOR, linestyle="--", linewidth=1.0, label="normal median")
        ax.plot(ends, one[FILLING], color=ACTUAL_COLOR, linewidth=1.4, label="filling")
        last = one.iloc[-1]
        deviation = last[FILLING] - last[MEDIAN]
        shown = f"{last[FILLING]:.1f} {UNIT}" + (
            "" if pd.isna(deviation) else f", {deviation:+.1f} vs median"
        )
        ax.set_title(f"{zone}: {shown}", fontsize="medium")
        ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10), tz=tz))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %y", tz=tz))
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"reservoir filling ({UNIT})")
    figure.legend(
        *axes[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=3,
        fontsize="small",
        frameon=False,
    )
    return figure


def hydro_chart(rows: pd.DataFrame, timezones: Mapping[str, str], path: str | Path) -> Path:
    """Write the hydro chart (`hydro_chart_figure`) as a PNG at `path` and return the path."""
    path = Path(path)
    hydro_chart_figure(rows, timezones).savefig(path, format="png")
    return path
