"""Calendar products from sample paths: hand-checked settlements of tiny known paths in Europe/Oslo."""

from __future__ import annotations

import time
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forecasting.config import CustomPeriod, PeakHours
from forecasting.forwards import empty_forwards_frame
from forecasting.paths import PATH_DTYPE, ZonePaths
from forecasting.products import (
    BOM,
    BOW,
    CUSTOM,
    DAY,
    DELIVERY_END,
    DELIVERY_START,
    FORWARD,
    FORWARD_PERCENTILE,
    HORIZON_WEEK,
    HOURS,
    KIND,
    LOAD,
    MONTH,
    P_SETTLE_ABOVE_FORWARD,
    PREMIUM,
    PREMIUM_EUR_PER_MW,
    PRODUCT,
    PRODUCT_ARROW_SCHEMA,
    PRODUCT_COLUMNS,
    SETTLED_SHARE,
    STAT_COLUMNS,
    TRADE_DATE,
    VIEW_COLUMNS,
    WEEK,
    ProductForecast,
    concat_products,
    forward_view,
    hourly_decile_products,
    probability_above,
    product_forecast,
    settle_products,
)
from forecasting.schema import HORIZON_HOURS, PRICE, SERIES_COLUMNS, SchemaError

OSLO = "Europe/Oslo"
PEAK = PeakHours()  # Monday–Friday 08–20 local
LEVELS = (10.0, 20.0, 30.0)
NOTHING_SETTLED = pd.Series(dtype="float64")
SETTLED_PRICE = 50.0


def _local_hours(first_day: str, periods: int) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(first_day, tz=OSLO).tz_convert("UTC"), periods=periods, freq="h")


def _paths(first_day: str, values: np.ndarray | None = None, zone: str = "NO1") -> ZonePaths:
    """Four weeks of paths from local midnight of `first_day`; default: each path constant at LEVELS."""
    hours = _local_hours(first_day, HORIZON_HOURS)
    if values is None:
        values = np.repeat(np.array(LEVELS)[:, None], HORIZON_HOURS, axis=1)
    issued_at = hours[0] - pd.Timedelta(hours=10)
    return ZonePaths(zone, OSLO, issued_at, hours, values.astype(PATH_DTYPE), "test")


def _local_hour_paths(first_day: str) -> ZonePaths:
    """Path i's price is the local clock hour + 10 i: period means show which local hours count."""
    local_hour = _local_hours(first_day, HORIZON_HOURS).tz_convert(OSLO).hour.to_numpy()
    return _paths(first_day, local_hour[None, :] + np.array([0.0, 10.0, 20.0])[:, None])


def _settled(first_day: str, until_day: str, price: float = SETTLED_PRICE) -> pd.Series:
    """A constant published price from local midnight of `first_day` to local midnight of `until_day`."""
    start, end = (pd.Timestamp(d, tz=OSLO).tz_convert("UTC") for d in (first_day, until_day))
    return pd.Series(price, index=pd.date_range(start, end, freq="h", inclusive="left"))


def _local(stamp: str) -> pd.Timestamp:
    return pd.Timestamp(stamp, tz=OSLO).tz_convert("UTC")


def _product(forecast: ProductForecast, name: str) -> tuple[pd.Series, np.ndarray]:
    """The table row and the samples of the product `name`."""
    position = forecast.table.index[forecast.table[PRODUCT] == name]
    assert len(position) == 1, f"{name} is not priced once: {list(forecast.table[PRODUCT])}"
    return forecast.table.loc[position[0]], forecast.samples[position[0]]


