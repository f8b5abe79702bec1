"""The per-zone fan chart: two weeks of actual prices, then the four-week forecast as quantile bands.

Drawn on a bare `matplotlib.figure.Figure` with the Agg canvas, never through pyplot: no display is
needed, no global backend is switched, and the figure is not registered in pyplot's figure manager,
so it is freed when the function returns (five zones a day do not accumulate figures).
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from forecasting.reports.tables import zone_prices
from forecasting.schema import (
    DELIVERY_HOUR,
    ISSUED_AT,
    MODEL_ID,
    PRICE,
    QUANTILE_COLUMNS,
    QUANTILE_LEVELS,
    SERIES_UNITS,
    ZONE,
)

FIGSIZE = (12.0, 5.0)  # inches
DPI = 100  # → 1200 × 500 px
HISTORY_DAYS = 14

OUTER_COLOR = "#c6dbef"
INNER_COLOR = "#6baed6"
MEDIAN_COLOR = "#08519c"
ACTUAL_COLOR = "black"
BACKTEST_COLOR = "#d62728"
ACTUAL_LABEL = "actual"
REALISED_LABEL = "actual (forecast period)"


def interpolated_quantile(forecast: pd.DataFrame, level: float) -> pd.Series:
    """Quantile `level` per hour, linear between the two neighbouring deciles (p25 = (p20 + p30) / 2).

    The forecast carries deciles only; the 25/75 % band is this interpolation, not a model output.
    """
    levels = np.asarray(QUANTILE_LEVELS)
    if not levels[0] <= level <= levels[-1]:
        raise ValueError(f"level {level} is outside the forecast's deciles {levels[0]}…{levels[-1]}")
    upper = int(np.searchsorted(levels, level))
    if np.isclose(levels[upper], level):
        return forecast[QUANTILE_COLUMNS[upper]]
    lower = upper - 1
    weight = (level - levels[lower]) / (levels[upper] - levels[lower])
    return (1 - weight) * forecast[QUANTILE_COLUMNS[lower]] + weight * forecast[QUANTILE_COLUMNS[upper]]


def _hourly(prices: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Prices of [start, end) on a full hourly index, so missing hours break the line."""
    return prices.reindex(pd.date_range(start, end, freq="h", inclusive="left"))


def _draw_forecast(ax: Axes, zone_forecast: pd.DataFrame) -> None:
    hours = zone_forecast[DELIVERY_HOUR]
    ax.fill_between(hours, zone_forecast["p10"], zone_forecast["p90"], color=OUTER_COLOR, label="10–90 %")
    ax.fill_between(
        hours,
        interpolated_quantile(zone_forecast, 0.25),
        interpolated_quantile(zone_forecast, 0.75),
        color=INNER_COLOR,
        label="25–75 % (interpolated between deciles)",
    )
    ax.plot(hours, zone_forecast["p50"], color=MEDIAN_COLOR, linewidth=1.2, label="median (p50)")


def _draw_actuals(ax: Axes, prices: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Two weeks before `start`; and the realised prices of [start, end) when known (backtests)."""
    before = _hourly(prices, start - pd.Timedelta(days=HISTORY_DAYS), start)
    ax.plot(before.index, before.to_numpy(), color=ACTUAL_COLOR, linewidth=1.0, label=ACTUAL_LABEL)
    realised = _hourly(prices, start, end)
    if realised.notna().any():
        ax.plot(
            realised.index, realised.to_numpy(), color=BACKTEST_COLOR, linewidth=0.9, label=REALISED_LABEL
        )


def _format_axes(ax: Axes, zone: str, timezone: str, issued_at: pd.Timestamp, model_id: str) -> None:
    tz = ZoneInfo(timezone)
    # Matplotlib stores datetimes as UTC; the locator and formatter put ticks on local midnights.
    ax.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO, tz=tz))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %d %b", tz=tz))
    ax.xaxis.set_minor_locator(mdates.DayLocator(tz=tz))
    ax.set_xlabel(f"delivery day, local time ({timezone})")
    ax.set_ylabel(f"day-ahead price ({SERIES_UNITS[PRICE]})")
    issued = issued_at.tz_convert(tz)
    ax.set_title(f"{zone} day-ahead price forecast · issued {issued:%Y-%m-%d %H:%M %Z} · model {model_id}")
    ax.grid(True, which="major", alpha=0.3)


def fan_chart_figure(forecast: pd.DataFrame, actuals: pd.DataFrame, zone: str, timezone: str) -> Figure:
    """`zone`'s fan chart as a figure (see `fan_chart`)."""
    zone_forecast = forecast[forecast[ZONE] == zone].sort_values(DELIVERY_HOUR)
    if zone_forecast.empty:
        raise ValueError(f"the forecast has no rows for zone {zone}")
    start = zone_forecast[DELIVERY_HOUR].iloc[0]
    end = zone_forecast[DELIVERY_HOUR].iloc[-1] + pd.Timedelta(hours=1)

    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    _draw_forecast(ax, zone_forecast)
    _draw_actuals(ax, zone_prices(actuals, zone), start, end)
    ax.axvline(start, color="grey", linestyle="--", linewidth=1.0, label="forecast start")
    _format_axes(ax, zone, timezone, zone_forecast[ISSUED_AT].iloc[0], zone_forecast[MODEL_ID].iloc[0])
    # Below the axes, so the legend never hides a price spike.
    figure.legend(loc="outside lower center", ncols=6, fontsize="small", frameon=False)
    return figure


def fan_chart(
    forecast: pd.DataFrame, actuals: pd.DataFrame, zone: str, timezone: str, path: str | Path
) -> Path:
    """Write `zone`'s fan chart as a PNG at `path` (FIGSIZE at DPI) and return the path.

    `forecast` is a forecast frame (FORECAST_COLUMNS, any zones), `actuals` a tidy series frame whose
    day-ahead prices are drawn for the two weeks before the forecast start and, where they exist
    (backtests), over the forecast period. Bands: 10–90 % from p10/p90, 25–75 % interpolated
    linearly between p20/p30 and p70/p80 (see `interpolated_quantile`). The x-axis is the zone's
    local time, with a dashed line at the forecast start.
    """
    path = Path(path)
    fan_chart_figure(forecast, actuals, zone, timezone).savefig(path, format="png")
    return path
