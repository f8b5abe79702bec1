"""Calendar products — what power traders hedge — priced from one issue's sample paths.

A product delivers a constant MW over a period of local delivery days and settles on the arithmetic
mean of the hourly day-ahead prices over its delivery hours. Base delivers every hour; peak the
`PeakHours` (local weekdays, local [start_hour, end_hour)). Public holidays on a weekday are peak
hours too: the exchanges (Nasdaq, EEX) define peak by weekday and hour only. Kinds: each local
delivery `day`, each ISO `week` (Monday–Sunday), the balance-of-week `bow` (first forecast day …
Sunday), each calendar `month`, the balance-of-month `bom` (first forecast day … month end), and the
desk's `custom` periods. Hours belong to a product by the zone's local clock, so a week across a DST
change delivers 167 or 169 hours.

Each path's average over a product's hours is one sample of its settlement (hours already settled
count at their published price), so the product quantiles are quantiles of the settlement itself —
narrower than the mean of hourly quantiles, which `hourly_decile_products` keeps as a baseline. The
mean of the paths' own hourly deciles rides along (`ProductForecast.hourly_deciles`): the settlement's
deciles if the hours moved together, which the product spread stage rescales by its track record.
A product is priced only when every one of its hours is settled or forecast, and at least one is
forecast.

The product frame (PRODUCT_COLUMNS), one row per zone × product of one issue:

    zone            str
    issued_at       datetime64[ns, UTC]
    product         str      "2023-07-04 base", "2023-W27 peak", "BOW 2023-W27 base", "2023-08 base",
                             "BOM 2023-07 base", custom: "<name> <load>"
    kind            str      day | week | bow | month | bom | custom
    load            str      base | peak
    delivery_start  object   datetime.date, local delivery day, included
    delivery_end    object   datetime.date, local delivery day, included
    hours           int64    delivery hours
    settled_share   float64  share of the delivery hours whose price was published at the issue
    horizon_week    int64    1–4: horizon week of the product's last forecast hour, ceil(horizon_hour / 168)
    mean, p10 … p90 float64  EUR/MWh, mean and quantiles of the settlement over the paths
    model_id        str

Delivery dates are `datetime.date`: Parquet stores them as DATE (date32) and DuckDB reads DATE, so
they join and compare as dates; an empty frame carries no type, hence PRODUCT_ARROW_SCHEMA.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from forecasting.clock import WEEK_HOURS
from forecasting.config import CustomPeriod, PeakHours
from forecasting.forwards import PRICE as FORWARD_PRICE
from forecasting.forwards import TRADE_DATE
from forecasting.paths import ZonePaths
from forecasting.schema import (
    DELIVERY_HOUR,
    ISSUED_AT,
    MEAN,
    MODEL_ID,
    PRICE,
    PUBLISHED_AT,
    QUANTILE_COLUMNS,
    QUANTILE_LEVELS,
    SERIES_COL,
    VALUE,
    ZONE,
    SchemaError,
)

BASE, PEAK = "base", "peak"
LOADS = (BASE, PEAK)
DAY, WEEK, BOW, MONTH, BOM, CUSTOM = "day", "week", "bow", "month", "bom", "custom"
KINDS = (DAY, WEEK, BOW, MONTH, BOM, CUSTOM)

PRODUCT = "product"
KIND = "kind"
LOAD = "load"
DELIVERY_START = "delivery_start"
DELIVERY_END = "delivery_end"
HOURS = "hours"
SETTLED_SHARE = "settled_share"
HORIZON_WEEK = "horizon_week"
STAT_COLUMNS = [MEAN, *QUANTILE_COLUMNS]
PERIOD_COLUMNS = [PRODUCT, KIND, LOAD, DELIVERY_START, DELIVERY_END]
PRODUCT_COLUMNS = [
    ZONE,
    ISSUED_AT,
    *PERIOD_COLUMNS,
    HOURS,
    SETTLED_SHARE,
    HORIZON_WEEK,
    *STAT_COLUMNS,
    MODEL_ID,
]
PRODUCT_ARROW_SCHEMA = pa.schema(
    [
        (ZONE, pa.string()),
        (ISSUED_AT, pa.timestamp("ns", tz="UTC")),
        (PRODUCT, pa.string()),
        (KIND, pa.string()),
        (LOAD, pa.string()),
        (DELIVERY_START, pa.date32()),
        (DELIVERY_END, pa.date32()),
        (HOURS, pa.int64()),
        (SETTLED_SHARE, pa.float64()),
        (HORIZON_WEEK, pa.int64()),
        *((column, pa.float64()) for column in STAT_COLUMNS),
        (MODEL_ID, pa.string()),
    ]
)

# A forward (forwards frame, forecasting/forwards.py) quotes the product of its zone, load and days.
PRODUCT_OF_FORWARD = [ZONE, LOAD, DELIVERY_START, DELIVERY_END]
FORWARD_REQUIRED = [TRADE_DATE, *PRODUCT_OF_FORWARD, FORWARD_PRICE]

# The forward view: the product frame's summary next to the forward.
FORWARD = "forward"
FORWARD_PERCENTILE = "forward_percentile"
P_SETTLE_ABOVE_FORWARD = "p_settle_above_forward"
PREMIUM = "premium"
PREMIUM_EUR_PER_MW = "premium_eur_per_mw"
VIEW_COLUMNS = [
    ZONE,
    ISSUED_AT,
    *PERIOD_COLUMNS,
    HOURS,
    SETTLED_SHARE,
    MEAN,
    "p10",
    "p50",
    "p90",
    FORWARD,
    TRADE_DATE,
    FORWARD_PERCENTILE,
    P_SETTLE_ABOVE_FORWARD,
    PREMIUM,
    PREMIUM_EUR_PER_MW,
]

SETTLEMENT = "settlement"
# Day-ahead prices per zone: a tidy series frame (its price_da rows) or zone → Series (UTC hour → EUR/MWh).
Prices = pd.DataFrame | Mapping[str, pd.Series]


@dataclass(frozen=True)
class ProductForecast:
    """Products of one issue: `table` (the product frame) and `samples` (products × paths, float64:
    each path's settlement of the product), row-aligned. `hourly_deciles`, where the products were
    made from paths (products × 9, float64, p10 … p90): per product, the period average of the paths'
    hourly deciles (settled hours at their price) — the deciles of the settlement if every hour sat
    at the same decile at once (comonotone hours), which the product spread stage narrows or widens
    around their p50."""

    table: pd.DataFrame
    samples: np.ndarray
    hourly_deciles: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[0] != len(self.table):
            raise ValueError(f"samples must be {len(self.table)} products × paths, got {self.samples.shape}")
        deciles = (len(self.table), len(QUANTILE_LEVELS))
        if self.hourly_deciles is not None and self.hourly_deciles.shape != deciles:
            raise ValueError(
                f"hourly_deciles must be {deciles[0]} products × {deciles[1]} deciles, "
                f"got {self.hourly_deciles.shape}"
            )

    def with_samples(self, samples: np.ndarray) -> ProductForecast:
        """The same products with new samples (e.g. rescaled by a calibration stage), stats recomputed."""
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[0] != len(self.table):
            raise ValueError(f"samples must be {len(self.table)} products × paths, got {samples.shape}")
        table = self.table.copy()
        table[STAT_COLUMNS] = sample_stats(samples).to_numpy()
        return ProductForecast(table, samples, self.hourly_deciles)


def sample_stats(samples: np.ndarray) -> pd.DataFrame:
    """Mean and p10 … p90 (np.quantile, linear) of each row of `samples` (products × paths)."""
    samples = np.asarray(samples, dtype=np.float64)
    stats = pd.DataFrame(np.nan, index=range(samples.shape[0]), columns=STAT_COLUMNS)
    if samples.shape[1]:
        stats[MEAN] = samples.mean(axis=1)
        stats[list(QUANTILE_COLUMNS)] = np.quantile(samples, QUANTILE_LEVELS, axis=1).T
    return stats


def empty_product_table() -> pd.DataFrame:
    return PRODUCT_ARROW_SCHEMA.empty_table().to_pandas()[PRODUCT_COLUMNS]


# --- Which hours a product delivers, and which of them are known ------------------------------


@dataclass(frozen=True)
class _Coverage:
    """Where each period's delivery hours lie: published (a known price) or forecast; others unknown."""

    hours: np.ndarray  # int, delivery hours per period
    published_hours: np.ndarray  # int
    published_sum: np.ndarray  # EUR/MWh summed over the published hours
    forecast: np.ndarray  # bool, periods × forecast hours: the period's forecast hours

    @property
    def determined(self) -> np.ndarray:
        """Periods whose settlement the published and forecast hours fix."""
        return (self.hours > 0) & (self.published_hours + self.forecast.sum(axis=1) == self.hours)

    def averages(self, paths: np.ndarray) -> np.ndarray:
        """Each period's average price on each path (periods × paths) from `paths` (paths × forecast
        hours): one matrix product, the published hours a constant."""
        hours = np.maximum(self.hours, 1)[:, None]
        weights = self.forecast / hours
        return weights @ np.asarray(paths, dtype=np.float64).T + self.published_sum[:, None] / hours

    def rows(self, keep: np.ndarray) -> _Coverage:
        return _Coverage(
            self.hours[keep], self.published_hours[keep], self.published_sum[keep], self.forecast[keep]
        )


def _as_days(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy().astype("datetime64[D]")


def _between(counts: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Sums of `counts` over each slice [first, stop), by prefix sums: linear in hours + periods."""
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    return cumulative[stop] - cumulative[first]


def _coverage(
    periods: pd.DataFrame,
    timezone: str,
    peak: PeakHours,
    published: pd.Series,
    forecast_hours: pd.DatetimeIndex,
) -> _Coverage:
    """The coverage of `periods` (delivery_start, delivery_end, load) on the zone's local clock by the
    `published` prices and the `forecast_hours` (the two must not overlap)."""
    if periods.empty:
        none = np.zeros(0, dtype=np.int64)
        return _Coverage(none, none, none.astype(np.float64), np.zeros((0, len(forecast_hours)), dtype=bool))
    starts, ends = _as_days(periods[DELIVERY_START]), _as_days(periods[DELIVERY_END])
    is_peak = (periods[LOAD] == PEAK).to_numpy()
    # A day's local midnight lies within a day of its UTC midnight: the timeline holds every hour.
    timeline = pd.date_range(
        pd.Timestamp(starts.min(), tz="UTC") - pd.Timedelta(days=1),
        pd.Timestamp(ends.max(), tz="UTC") + pd.Timedelta(days=2),
        freq="h",
        inclusive="left",
    )
    local = timeline.tz_convert(timezone)
    local_day = local.tz_localize(None).to_numpy().astype("datetime64[D]")
    in_peak = (
        np.isin(local.weekday, peak.weekdays) & (local.hour >= peak.start_hour) & (local.hour < peak.end_hour)
    )
    # Local days are ordered in UTC time, so a run of days is one slice of the timeline.
    first = np.searchsorted(local_day, starts, side="left")
    stop = np.searchsorted(local_day, ends, side="right")

    prices = published.reindex(timeline).to_numpy(dtype=np.float64)
    known = ~np.isnan(prices)
    priced = np.where(known, prices, 0.0)

    def per_load(base: np.ndarray, peak_only: np.ndarray) -> np.ndarray:
        return np.where(is_peak, _between(peak_only, first, stop), _between(base, first, stop))

    position = timeline.get_indexer(forecast_hours)
    inside = (position >= first[:, None]) & (position < stop[:, None]) & (position >= 0)
    forecast_peak = np.where(position >= 0, in_peak[position], False)
    return _Coverage(
        hours=per_load(np.ones(len(timeline), dtype=np.int64), in_peak.astype(np.int64)),
        published_hours=per_load(known.astype(np.int64), (known & in_peak).astype(np.int64)),
        published_sum=per_load(priced, np.where(in_peak, priced, 0.0)),
        forecast=inside & (~is_peak[:, None] | forecast_peak),
    )


# --- Prices in, validated ----------------------------------------------------------------------


def _hourly_prices(prices: pd.Series, where: str) -> pd.Series:
    """UTC delivery hour → EUR/MWh of the published (finite) prices."""
    if prices.empty:
        return pd.Series(dtype=np.float64, index=pd.DatetimeIndex([], tz="UTC"))
    index = prices.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise SchemaError(f"{where}: prices must be indexed by time-zone-aware delivery hours")
    series = pd.Series(prices.to_numpy(dtype=np.float64), index=index.tz_convert("UTC").as_unit("ns"))
    if series.index.has_duplicates:
        raise SchemaError(f"{where}: {int(series.index.duplicated().sum())} duplicate delivery hour(s)")
    return series[np.isfinite(series.to_numpy())]


def _zone_prices(prices: Prices, zone: str) -> pd.Series:
    if not isinstance(prices, pd.DataFrame):
        return _hourly_prices(prices.get(zone, pd.Series(dtype=np.float64)), f"{zone} prices")
    missing = [c for c in (ZONE, SERIES_COL, DELIVERY_HOUR, VALUE) if c not in prices.columns]
    if missing:
        raise SchemaError(f"price frame: missing columns {missing}")
    rows = prices[(prices[ZONE] == zone) & (prices[SERIES_COL] == PRICE)]
    return _hourly_prices(
        pd.Series(rows[VALUE].to_numpy(), index=pd.DatetimeIndex(rows[DELIVERY_HOUR])), zone
    )


def _published_before(prices: pd.Series, start: pd.Timestamp, where: str) -> pd.Series:
    """The prices settled when the forecast starts: hours before `start` (later ones were not published)."""
    prices = _hourly_prices(prices, where)
    return prices[prices.index < start]


# --- The products of one issue ------------------------------------------------------------------


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _both_loads(name: str, kind: str, start: date, end: date) -> list[tuple]:
    return [(f"{name} {load}", kind, load, start, end) for load in LOADS]


def _calendar_periods(first_day: date, last_day: date, custom: Sequence[CustomPeriod]) -> pd.DataFrame:
    """Candidate products touching the local days first_day … last_day (PERIOD_COLUMNS)."""
    periods: list[tuple] = []
    for offset in range((last_day - first_day).days + 1):
        day = first_day + timedelta(days=offset)
        periods += _both_loads(day.isoformat(), DAY, day, day)
    monday = first_day - timedelta(days=first_day.weekday())
    while monday <= last_day:
        periods += _both_loads(_iso_week(monday), WEEK, monday, monday + timedelta(days=6))
        monday += timedelta(days=7)
    # From Monday the balance is the week; from Sunday it is the day.
    if 0 < first_day.weekday() < 6:
        sunday = first_day + timedelta(days=6 - first_day.weekday())
        periods += _both_loads(f"BOW {_iso_week(first_day)}", BOW, first_day, sunday)
    month = first_day.replace(day=1)
    while month <= last_day:
        periods += _both_loads(f"{month:%Y-%m}", MONTH, month, _month_end(month))
        month = _month_end(month) + timedelta(days=1)
    # From the 1st the balance is the month; from the last day it is the day.
    if 1 < first_day.day < _month_end(first_day).day:
        periods += _both_loads(f"BOM {first_day:%Y-%m}", BOM, first_day, _month_end(first_day))
    periods += [(f"{p.name} {p.load}", CUSTOM, p.load, p.start, p.end) for p in custom]
    return pd.DataFrame(periods, columns=PERIOD_COLUMNS)


def _horizon_weeks(forecast: np.ndarray) -> np.ndarray:
    """Horizon week (1…) of each product's last forecast hour."""
    last = forecast.shape[1] - 1 - np.argmax(forecast[:, ::-1], axis=1)
    return (last // WEEK_HOURS + 1).astype(np.int64)


def product_forecast(
    paths: ZonePaths, settled: pd.Series, peak: PeakHours, custom: tuple[CustomPeriod, ...] = ()
) -> ProductForecast:
    """The products of `paths`' zone and issue whose settlement the `settled` prices (UTC hour →
    EUR/MWh, published at the issue) and the forecast hours fix, with at least one forecast hour.

    Settled hours at or after the forecast start are ignored (they were not published at the issue),
    so a backtest may pass the realised prices. A settled hour missing from a running week or month
    leaves that product out (its settlement is not determined); a peak product only needs its peak
    hours. BOW exists unless the forecast starts on a Monday or Sunday, BOM unless it starts on the
    first or last day of a month: those balances are the week, month or day itself.
    """
    hours = paths.delivery_hours
    local = hours.tz_convert(paths.timezone)
    published = _published_before(settled, hours[0], f"{paths.zone} settled prices")
    first_day, last_day = local[0].date(), local[-1].date()
    known_from = (
        min(first_day, published.index[0].tz_convert(paths.timezone).date()) if len(published) else first_day
    )
    periods = _calendar_periods(first_day, last_day, custom)
    # Only these can be determined with a forecast hour; the rest would only stretch the timeline.
    possible = (
        (periods[DELIVERY_START] >= known_from)
        & (periods[DELIVERY_END] <= last_day)
        & (periods[DELIVERY_END] >= first_day)
    )
    periods = periods[possible].reset_index(drop=True)
    coverage = _coverage(periods, paths.timezone, peak, published, hours)
    keep = coverage.determined & coverage.forecast.any(axis=1)
    coverage, periods = coverage.rows(keep), periods[keep].reset_index(drop=True)
    samples = coverage.averages(paths.values)
    hourly_deciles = coverage.averages(np.quantile(paths.values, QUANTILE_LEVELS, axis=0))
    table = pd.DataFrame(
        {
            ZONE: paths.zone,
            ISSUED_AT: pd.Timestamp(paths.issued_at).tz_convert("UTC").as_unit("ns"),
            **{column: periods[column] for column in PERIOD_COLUMNS},
            HOURS: coverage.hours.astype(np.int64),
            SETTLED_SHARE: coverage.published_hours / np.maximum(coverage.hours, 1),
            HORIZON_WEEK: _horizon_weeks(coverage.forecast),
            **sample_stats(samples).to_dict("series"),
            MODEL_ID: paths.model_id,
        },
        index=periods.index,
    )
    return ProductForecast(table[PRODUCT_COLUMNS], samples, hourly_deciles)


def probability_above(forecast: ProductForecast, x: float | np.ndarray) -> np.ndarray:
    """P(settlement > x) per product: the share of samples strictly above `x` (one level, or one per
    product; NaN where `x` is NaN)."""
    level = np.broadcast_to(np.asarray(x, dtype=np.float64), (len(forecast.table),))
    above = (forecast.samples > level[:, None]).mean(axis=1)
    return np.where(np.isnan(level), np.nan, above)


def concat_products(forecasts: Sequence[ProductForecast]) -> ProductForecast:
    """Several zones of one issue as one ProductForecast (all with the same number of paths)."""
    widths = {f.samples.shape[1] for f in forecasts}
    if len(widths) > 1:
        raise ValueError(f"product forecasts have different numbers of paths: {sorted(widths)}")
    if not forecasts:
        return ProductForecast(empty_product_table(), np.zeros((0, 0)))
    tables = [f.table for f in forecasts if len(f.table)] or [forecasts[0].table]
    deciles = [f.hourly_deciles for f in forecasts]
    hourly_deciles = None if any(d is None for d in deciles) else np.vstack(deciles)
    return ProductForecast(
        pd.concat(tables, ignore_index=True), np.vstack([f.samples for f in forecasts]), hourly_deciles
    )


# --- Scoring: realised settlement, and the hourly-decile baseline --------------------------------


def settle_products(
    table: pd.DataFrame, prices: Prices, timezones: Mapping[str, str], peak: PeakHours
) -> pd.Series:
    """The realised settlement (EUR/MWh) of each product row, NaN unless every one of its delivery
    hours has a published price; aligned with `table`'s index.

    `prices` is a tidy series frame (its price_da rows) or zone → Series (UTC hour → EUR/MWh);
    `timezones` gives each zone's clock and `peak` the peak hours the products were priced with.
    """
    settlement = pd.Series(np.nan, index=table.index, name=SETTLEMENT)
    for zone, rows in table.groupby(ZONE, sort=False):
        coverage = _coverage(
            rows, timezones[zone], peak, _zone_prices(prices, zone), pd.DatetimeIndex([], tz="UTC")
        )
        settled = coverage.determined
        settlement.loc[rows.index[settled]] = coverage.published_sum[settled] / coverage.hours[settled]
    return settlement


def hourly_decile_products(
    forecast_frame: pd.DataFrame,
    settled: Prices,
    products_table: pd.DataFrame,
    timezones: Mapping[str, str],
    peak: PeakHours,
) -> pd.DataFrame:
    """`products_table` with mean and p10 … p90 scored the old way: the period mean of each hourly
    column of the forecast frame (the mean of hourly p10s, …), settled hours counting at their price.

    This is what `reports/tables.py` prints, kept as a backtest baseline: it is not a quantile of the
    settlement. Rows are matched to the forecast frame by zone and issued_at; a product the frame's
    hours and the settled prices do not fix gets NaN.
    """
    scored = products_table.copy()
    scored[STAT_COLUMNS] = np.nan
    for (zone, issued_at), rows in products_table.groupby([ZONE, ISSUED_AT], sort=False):
        hourly = forecast_frame[(forecast_frame[ZONE] == zone) & (forecast_frame[ISSUED_AT] == issued_at)]
        if hourly.empty:
            continue
        hourly = hourly.sort_values(DELIVERY_HOUR)
        hours = pd.DatetimeIndex(hourly[DELIVERY_HOUR])
        published = _published_before(_zone_prices(settled, zone), hours[0], f"{zone} settled prices")
        coverage = _coverage(rows, timezones[zone], peak, published, hours)
        means = coverage.averages(hourly[STAT_COLUMNS].to_numpy(dtype=np.float64).T)
        means[~coverage.determined] = np.nan
        scored.loc[rows.index, STAT_COLUMNS] = means
    return scored


# --- Next to the forwards -------------------------------------------------------------------------


def _as_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.date


def _forwards_at_issue(table: pd.DataFrame, forwards: pd.DataFrame) -> pd.DataFrame:
    """Per product row: the forward price and trade date of the newest quote of its zone, load and
    delivery days published by the issue (a quote without published_at counts as published)."""
    quotes = pd.DataFrame({FORWARD: np.nan, TRADE_DATE: None}, index=table.index)
    if forwards.empty:
        return quotes
    missing = [c for c in FORWARD_REQUIRED if c not in forwards.columns]
    if missing:
        raise SchemaError(f"forwards frame: missing columns {missing}")
    dated = forwards.assign(**{c: _as_dates(forwards[c]) for c in (TRADE_DATE, DELIVERY_START, DELIVERY_END)})
    rows = table[[ISSUED_AT, ZONE, LOAD]].assign(
        **{c: _as_dates(table[c]) for c in (DELIVERY_START, DELIVERY_END)}, _row=table.index
    )
    matched = rows.merge(dated, on=PRODUCT_OF_FORWARD)
    order = [TRADE_DATE]
    if PUBLISHED_AT in matched.columns:
        published_at = pd.to_datetime(matched[PUBLISHED_AT], utc=True)
        matched = matched[~(published_at > matched[ISSUED_AT])]
        order.append(PUBLISHED_AT)
    newest = matched.sort_values(order, kind="stable").drop_duplicates("_row", keep="last").set_index("_row")
    quotes[FORWARD] = newest[FORWARD_PRICE].astype(np.float64)
    quotes[TRADE_DATE] = newest[TRADE_DATE]
    return quotes


def forward_view(products: ProductForecast, forwards: pd.DataFrame) -> pd.DataFrame:
    """Every product (VIEW_COLUMNS) next to its forward, matched by zone, load and delivery days:
    forward_percentile (share of samples ≤ forward, 0–100), p_settle_above_forward (share above),
    premium (forward − mean, EUR/MWh) and premium_eur_per_mw (premium × hours: EUR per MW over the
    period). Products without a forward keep those columns NaN; so does every product when
    `forwards` is empty. A forward counts only when published by the issue; the newest trade date wins.
    """
    table = products.table.reset_index(drop=True)
    quotes = _forwards_at_issue(table, forwards)
    forward = quotes[FORWARD].to_numpy(dtype=np.float64)
    above = probability_above(products, forward)
    view = table.assign(
        **{
            FORWARD: forward,
            TRADE_DATE: quotes[TRADE_DATE],
            FORWARD_PERCENTILE: 100.0 * (1.0 - above),
            P_SETTLE_ABOVE_FORWARD: above,
            PREMIUM: forward - table[MEAN].to_numpy(),
        }
    )
    view[PREMIUM_EUR_PER_MW] = view[PREMIUM] * view[HOURS]
    return view[VIEW_COLUMNS]