def _forwards(*quotes: tuple[str, str, str, str, float, str]) -> pd.DataFrame:
    """(trade_date, load, delivery_start, delivery_end, price, published_at UTC) quotes of NO1."""
    rows = [
        {
            "trade_date": date.fromisoformat(trade),
            "zone": "NO1",
            "load": load,
            "delivery_start": date.fromisoformat(start),
            "delivery_end": date.fromisoformat(end),
            "price": price,
            "quoted_as": "forward",
            "published_at": pd.Timestamp(published, tz="UTC"),
            "source": "test",
        }
        for trade, load, start, end, price, published in quotes
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def monday_start() -> ProductForecast:
    return product_forecast(_paths("2023-07-03"), NOTHING_SETTLED, PEAK)


@pytest.fixture(scope="module")
def running_week() -> ProductForecast:
    """A forecast from Thursday 2023-07-06 with Monday–Wednesday settled at 50."""
    return product_forecast(_paths("2023-07-06"), _settled("2023-07-01", "2023-07-06"), PEAK)


# --- Averages, names and calendar ---------------------------------------------------------------


def test_constant_paths_settle_every_product_at_their_level(monday_start):
    assert np.allclose(monday_start.samples, LEVELS)
    table = monday_start.table
    assert np.allclose(table["mean"], 20.0)
    assert np.allclose(table["p10"], 12.0)  # linear between 10 and 20 at 0.2 of the way
    assert np.allclose(table["p50"], 20.0)
    assert np.allclose(table["p90"], 28.0)


def test_product_frame_has_the_declared_columns_and_dtypes(monday_start):
    table = monday_start.table
    assert list(table.columns) == PRODUCT_COLUMNS
    assert str(table["issued_at"].dtype) == "datetime64[ns, UTC]"
    assert table[HOURS].dtype == "int64" and table[HORIZON_WEEK].dtype == "int64"
    assert isinstance(table[DELIVERY_START].iloc[0], date)
    assert monday_start.samples.dtype == np.float64


def test_a_monday_start_prices_days_and_weeks_only(monday_start):
    counts = monday_start.table[KIND].value_counts().to_dict()
    # 28 days base, 20 weekdays peak; W27–W30 base and peak; July is not whole without settled days.
    assert counts == {DAY: 48, WEEK: 8}


def test_products_are_named_by_their_delivery_period(monday_start):
    day, _ = _product(monday_start, "2023-07-04 base")
    week, _ = _product(monday_start, "2023-W27 peak")

    assert (day[KIND], day[LOAD], day[HOURS]) == (DAY, "base", 24)
    assert (week[KIND], week[LOAD], week[HOURS]) == (WEEK, "peak", 60)
    assert (week[DELIVERY_START], week[DELIVERY_END]) == (date(2023, 7, 3), date(2023, 7, 9))


def test_weekend_days_have_no_peak_product(monday_start):
    names = set(monday_start.table[PRODUCT])
    assert "2023-07-08 base" in names
    assert "2023-07-08 peak" not in names


def test_horizon_week_is_the_week_of_the_last_forecast_hour(monday_start):
    weeks = monday_start.table.set_index(PRODUCT)[HORIZON_WEEK]
    assert weeks["2023-07-09 base"] == 1
    assert weeks["2023-07-10 base"] == 2
    assert weeks["2023-W30 peak"] == 4


@pytest.mark.parametrize(
    ("monday", "week", "day", "week_hours", "local_hours"),
    [
        # Local 02:00 does not exist on 26 March: the hours 0 … 23 without 2.
        pytest.param("2023-03-20", "2023-W12", "2023-03-26", 167, [*range(2), *range(3, 24)], id="spring"),
        # Local 02:00 happens twice on 29 October.
        pytest.param("2023-10-23", "2023-W43", "2023-10-29", 169, [*range(24), 2], id="autumn"),
    ],
)
def test_week_across_a_dst_change_delivers_167_or_169_hours(monday, week, day, week_hours, local_hours):
    forecast = product_forecast(_local_hour_paths(monday), NOTHING_SETTLED, PEAK)
    week_row, _ = _product(forecast, f"{week} base")
    day_row, day_samples = _product(forecast, f"{day} base")

    assert week_row[HOURS] == week_hours
    assert day_row[HOURS] == len(local_hours)
    assert np.allclose(day_samples, sum(local_hours) / len(local_hours) + np.array([0.0, 10.0, 20.0]))


@pytest.mark.parametrize("week", ["2023-W12 peak", "2023-W13 peak"])
def test_peak_is_weekdays_8_to_20_local_on_both_sides_of_the_dst_change(week):
    forecast = product_forecast(_local_hour_paths("2023-03-20"), NOTHING_SETTLED, PEAK)
    row, samples = _product(forecast, week)

    assert row[HOURS] == 60
    assert np.allclose(samples, np.mean(range(8, 20)) + np.array([0.0, 10.0, 20.0]))


# --- Settled hours ------------------------------------------------------------------------------


def test_running_week_blends_settled_prices_with_the_paths(running_week):
    base, base_samples = _product(running_week, "2023-W27 base")
    peak, peak_samples = _product(running_week, "2023-W27 peak")

    # Monday–Wednesday: 72 settled hours at 50, of them 36 peak; Thursday–Sunday: 96 forecast hours.
    assert np.allclose(base_samples, [(72 * 50 + 96 * v) / 168 for v in LEVELS])
    assert base[SETTLED_SHARE] == pytest.approx(72 / 168)
    assert np.allclose(peak_samples, [34.0, 38.0, 42.0])  # (36 · 50 + 24 v) / 60
    assert peak[SETTLED_SHARE] == pytest.approx(36 / 60)


def test_the_hourly_deciles_average_the_paths_hourly_deciles_with_settled_hours_at_their_price(running_week):
    # Paths constant at 10, 20, 30: every forecast hour's decile at level q is 10 + 20 q (p10 12 … p90 28).
    hourly = 10.0 + 20.0 * np.arange(1, 10) / 10
    deciles = dict(zip(running_week.table[PRODUCT], running_week.hourly_deciles, strict=True))
    assert running_week.hourly_deciles.shape == (len(running_week.table), 9)
    # 72 of the week's hours are settled at 50 (36 of its 60 peak hours): they count at their price.
    assert np.allclose(deciles["2023-W27 base"], (72 * SETTLED_PRICE + 96 * hourly) / 168)
    assert np.allclose(deciles["2023-W27 peak"], (36 * SETTLED_PRICE + 24 * hourly) / 60)
    assert np.allclose(deciles["BOW 2023-W27 base"], hourly)
    # The band of the averaged hourly deciles: settled hours add no width.
    band = {name: d[-1] - d[0] for name, d in deciles.items()}
    assert band["2023-W27 base"] == pytest.approx(96 / 168 * 16.0)
    assert band["BOW 2023-W27 base"] == pytest.approx(16.0)


def test_balance_of_week_starts_at_the_forecast(running_week):
    bow, samples = _product(running_week, "BOW 2023-W27 base")
    bow_peak, _ = _product(running_week, "BOW 2023-W27 peak")

    assert (bow[KIND], bow[DELIVERY_START], bow[DELIVERY_END]) == (BOW, date(2023, 7, 6), date(2023, 7, 9))
    assert (bow[HOURS], bow[SETTLED_SHARE]) == (96, 0.0)
    assert np.allclose(samples, LEVELS)
    assert bow_peak[HOURS] == 24


def test_a_gap_in_the_settled_hours_leaves_the_running_week_out():
    settled = _settled("2023-07-03", "2023-07-06").drop(_local("2023-07-04 03:00"))
    names = set(product_forecast(_paths("2023-07-06"), settled, PEAK).table[PRODUCT])

    assert "2023-W27 base" not in names
    assert "2023-W27 peak" in names  # the missing hour is off-peak: peak is still determined
    assert "BOW 2023-W27 base" in names


def test_a_gap_in_settled_peak_hours_leaves_the_peak_week_out_too():
    settled = _settled("2023-07-03", "2023-07-06").drop(_local("2023-07-04 10:00"))
    names = set(product_forecast(_paths("2023-07-06"), settled, PEAK).table[PRODUCT])

    assert not {"2023-W27 base", "2023-W27 peak"} & names


def test_settled_hours_from_the_forecast_start_on_are_ignored(running_week):
    with_later = pd.concat(
        [_settled("2023-07-01", "2023-07-06"), _settled("2023-07-06", "2023-08-10", 999.0)]
    )
    forecast = product_forecast(_paths("2023-07-06"), with_later, PEAK)

    pd.testing.assert_frame_equal(forecast.table, running_week.table)
    assert np.array_equal(forecast.samples, running_week.samples)


def test_running_month_blends_settled_days_and_bom_is_its_balance(running_week):
    month, month_samples = _product(running_week, "2023-07 base")
    bom, bom_samples = _product(running_week, "BOM 2023-07 base")

    # 1–5 July settled: 120 hours at 50; 6–31 July forecast: 624 hours.
    assert (month[KIND], month[HOURS], month[SETTLED_SHARE]) == (MONTH, 744, pytest.approx(120 / 744))
    assert np.allclose(month_samples, [(120 * 50 + 624 * v) / 744 for v in LEVELS])
    assert (bom[KIND], bom[DELIVERY_START], bom[DELIVERY_END], bom[HOURS]) == (
        BOM,
        date(2023, 7, 6),
        date(2023, 7, 31),
        624,
    )
    assert np.allclose(bom_samples, LEVELS)


def test_without_settled_days_the_running_month_is_left_out_but_bom_is_priced():
    names = set(product_forecast(_paths("2023-07-06"), NOTHING_SETTLED, PEAK).table[PRODUCT])

    assert "2023-07 base" not in names
    assert "2023-W27 base" not in names
    assert {"BOM 2023-07 base", "BOW 2023-W27 base"} <= names


def test_a_forecast_from_the_first_prices_the_month_and_no_bom():
    forecast = product_forecast(_paths("2023-02-01"), NOTHING_SETTLED, PEAK)
    month, _ = _product(forecast, "2023-02 base")

    assert (month[HOURS], month[SETTLED_SHARE], month[HORIZON_WEEK]) == (672, 0.0, 4)
    assert BOM not in set(forecast.table[KIND])
    assert "BOW 2023-W05 base" in set(forecast.table[PRODUCT])  # 1 February 2023 is a Wednesday


def test_a_sunday_at_month_end_start_has_neither_bow_nor_bom():
    # 30 April 2023 is a Sunday and April's last day: both balances are that day.
    kinds = set(product_forecast(_paths("2023-04-30"), NOTHING_SETTLED, PEAK).table[KIND])

    assert not {BOW, BOM} & kinds


def test_custom_periods_are_priced_in_their_own_load_when_determined(monday_start):
    custom = (
        CustomPeriod(name="Mid-July", start=date(2023, 7, 10), end=date(2023, 7, 23), load="peak"),
        CustomPeriod(name="August", start=date(2023, 8, 1), end=date(2023, 8, 31)),  # beyond the horizon
        CustomPeriod(name="Q3", start=date(2023, 7, 1), end=date(2023, 9, 30)),  # starts before, unsettled
    )
    forecast = product_forecast(_paths("2023-07-03"), NOTHING_SETTLED, PEAK, custom)
    row, samples = _product(forecast, "Mid-July peak")

    assert (row[KIND], row[LOAD], row[HOURS]) == (CUSTOM, "peak", 120)
    assert np.allclose(samples, LEVELS)
    assert list(forecast.table.loc[forecast.table[KIND] == CUSTOM, PRODUCT]) == ["Mid-July peak"]


def test_two_hundred_paths_price_in_milliseconds():
    values = np.random.default_rng(0).normal(50.0, 10.0, (200, HORIZON_HOURS))
    paths, settled = _paths("2023-07-06", values), _settled("2023-07-01", "2023-07-06")
    product_forecast(paths, settled, PEAK)  # the first call loads the time zone

    started = time.perf_counter()
    forecast = product_forecast(paths, settled, PEAK)
    assert time.perf_counter() - started < 0.5  # ~10 ms alone; slack for a busy shared machine
    assert forecast.samples.shape == (len(forecast.table), 200)


# --- Samples and stats ----------------------------------------------------------------------------


def test_with_samples_recomputes_the_stats_and_keeps_the_products(monday_start):
    doubled = monday_start.with_samples(2.0 * monday_start.samples)

    assert np.allclose(doubled.table["mean"], 40.0)
    assert np.allclose(doubled.table["p10"], 24.0)
    assert np.allclose(doubled.table["p90"], 56.0)
    pd.testing.assert_frame_equal(
        doubled.table.drop(columns=STAT_COLUMNS), monday_start.table.drop(columns=STAT_COLUMNS)
    )
    assert doubled.hourly_deciles is monday_start.hourly_deciles


def test_with_samples_needs_one_row_per_product(monday_start):
    with pytest.raises(ValueError, match="products"):
        monday_start.with_samples(monday_start.samples[:-1])


def test_hourly_deciles_need_nine_per_product(monday_start):
    with pytest.raises(ValueError, match="hourly_deciles"):
        ProductForecast(monday_start.table, monday_start.samples, monday_start.hourly_deciles[:, :3])
    with pytest.raises(ValueError, match="hourly_deciles"):
        ProductForecast(monday_start.table, monday_start.samples, monday_start.hourly_deciles[:-1])


def test_probability_above_counts_samples_strictly_above(monday_start):
    assert np.allclose(probability_above(monday_start, 20.0), 1 / 3)
    assert np.allclose(probability_above(monday_start, 19.9), 2 / 3)


def test_probability_above_takes_one_level_per_product(monday_start):
    levels = np.full(len(monday_start.table), 5.0)
    levels[1], levels[2] = 25.0, np.nan

    above = probability_above(monday_start, levels)
    assert above[0] == 1.0 and above[1] == pytest.approx(1 / 3) and np.isnan(above[2])


def test_concat_products_stacks_zones_row_aligned(monday_start):
    twice = 2 * np.repeat(np.array(LEVELS)[:, None], HORIZON_HOURS, axis=1)
    other = product_forecast(_paths("2023-07-03", twice, zone="NO2"), NOTHING_SETTLED, PEAK)
    both = concat_products([monday_start, other])

    assert list(both.table["zone"].unique()) == ["NO1", "NO2"]
    assert both.samples.shape == (2 * len(monday_start.table), 3)
    assert np.allclose(both.samples[len(monday_start.table) :], 2 * np.array(LEVELS))
    assert np.array_equal(both.hourly_deciles, np.vstack([monday_start.hourly_deciles, other.hourly_deciles]))
    assert concat_products([monday_start, ProductForecast(other.table, other.samples)]).hourly_deciles is None


def test_concat_products_refuses_different_path_counts(monday_start):
    fewer = monday_start.with_samples(monday_start.samples[:, :2])
    with pytest.raises(ValueError, match="numbers of paths"):
        concat_products([monday_start, fewer])


def test_product_frame_writes_parquet_that_duckdb_reads_as_dates(monday_start, tmp_path):
    for name, table in (("full", monday_start.table), ("empty", monday_start.table.iloc[:0])):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(table, schema=PRODUCT_ARROW_SCHEMA, preserve_index=False), path)
        types = duckdb.sql(f"DESCRIBE SELECT * FROM '{path}'").df().set_index("column_name")["column_type"]
        assert types[DELIVERY_START] == types[DELIVERY_END] == "DATE"
    week = duckdb.sql(
        f"SELECT hours FROM '{tmp_path / 'full.parquet'}' WHERE delivery_start = DATE '2023-07-03' "
        "AND delivery_end = DATE '2023-07-09' AND load = 'base'"
    ).fetchall()
    assert week == [(168,)]


