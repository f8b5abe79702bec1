"""Forecast tables for the desk: per zone × local delivery day, per zone × ISO week, last week's
actual daily means, and the per-zone summary the CLI prints.

Aggregation: every figure is the *mean of the hourly values* over the period — the mean of the hourly
mean forecasts, the mean of the hourly p10s, and so on. The mean of hourly p10s is not the p10 of the
period's mean price (that would be narrower); the column names say `mean_of_hourly_…` for that reason.
Days and weeks are the zone's local delivery days (ISO weeks, Monday–Sunday, as the week products).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from forecasting.clock import WEEK_HOURS
from forecasting.schema import (
    DELIVERY_HOUR,
    HORIZON_HOUR,
    LOCAL_TIME,
    MEAN,
    PRICE,
    SERIES_COL,
    SERIES_UNITS,
    VALUE,
    ZONE,
)

LOCAL_DATE = "local_date"
ISO_WEEK = "iso_week"
FIRST_DAY = "first_day"
LAST_DAY = "last_day"
HOURS = "hours"
ACTUAL_DAILY_MEAN = "actual_daily_mean"
# forecast column → table column; the name carries the aggregation.
AGGREGATES: dict[str, str] = {
    MEAN: "mean_of_hourly_mean",
    "p10": "mean_of_hourly_p10",
    "p50": "mean_of_hourly_p50",
    "p90": "mean_of_hourly_p90",
}
LAST_WEEK_DAYS = 7

START = "from (local)"
LAST_7_DAYS = "last 7 days (actual)"
SUMMARY_LEGEND = (
    f"{SERIES_UNITS[PRICE]}; week k = forecast hours 168(k−1)+1 … 168k; cells: mean [p10–p90], each the "
    "mean of the hourly values."
)
LAST_7_DAYS_LEGEND = " Last 7 days = mean actual price of the 7 local days before the start."


def zone_prices(actuals: pd.DataFrame, zone: str) -> pd.Series:
    """One zone's actual day-ahead prices from a tidy series frame, indexed by UTC delivery hour."""
    rows = actuals[(actuals[ZONE] == zone) & (actuals[SERIES_COL] == PRICE)]
    return rows.set_index(DELIVERY_HOUR)[VALUE].sort_index()


def local_dates(forecast: pd.DataFrame) -> pd.Series:
    """Local delivery date ("YYYY-MM-DD") of each forecast row, read off its zone's wall clock."""
    return forecast[LOCAL_TIME].str.slice(0, 10)


def _aggregate(forecast: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    grouped = forecast.groupby([ZONE, *by], sort=True)
    table = grouped[list(AGGREGATES)].mean().rename(columns=AGGREGATES)
    table.insert(0, HOURS, grouped.size())
    return table.reset_index()


def daily_table(forecast: pd.DataFrame) -> pd.DataFrame:
    """Per zone × local delivery day: hours, then the means of the hourly mean, p10, p50, p90.

    A day at a DST switch has 23 or 25 hours; a day the horizon cuts shows fewer.
    """
    return _aggregate(forecast.assign(**{LOCAL_DATE: local_dates(forecast)}), [LOCAL_DATE])


def weekly_table(forecast: pd.DataFrame) -> pd.DataFrame:
    """Per zone × ISO week ("2023-W12") of the local delivery day: the first and last forecast day of
    the week, hours, then the means of the hourly mean, p10, p50, p90 (partial weeks at the ends)."""
    dates = local_dates(forecast)
    calendar = pd.to_datetime(dates).dt.isocalendar()
    weeks = calendar["year"].astype(str) + "-W" + calendar["week"].astype(str).str.zfill(2)
    table = _aggregate(forecast.assign(**{ISO_WEEK: weeks}), [ISO_WEEK])
    span = dates.groupby([forecast[ZONE], weeks.rename(ISO_WEEK)]).agg(**{FIRST_DAY: "min", LAST_DAY: "max"})
    return span.reset_index().merge(table, on=[ZONE, ISO_WEEK])


def last_week_actuals(
    actuals: pd.DataFrame, forecast: pd.DataFrame, timezones: Mapping[str, str]
) -> pd.DataFrame:
    """Per forecast zone: the actual daily mean price of each of the 7 local days before the local day
    the forecast starts on (zone, local_date, hours, actual_daily_mean); days without prices are absent."""
    frames = []
    for zone, start in forecast.groupby(ZONE)[DELIVERY_HOUR].min().items():
        tz = timezones[zone]
        prices = zone_prices(actuals, zone).tz_convert(tz)
        end = start.tz_convert(tz).normalize()
        # A calendar offset, not 168 h: a week with a DST switch starts at local midnight too.
        window = prices[(prices.index >= end - pd.DateOffset(days=LAST_WEEK_DAYS)) & (prices.index < end)]
        daily = window.groupby(window.index.strftime("%Y-%m-%d")).agg(["size", "mean"])
        daily.columns = [HOURS, ACTUAL_DAILY_MEAN]
        frames.append(daily.rename_axis(LOCAL_DATE).reset_index().assign(**{ZONE: zone}))
    columns = [ZONE, LOCAL_DATE, HOURS, ACTUAL_DAILY_MEAN]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _cell(mean: float, p10: float, p90: float) -> str:
    return f"{mean:.1f} [{p10:.1f}–{p90:.1f}]"


def summary_table(forecast: pd.DataFrame, last_week: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per zone, one row of strings: forecast start (local), last week's actual mean (when given,
    from `last_week_actuals`) and each horizon week as "mean [p10–p90]" (see SUMMARY_LEGEND)."""
    week = (forecast[HORIZON_HOUR] - 1) // WEEK_HOURS + 1
    weekly = forecast.groupby([forecast[ZONE], week.rename("week")])[[MEAN, "p10", "p90"]].mean()
    cells = weekly.apply(lambda row: _cell(row[MEAN], row["p10"], row["p90"]), axis=1).unstack("week")
    cells.columns = [f"week {k}" for k in cells.columns]
    first = forecast.loc[forecast.groupby(ZONE)[DELIVERY_HOUR].idxmin()].set_index(ZONE)
    cells.insert(0, START, first[LOCAL_TIME].str.slice(0, 16).str.replace("T", " "))
    if last_week is not None:
        # Hour-weighted, so it is the mean hourly price like the forecast columns.
        by_zone = last_week.assign(total=last_week[ACTUAL_DAILY_MEAN] * last_week[HOURS]).groupby(ZONE)
        actual = (by_zone["total"].sum() / by_zone[HOURS].sum()).reindex(cells.index)
        cells.insert(1, LAST_7_DAYS, actual.map("{:.1f}".format, na_action="ignore").fillna("n/a"))
    return cells.rename_axis(ZONE).reset_index()


def render_summary(summary: pd.DataFrame) -> str:
    """The summary table as aligned plain text with its legend, for the terminal."""
    legend = SUMMARY_LEGEND + (LAST_7_DAYS_LEGEND if LAST_7_DAYS in summary.columns else "")
    return summary.to_string(index=False) + "\n\n" + legend
