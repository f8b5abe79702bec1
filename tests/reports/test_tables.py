"""Forecast tables of a real seasonal-naive forecast whose horizon spans the 26 March 2023 DST switch."""

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.evaluation.baselines import SeasonalNaiveEmpirical
from forecasting.feeds.replay import ReplayFeed
from forecasting.reports.tables import (
    LAST_7_DAYS,
    LAST_7_DAYS_LEGEND,
    SUMMARY_LEGEND,
    daily_table,
    last_week_actuals,
    render_summary,
    summary_table,
    weekly_table,
)

OSLO = "Europe/Oslo"
ZONES = {"NO1": OSLO, "NO3": OSLO}
ISSUED = pd.Timestamp("2023-03-20 12:00", tz="UTC")  # first forecast day: Wednesday 22 March


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    full = ReplayFeed.from_settings(load_settings()).history
    return full[full["zone"].isin(list(ZONES)) & (full["delivery_hour"] >= "2022-01-01")]


@pytest.fixture(scope="module")
def forecast(history) -> pd.DataFrame:
    return SeasonalNaiveEmpirical(ZONES).fit(history).predict(history, ISSUED)


def _local(frame: pd.DataFrame) -> pd.Series:
    return frame["delivery_hour"].dt.tz_convert(OSLO)


def _on_day(frame: pd.DataFrame, zone: str, day: str) -> pd.DataFrame:
    """Rows of `zone` on local day `day`, selected from UTC delivery hours."""
    return frame[(frame["zone"] == zone) & (_local(frame).dt.strftime("%Y-%m-%d") == day)]


def test_daily_table_covers_every_local_day_of_each_zone(forecast):
    daily = daily_table(forecast)

    for zone in ZONES:
        days = daily[daily["zone"] == zone]
        assert days["local_date"].iloc[0] == "2023-03-22"
        assert days["hours"].sum() == 672
        assert days["local_date"].is_unique


def test_daily_table_dst_day_has_23_hours(forecast):
    daily = daily_table(forecast).set_index(["zone", "local_date"])

    assert daily.loc[("NO1", "2023-03-26"), "hours"] == 23
    assert daily.loc[("NO1", "2023-03-27"), "hours"] == 24


def test_daily_values_are_means_of_hourly_values(forecast):
    rows = _on_day(forecast, "NO3", "2023-03-26")

    day = daily_table(forecast).set_index(["zone", "local_date"]).loc[("NO3", "2023-03-26")]

    assert len(rows) == 23
    assert day["mean_of_hourly_mean"] == pytest.approx(rows["mean"].mean())
    assert day["mean_of_hourly_p10"] == pytest.approx(rows["p10"].mean())
    assert day["mean_of_hourly_p50"] == pytest.approx(rows["p50"].mean())
    assert day["mean_of_hourly_p90"] == pytest.approx(rows["p90"].mean())


def test_weekly_table_groups_by_iso_week_of_local_day(forecast):
    weekly = weekly_table(forecast)
    no1 = weekly[weekly["zone"] == "NO1"]

    assert no1["iso_week"].tolist() == ["2023-W12", "2023-W13", "2023-W14", "2023-W15", "2023-W16"]
    assert no1["hours"].tolist() == [5 * 24 - 1, 168, 168, 168, 672 - 119 - 3 * 168]
    assert no1[["first_day", "last_day"]].iloc[1].tolist() == ["2023-03-27", "2023-04-02"]


def test_weekly_values_are_means_of_hourly_values(forecast):
    local = _local(forecast)
    in_week = (local >= pd.Timestamp("2023-03-27", tz=OSLO)) & (local < pd.Timestamp("2023-04-03", tz=OSLO))
    rows = forecast[(forecast["zone"] == "NO1") & in_week]

    week = weekly_table(forecast).set_index(["zone", "iso_week"]).loc[("NO1", "2023-W13")]

    assert week["mean_of_hourly_p90"] == pytest.approx(rows["p90"].mean())
    assert week["mean_of_hourly_mean"] == pytest.approx(rows["mean"].mean())


def test_last_week_actuals_are_daily_means_of_the_seven_local_days_before_the_start(history, forecast):
    last_week = last_week_actuals(history, forecast, ZONES)
    no3 = last_week[last_week["zone"] == "NO3"].set_index("local_date")

    on_21_march = _on_day(history[history["series"] == "price_da"], "NO3", "2023-03-21")
    assert no3.index.tolist() == [f"2023-03-{d}" for d in range(15, 22)]
    assert no3.loc["2023-03-21", "hours"] == 24
    assert no3.loc["2023-03-21", "actual_daily_mean"] == pytest.approx(on_21_march["value"].mean())


def test_last_week_across_the_dst_switch_has_seven_local_days(history):
    forecast_in_april = (
        SeasonalNaiveEmpirical(ZONES)
        .fit(history)
        .predict(history, pd.Timestamp("2023-03-30 12:00", tz="UTC"))
    )

    last_week = last_week_actuals(history, forecast_in_april, ZONES)
    no1 = last_week[last_week["zone"] == "NO1"].set_index("local_date")["hours"]

    assert no1.index.tolist() == [f"2023-03-{d}" for d in range(25, 32)]
    assert no1["2023-03-26"] == 23 and no1.drop("2023-03-26").eq(24).all()


def test_summary_table_has_one_row_per_zone_with_four_horizon_weeks(forecast):
    summary = summary_table(forecast)

    assert summary["zone"].tolist() == ["NO1", "NO3"]
    assert [c for c in summary.columns if c.startswith("week")] == ["week 1", "week 2", "week 3", "week 4"]


def test_summary_cell_is_mean_with_p10_to_p90_of_the_horizon_week(forecast):
    week_2 = forecast[(forecast["zone"] == "NO1") & forecast["horizon_hour"].between(169, 336)]
    mean, p10, p90 = week_2["mean"].mean(), week_2["p10"].mean(), week_2["p90"].mean()

    summary = summary_table(forecast).set_index("zone")

    assert summary.loc["NO1", "week 2"] == f"{mean:.1f} [{p10:.1f}–{p90:.1f}]"


def test_summary_shows_last_weeks_hour_weighted_actual_mean(history, forecast):
    last_week = last_week_actuals(history, forecast, ZONES)
    no1 = last_week[last_week["zone"] == "NO1"]
    expected = (no1["actual_daily_mean"] * no1["hours"]).sum() / no1["hours"].sum()

    summary = summary_table(forecast, last_week).set_index("zone")

    assert summary.loc["NO1", LAST_7_DAYS] == f"{expected:.1f}"


def test_render_summary_prints_table_and_legend(forecast, history):
    text = render_summary(summary_table(forecast))

    assert text.splitlines()[0].split()[:2] == ["zone", "from"]
    assert text.endswith(SUMMARY_LEGEND)  # no "last 7 days" column, so no word about it
    with_actuals = render_summary(summary_table(forecast, last_week_actuals(history, forecast, ZONES)))
    assert with_actuals.endswith(SUMMARY_LEGEND + LAST_7_DAYS_LEGEND)