# --- Scoring ----------------------------------------------------------------------------------------


def _tidy_prices(hours: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "zone": "NO1",
            "series": PRICE,
            "delivery_hour": hours,
            "value": values,
            "unit": "EUR/MWh",
            "published_at": hours[0],
            "retrieved_at": hours[0],
        }
    )[SERIES_COLUMNS]


@pytest.fixture(scope="module")
def realised() -> pd.DataFrame:
    """Realised prices of July 2023: the local clock hour (so a base day settles at 11.5)."""
    hours = _local_hours("2023-07-01", 31 * 24)
    return _tidy_prices(hours, hours.tz_convert(OSLO).hour.to_numpy().astype("float64"))


def test_settle_products_averages_the_published_prices(monday_start, realised):
    settlement = settle_products(monday_start.table, realised, {"NO1": OSLO}, PEAK)
    by_name = settlement.set_axis(monday_start.table[PRODUCT])

    assert settlement.index.equals(monday_start.table.index)
    assert by_name["2023-W27 base"] == pytest.approx(11.5)
    assert by_name["2023-W27 peak"] == pytest.approx(13.5)
    assert by_name["2023-07-04 peak"] == pytest.approx(13.5)
    assert by_name["2023-07-08 base"] == pytest.approx(11.5)


def test_settle_products_is_nan_when_an_hour_is_missing(monday_start, realised):
    hour = realised["delivery_hour"]
    gap = realised[(hour != _local("2023-07-04 03:00")) & (hour < _local("2023-07-30 12:00"))]
    by_name = settle_products(monday_start.table, gap, {"NO1": OSLO}, PEAK).set_axis(
        monday_start.table[PRODUCT]
    )

    assert np.isnan(by_name["2023-W27 base"]) and np.isnan(by_name["2023-07-04 base"])
    assert by_name["2023-W27 peak"] == pytest.approx(13.5)  # the gap is off-peak
    assert by_name["2023-W28 base"] == pytest.approx(11.5)
    assert np.isnan(by_name["2023-W30 base"])  # its last half day is not published yet


def test_settle_products_takes_a_series_per_zone(monday_start, realised):
    series = realised.set_index("delivery_hour")["value"]
    from_series = settle_products(monday_start.table, {"NO1": series}, {"NO1": OSLO}, PEAK)
    from_frame = settle_products(monday_start.table, realised, {"NO1": OSLO}, PEAK)

    pd.testing.assert_series_equal(from_series, from_frame)


def test_settle_products_refuses_prices_without_a_time_zone(monday_start):
    naive = pd.Series(1.0, index=pd.date_range("2023-07-01", periods=3, freq="h"))
    with pytest.raises(SchemaError, match="time-zone-aware"):
        settle_products(monday_start.table, {"NO1": naive}, {"NO1": OSLO}, PEAK)


def test_hourly_decile_products_average_the_hourly_columns():
    # Two paths that alternate 0/10 out of step: every hour's p10 is 1 and p90 is 9, yet both paths
    # average 5 over any even number of hours — the period's own deciles are 5.
    alternating = np.tile([[0.0, 10.0], [10.0, 0.0]], HORIZON_HOURS // 2)
    paths, settled = _paths("2023-07-06", alternating), _settled("2023-07-03", "2023-07-06")
    products = product_forecast(paths, settled, PEAK)

    old = hourly_decile_products(
        paths.forecast_frame(), {"NO1": settled}, products.table, {"NO1": OSLO}, PEAK
    )
    week = old.set_index(PRODUCT).loc["2023-W27 base"]
    new = products.table.set_index(PRODUCT).loc["2023-W27 base"]

    # 72 settled hours at 50 and 96 forecast hours at the hourly column's value.
    assert week["p10"] == pytest.approx((72 * 50 + 96 * 1) / 168)
    assert week["p90"] == pytest.approx((72 * 50 + 96 * 9) / 168)
    assert week["mean"] == pytest.approx((72 * 50 + 96 * 5) / 168)
    assert new["p10"] == new["p90"] == pytest.approx((72 * 50 + 96 * 5) / 168)
    assert list(old.columns) == PRODUCT_COLUMNS and old.index.equals(products.table.index)


# --- Next to the forwards ----------------------------------------------------------------------------


def test_forward_view_prices_the_forward_against_the_samples(monday_start):
    forwards = _forwards(("2023-06-30", "base", "2023-07-10", "2023-07-16", 25.0, "2023-06-30 16:00"))
    view = forward_view(monday_start, forwards)
    assert list(view.columns) == VIEW_COLUMNS
    view = view.set_index(PRODUCT)
    week = view.loc["2023-W28 base"]

    assert (week[FORWARD], week[TRADE_DATE]) == (25.0, date(2023, 6, 30))
    assert week[FORWARD_PERCENTILE] == pytest.approx(200 / 3)  # samples 10, 20 of 10, 20, 30
    assert week[P_SETTLE_ABOVE_FORWARD] == pytest.approx(1 / 3)
    assert week[PREMIUM] == pytest.approx(5.0)  # 25 − 20
    assert week[PREMIUM_EUR_PER_MW] == pytest.approx(5.0 * 168)
    others = view.drop(index="2023-W28 base")
    assert others[[FORWARD, FORWARD_PERCENTILE, P_SETTLE_ABOVE_FORWARD, PREMIUM]].isna().all().all()


def test_forward_view_without_forwards_keeps_every_product(monday_start):
    for forwards in (empty_forwards_frame(), pd.DataFrame()):
        view = forward_view(monday_start, forwards)

        assert list(view[PRODUCT]) == list(monday_start.table[PRODUCT])
        assert (
            view[[FORWARD, FORWARD_PERCENTILE, P_SETTLE_ABOVE_FORWARD, PREMIUM, PREMIUM_EUR_PER_MW]]
            .isna()
            .all()
            .all()
        )


def test_forward_view_takes_the_newest_forward_published_by_the_issue(monday_start):
    issued = monday_start.table["issued_at"].iloc[0]
    forwards = _forwards(
        ("2023-06-29", "peak", "2023-07-10", "2023-07-16", 22.0, "2023-06-29 16:00"),
        ("2023-06-30", "peak", "2023-07-10", "2023-07-16", 24.0, "2023-06-30 16:00"),
        ("2023-07-02", "peak", "2023-07-10", "2023-07-16", 99.0, str(issued + pd.Timedelta(hours=1))),
    )
    week = forward_view(monday_start, forwards).set_index(PRODUCT).loc["2023-W28 peak"]

    assert (week[FORWARD], week[TRADE_DATE]) == (24.0, date(2023, 6, 30))
    assert week[PREMIUM_EUR_PER_MW] == pytest.approx(4.0 * 60)


def test_forward_view_refuses_forwards_without_delivery_days(monday_start):
    forwards = _forwards(("2023-06-30", "base", "2023-07-10", "2023-07-16", 25.0, "2023-06-30 16:00"))
    with pytest.raises(SchemaError, match="delivery_end"):
        forward_view(monday_start, forwards.drop(columns=["delivery_end"]))
